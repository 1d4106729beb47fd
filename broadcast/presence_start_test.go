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

// leaseHold holds every renewal of a Hub's presence lease (SET … GET of
// its node key) until release is closed.
type leaseHold struct {
	node    string
	held    atomic.Int64
	release chan struct{}
}

func (h *leaseHold) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *leaseHold) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *leaseHold) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		args := cmd.Args()
		if strings.EqualFold(cmd.Name(), "set") && len(args) >= 2 {
			if k, ok := args[1].(string); ok && strings.HasSuffix(k, "node:"+h.node) {
				h.held.Add(1)
				select {
				case <-h.release:
				case <-ctx.Done():
				}
			}
		}
		return next(ctx, cmd)
	}
}

// TestPresenceBeforeFirstLease: a member who joins a Hub that has not yet
// renewed its presence lease (it was just started) is listed by every Hub
// at once. Presence lists only members of Hubs with a live lease; the first
// renewal runs in the background and was held here.
func TestPresenceBeforeFirstLease(t *testing.T) {
	db := redistest.New(t)
	prefix := db.Prefix + "firstlease:"
	other := hubOn(t, db.NewClient(t), prefix)
	hold := &leaseHold{node: "fresh-node", release: make(chan struct{})}
	defer close(hold.release)
	c := db.NewClient(t)
	c.AddHook(hold)
	fresh := hubOn(t, c, prefix, broadcast.WithNodeID("fresh-node"))
	require.Eventually(t, func() bool { return hold.held.Load() > 0 }, 10*time.Second, time.Millisecond,
		"the fresh Hub's first lease renewal did not start")
	_ = subscribe(t, fresh, "room", broadcast.AsMember(broadcast.Member{ClientID: "early", UserID: "eve"}))
	ctx := testCtx(t, 30*time.Second)
	for _, h := range []*broadcast.Hub{fresh, other} {
		ms, err := h.Presence(ctx, "room")
		require.NoError(t, err)
		require.Len(t, ms, 1, "members listed before the fresh Hub's first lease renewal")
		require.Equal(t, "early", ms[0].ClientID)
	}
}
