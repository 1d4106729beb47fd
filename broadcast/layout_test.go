package broadcast_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/broadcast"
	"github.com/outrigger-dev/outrigger/internal/redistest"
)

// TestSubscribeByInterest: a Hub's pub/sub connection subscribes to the
// channels it has subscribers for, and stops when the last one leaves.
func TestSubscribeByInterest(t *testing.T) {
	leakCheck(t)
	db := redistest.New(t)
	prefix := db.Prefix + "interest:"
	h := hubOn(t, db.NewClient(t), prefix)
	ctx := testCtx(t, 30*time.Second)
	channels := func() []string {
		out, err := db.Client.PubSubChannels(ctx, prefix+"*").Result()
		require.NoError(t, err)
		var user []string
		for _, c := range out {
			if strings.HasSuffix(c, ":p") {
				user = append(user, c)
			}
		}
		return user
	}
	require.Empty(t, channels())
	a := subscribe(t, h, "a")
	a2 := subscribe(t, h, "a")
	require.ElementsMatch(t, []string{prefix + "{a}:p"}, channels())
	require.NoError(t, a.Close())
	require.Len(t, channels(), 1, "one subscriber left")
	require.NoError(t, a2.Close())
	waitFor(t, 10*time.Second, "unsubscribed", func() bool { return len(channels()) == 0 })
}

// TestClusterShardedPubSub: on a Cluster, channels are shard channels
// (SSUBSCRIBE) spread over the masters, one pub/sub connection per master.
func TestClusterShardedPubSub(t *testing.T) {
	leakCheck(t)
	db := redistest.NewCluster(t)
	prefix := db.Prefix + "sharded:"
	h := hubOn(t, db.NewClient(t), prefix)
	ctx := testCtx(t, 30*time.Second)
	var subs []*broadcast.Subscription
	for _, ch := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		subs = append(subs, subscribe(t, h, ch))
	}
	var masters atomic.Int32
	cc := db.Client.(*redis.ClusterClient)
	err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		out, err := c.Do(ctx, "PUBSUB", "SHARDCHANNELS", prefix+"*").StringSlice()
		if err != nil {
			return err
		}
		n := 0
		for _, s := range out {
			if strings.HasSuffix(s, ":p") {
				n++
			}
		}
		if n > 0 {
			masters.Add(1)
		}
		return nil
	})
	require.NoError(t, err)
	require.GreaterOrEqual(t, int(masters.Load()), 2, "8 channels spread over the 3 masters")
	for i, s := range subs {
		ch := string(rune('a' + i))
		_, err := h.Publish(ctx, ch, []byte(`1`))
		require.NoError(t, err)
		require.Equal(t, ch, next(t, s, 10*time.Second).Channel)
	}
	require.NoError(t, h.Ready(ctx))
}
