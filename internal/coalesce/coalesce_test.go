package coalesce

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

type call struct {
	in, out int
}

func TestEveryCallFlushedOnceWithinLimits(t *testing.T) {
	defer goleak.VerifyNone(t, ignoreHarness)
	tests := []struct{ inflight, batch, callers int }{
		{1, 1, 50}, {1, 8, 200}, {2, 32, 500}, {4, 1000, 300},
	}
	for _, tc := range tests {
		var flushed, concurrent, maxConcurrent, batches atomic.Int64
		var maxSeen atomic.Int64
		g := New(tc.inflight, tc.batch, func(_ context.Context, cs []*call) {
			c := concurrent.Add(1)
			defer concurrent.Add(-1)
			for {
				m := maxConcurrent.Load()
				if c <= m || maxConcurrent.CompareAndSwap(m, c) {
					break
				}
			}
			if n := int64(len(cs)); n > maxSeen.Load() {
				maxSeen.Store(n)
			}
			batches.Add(1)
			for _, c := range cs {
				c.out = c.in * 2
				flushed.Add(1)
			}
			time.Sleep(100 * time.Microsecond) // a round trip, so calls pile up
		})
		var wg sync.WaitGroup
		for i := range tc.callers {
			wg.Go(func() {
				c := &call{in: i}
				require.NoError(t, g.Do(context.Background(), c))
				require.Equal(t, 2*i, c.out, "call %d got another call's result", i)
			})
		}
		wg.Wait()
		require.Equal(t, int64(tc.callers), flushed.Load(), "flushed calls")
		require.LessOrEqual(t, maxConcurrent.Load(), int64(tc.inflight), "batches in flight")
		require.LessOrEqual(t, maxSeen.Load(), int64(tc.batch), "batch size")
		if tc.batch > 1 && tc.callers >= 200 {
			require.Less(t, batches.Load(), int64(tc.callers), "no call was batched")
		}
	}
}

func TestCancelledWhileQueuedIsNotFlushed(t *testing.T) {
	defer goleak.VerifyNone(t, ignoreHarness)
	release := make(chan struct{})
	var got []int
	var mu sync.Mutex
	g := New(1, 10, func(_ context.Context, cs []*call) {
		mu.Lock()
		for _, c := range cs {
			got = append(got, c.in)
		}
		mu.Unlock()
		if cs[0].in == 1 {
			<-release // hold the only slot
		}
	})
	first := make(chan error)
	go func() { first <- g.Do(context.Background(), &call{in: 1}) }()
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 1 }, 5*time.Second, time.Millisecond)

	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("gave up")
	queued := make(chan error)
	go func() { queued <- g.Do(ctx, &call{in: 2}) }()
	require.Eventually(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return len(g.pending) == 1 }, 5*time.Second, time.Millisecond)
	cancel(cause)
	require.ErrorIs(t, <-queued, cause)

	close(release)
	require.NoError(t, <-first)
	require.NoError(t, g.Do(context.Background(), &call{in: 3}))
	require.Equal(t, []int{1, 3}, got, "a cancelled queued call was flushed")
}

func TestFlushContextIgnoresCallerCancellation(t *testing.T) {
	defer goleak.VerifyNone(t, ignoreHarness)
	type key struct{}
	g := New(1, 1, func(ctx context.Context, cs []*call) {
		if ctx.Err() == nil && ctx.Value(key{}) == "v" {
			cs[0].out = 1
		}
	})
	ctx := context.WithValue(context.Background(), key{}, "v")
	c := &call{}
	require.NoError(t, g.Do(ctx, c))
	require.Equal(t, 1, c.out)

	done, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, g.Do(done, &call{}), context.Canceled, "a call whose ctx is done on entry is not flushed")
}

// ignoreHarness ignores the Redis Cluster that TestScripts starts, which
// the harness keeps until the test binary exits.
var ignoreHarness = goleak.IgnoreAnyFunction("github.com/outrigger-dev/outrigger/internal/redistest.(*Server).start.func1")
