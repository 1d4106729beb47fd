package ratelimit_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/ratelimit"
)

// TestMovedIsNotResent: a Cluster client whose slot map is stale sends the
// script to the old owner, which answers MOVED without running it; the copy
// go-redis then sends to the new owner is a first copy, not a re-send, so
// the default re-send guard lets it count instead of refusing it.
func TestMovedIsNotResent(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	ctx := ctxT(t, 2*time.Minute)
	cl := redistest.StartCluster(t)
	c := cl.Client(t)
	var hookErrs atomic.Int64
	var lastErr atomic.Value
	l, err := ratelimit.NewRedis(c, ratelimit.PerHour(10), ratelimit.WithDenyCache(0),
		ratelimit.WithFallback(ratelimit.FailClosed),
		ratelimit.WithHooks(ratelimit.Hooks{OnError: func(_ string, err error) { hookErrs.Add(1); lastErr.Store(err) }}))
	require.NoError(t, err)

	// Load the slot map and the script on the key's owner, then empty the slot.
	res, err := l.Allow(ctx, "mv")
	require.NoError(t, err)
	require.Equal(t, ratelimit.SourceRedis, res.Source)
	rkey := l.Key("mv")
	require.NoError(t, c.Del(ctx, rkey).Err())
	slot, err := c.ClusterKeySlot(ctx, rkey).Result()
	require.NoError(t, err)
	owner, err := c.MasterForKey(ctx, rkey)
	require.NoError(t, err)

	// Move the (empty) slot to another master behind the client's back.
	ids := make([]string, len(cl.Masters))
	var from, to int = -1, -1
	for i, m := range cl.Masters {
		ids[i], err = m.Client(t).ClusterMyID(ctx).Result()
		require.NoError(t, err)
		if m.Addr() == owner.Options().Addr {
			from = i
		}
	}
	require.GreaterOrEqual(t, from, 0, "owner %s is not a master", owner.Options().Addr)
	to = (from + 1) % len(cl.Masters)
	order := []int{to, from}
	for i := range cl.Masters {
		if i != to && i != from {
			order = append(order, i)
		}
	}
	for _, i := range order {
		require.NoError(t, cl.Masters[i].Client(t).Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", ids[to]).Err())
	}
	// Every master now sends the key to the new owner (MOVED), which serves it.
	require.Eventually(t, func() bool {
		for i, m := range cl.Masters {
			err := m.Client(t).Get(ctx, rkey).Err()
			if i == to && err != redis.Nil {
				return false
			}
			if i != to && (err == nil || !strings.HasSuffix(err.Error(), " "+cl.Masters[to].Addr())) {
				return false
			}
		}
		return true
	}, 20*time.Second, 20*time.Millisecond, "the masters did not agree on the slot's new owner")

	// The client still routes to the old owner: it answers MOVED.
	err = cl.Masters[from].Client(t).Get(ctx, rkey).Err()
	require.True(t, redis.HasErrorPrefix(err, "MOVED"), "old owner answered %v, want MOVED", err)

	res, err = l.Allow(ctx, "mv")
	require.NoError(t, err)
	require.Zero(t, hookErrs.Load(), "the redirected call failed: %v", lastErr.Load())
	require.Equal(t, ratelimit.SourceRedis, res.Source)
	require.Equal(t, 9, res.Remaining, "counted once on the new owner")
}
