package broadcast_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/broadcast"
	"github.com/outrigger-dev/outrigger/internal/redistest"
)

// TestInspector: two Hubs (replicas, each on its own client) on a single
// node and on a Cluster; the inspector sees each channel's subscribers per
// replica and its presence, and forgets a Hub that closes.
func TestInspector(t *testing.T) {
	for _, mk := range []func(testing.TB) *redistest.DB{redistest.New, redistest.NewCluster} {
		db := mk(t)
		name := "single"
		if db.Cluster {
			name = "cluster"
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			ttl := broadcast.WithPresenceTTL(400 * time.Millisecond)
			a := hubOn(t, db.NewClient(t), db.Prefix, broadcast.WithNodeID("replica-a"), ttl)
			b := hubOn(t, db.NewClient(t), db.Prefix, broadcast.WithNodeID("replica-b"), ttl)
			sub := func(h *broadcast.Hub, ch string, opts ...broadcast.SubscribeOption) {
				s, err := h.Subscribe(ctx, ch, opts...)
				require.NoError(t, err)
				t.Cleanup(func() { _ = s.Close() })
			}
			sub(a, "quotes", broadcast.AsMember(broadcast.Member{ClientID: "c1", UserID: "ann"}))
			sub(a, "quotes")
			sub(b, "quotes", broadcast.AsMember(broadcast.Member{ClientID: "c2", UserID: "bob"}))
			sub(b, "alerts")

			in, err := broadcast.NewInspector(db.Client, broadcast.WithPrefix(db.Prefix))
			require.NoError(t, err)
			var chans []broadcast.ChannelInfo
			require.Eventually(t, func() bool {
				chans, err = in.Channels(ctx)
				return err == nil && len(chans) == 2 && chans[0].Subscribers == 3
			}, 10*time.Second, 20*time.Millisecond, "the Hubs did not report their subscribers")
			assert.Equal(t, "quotes", chans[0].Name)
			assert.Equal(t, map[string]int{"replica-a": 2, "replica-b": 1}, chans[0].ByNode)
			assert.Equal(t, 2, chans[0].Present)
			assert.Equal(t, broadcast.ChannelInfo{Name: "alerts", Subscribers: 1, ByNode: map[string]int{"replica-b": 1}}, chans[1])
			ms, err := in.Presence(ctx, "quotes")
			require.NoError(t, err)
			require.Len(t, ms, 2)
			assert.Equal(t, "ann", ms[0].UserID)
			assert.Equal(t, "replica-a", ms[0].Node)
			nodes, err := in.Nodes(ctx)
			require.NoError(t, err)
			require.Len(t, nodes, 2)
			assert.Equal(t, "replica-a", nodes[0].Node)
			assert.Equal(t, 1, nodes[0].Channels)
			assert.Equal(t, 2, nodes[0].Subscribers)
			assert.Equal(t, 2, nodes[1].Channels)
			assert.Equal(t, 2, nodes[1].Subscribers)
			assert.Greater(t, nodes[1].LeaseTTL, time.Duration(0))

			require.NoError(t, b.Close())
			require.Eventually(t, func() bool {
				chans, err = in.Channels(ctx)
				return err == nil && len(chans) == 1 && chans[0].Subscribers == 2
			}, 10*time.Second, 20*time.Millisecond, "a closed Hub is still counted")
			assert.Equal(t, 1, chans[0].Present)
			_, err = in.Presence(ctx, "")
			assert.Error(t, err)
		})
	}
}
