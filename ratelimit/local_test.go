package ratelimit_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/outrigger-dev/outrigger/ratelimit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// TestLocalExactness: three "replicas" (goroutines) share one key of one
// LocalLimiter on an injected clock moved 1ms at a time. Every window of
// steps holds at most burst + rate × elapsed allowed requests, and the whole
// run is within 1 of ideal.
func TestLocalExactness(t *testing.T) {
	for _, lim := range []ratelimit.Limit{
		{Rate: 100, Period: time.Second, Burst: 10},
		{Rate: 3, Period: 100 * time.Millisecond, Burst: 2}, // Period/Rate not a whole µs
		{Rate: 7, Period: time.Second, Burst: 7},
	} {
		t.Run(lim.String(), func(t *testing.T) {
			clk := &fakeClock{ns: atomic.Int64{}}
			clk.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
			l, err := ratelimit.NewLocal(lim, ratelimit.WithClock(clk.now))
			require.NoError(t, err)
			ctx := context.Background()
			const steps = 3000
			step := time.Millisecond
			perStep := make([]int, steps+1)
			for s := 0; s <= steps; s++ {
				var n atomic.Int64
				var wg sync.WaitGroup
				for range 3 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for range 3 {
							res, err := l.Allow(ctx, "hot")
							if err != nil {
								t.Error(err)
								return
							}
							if res.Allowed {
								n.Add(1)
							}
						}
					}()
				}
				wg.Wait()
				perStep[s] = int(n.Load())
				if s < steps {
					clk.advance(step)
				}
			}
			rate := float64(lim.Rate) / lim.Period.Seconds()
			// prefix sums; window [i, j] spans (j - i) steps of time
			sum := make([]int, steps+2)
			for i, v := range perStep {
				sum[i+1] = sum[i] + v
			}
			for i := 0; i <= steps; i += 7 {
				for j := i; j <= steps; j += 13 {
					cnt := sum[j+1] - sum[i]
					bound := float64(lim.Burst) + rate*float64(j-i)*step.Seconds()
					require.LessOrEqualf(t, float64(cnt), bound+1e-9, "steps %d..%d", i, j)
				}
			}
			ideal := float64(lim.Burst) + rate*float64(steps)*step.Seconds()
			total := float64(sum[steps+1])
			assert.LessOrEqual(t, total, ideal)
			assert.GreaterOrEqual(t, total, ideal-1)
			t.Logf("allowed %v, ideal %.2f", total, ideal)
		})
	}
}

// TestLocalRetryAfterExact: RetryAfter and ResetAfter on an injected clock.
func TestLocalRetryAfterExact(t *testing.T) {
	clk := &fakeClock{}
	l, err := ratelimit.NewLocal(ratelimit.Limit{Rate: 4, Period: time.Second, Burst: 2}, ratelimit.WithClock(clk.now))
	require.NoError(t, err)
	ctx := context.Background()
	for range 2 {
		res, err := l.Allow(ctx, "k")
		require.NoError(t, err)
		require.True(t, res.Allowed)
	}
	res, err := l.Allow(ctx, "k")
	require.NoError(t, err)
	require.False(t, res.Allowed)
	assert.Equal(t, 250*time.Millisecond, res.RetryAfter)
	assert.Equal(t, 500*time.Millisecond, res.ResetAfter)
	clk.advance(249 * time.Millisecond)
	res, _ = l.Allow(ctx, "k")
	assert.False(t, res.Allowed)
	assert.Equal(t, time.Millisecond, res.RetryAfter)
	clk.advance(time.Millisecond)
	res, _ = l.Allow(ctx, "k")
	assert.True(t, res.Allowed)
	assert.Equal(t, 0, res.Remaining)
	res, _ = l.AllowN(ctx, "k", 2)
	assert.False(t, res.Allowed)
	assert.Equal(t, 500*time.Millisecond, res.RetryAfter)
}

// TestLocalWaitSynctest: Wait sleeps exactly until quota is back (fake time).
func TestLocalWaitSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, err := ratelimit.NewLocal(ratelimit.Limit{Rate: 10, Period: time.Second, Burst: 1})
		require.NoError(t, err)
		ctx := context.Background()
		start := time.Now()
		for range 5 {
			require.NoError(t, l.Wait(ctx, "k"))
		}
		assert.Equal(t, 400*time.Millisecond, time.Since(start))

		ctx2, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		require.ErrorIs(t, l.Wait(ctx2, "k"), context.DeadlineExceeded)
	})
}

// TestLocalBoundedKeys: the key set never grows past WithMaxKeys, and keys
// back at full burst are dropped first.
func TestLocalBoundedKeys(t *testing.T) {
	clk := &fakeClock{}
	l, err := ratelimit.NewLocal(ratelimit.PerSecond(10), ratelimit.WithMaxKeys(100), ratelimit.WithClock(clk.now))
	require.NoError(t, err)
	ctx := context.Background()
	for i := range 10000 {
		_, err := l.Allow(ctx, "k"+strconv.Itoa(i))
		require.NoError(t, err)
	}
	assert.LessOrEqual(t, l.Len(), 128, "bounded (shards round the bound up)")
	// an active key survives idle ones being added: make 50 keys idle, one hot
	l2, err := ratelimit.NewLocal(ratelimit.PerHour(2), ratelimit.WithMaxKeys(64), ratelimit.WithClock(clk.now))
	require.NoError(t, err)
	_, _ = l2.AllowN(ctx, "hot", 2)
	res, _ := l2.Allow(ctx, "hot")
	require.False(t, res.Allowed)
	for i := range 1000 {
		_, _ = l2.AllowN(ctx, "x"+strconv.Itoa(i), 0) // peeks store nothing
	}
	assert.Equal(t, 1, l2.Len())
	res, _ = l2.Allow(ctx, "hot")
	assert.False(t, res.Allowed, "peeks must not evict state")
}

// TestLocalAllocs: the hot path for an existing key allocates nothing.
func TestLocalAllocs(t *testing.T) {
	l, err := ratelimit.NewLocal(ratelimit.PerSecond(1_000_000))
	require.NoError(t, err)
	ctx := context.Background()
	_, _ = l.Allow(ctx, "k")
	allocs := testing.AllocsPerRun(1000, func() { _, _ = l.Allow(ctx, "k") })
	assert.Equal(t, 0.0, allocs)
}
