package ratelimit_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/ratelimit"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBreaker stops the limiter's Redis: after the configured consecutive
// failures the breaker opens and answers come from the fallback without
// Redis calls; after Redis restarts the breaker closes by itself.
func TestBreaker(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fallback ratelimit.Fallback
		check    func(t *testing.T, i int, res ratelimit.Result)
	}{
		{"fail-open", ratelimit.FailOpen, func(t *testing.T, _ int, res ratelimit.Result) {
			assert.True(t, res.Allowed)
		}},
		{"fail-closed", ratelimit.FailClosed, func(t *testing.T, _ int, res ratelimit.Result) {
			assert.False(t, res.Allowed)
			assert.Greater(t, res.RetryAfter, time.Duration(0))
		}},
		{"fail-local", ratelimit.FailLocal(ratelimit.PerHour(3)), func(t *testing.T, i int, res ratelimit.Result) {
			// the local fallback allows 3 per replica, then denies
			assert.Equalf(t, i < 3, res.Allowed, "fallback request %d", i)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := redistest.StartServer(t)
			c := s.Client(t, func(o *redis.Options) {
				o.MaxRetries = -1
				o.DialTimeout = 200 * time.Millisecond
				o.ReadTimeout = 200 * time.Millisecond
				o.WriteTimeout = 200 * time.Millisecond
			})
			var mu sync.Mutex
			var changes []string
			var hookErrs atomic.Int64
			bySource := map[ratelimit.Source]int{}
			l, err := ratelimit.NewRedis(c, ratelimit.PerHour(100),
				ratelimit.WithFallback(tc.fallback),
				// open long enough that the checks below run while it is
				// open even on a stalled machine
				ratelimit.WithBreaker(3, 2*time.Second),
				ratelimit.WithHooks(ratelimit.Hooks{
					OnBreakerChange: func(from, to string) { mu.Lock(); changes = append(changes, from+"->"+to); mu.Unlock() },
					OnError:         func(string, error) { hookErrs.Add(1) },
					OnDecision:      func(_ string, r ratelimit.Result) { mu.Lock(); bySource[r.Source]++; mu.Unlock() },
				}))
			require.NoError(t, err)
			ctx := ctxT(t, 60*time.Second)
			res, err := l.Allow(ctx, "k")
			require.NoError(t, err)
			require.Equal(t, ratelimit.SourceRedis, res.Source)

			require.NoError(t, s.Stop())
			for i := range 3 {
				res, err := l.Allow(ctx, "k")
				require.NoError(t, err, "Redis failures are answered by the fallback")
				require.Equal(t, ratelimit.SourceFallback, res.Source)
				tc.check(t, i, res)
			}
			assert.Equal(t, "open", l.BreakerState())
			assert.Equal(t, int64(3), hookErrs.Load())
			calls := l.Stats().RedisCalls
			for i := 3; i < 10; i++ {
				res, err := l.Allow(ctx, "k")
				require.NoError(t, err)
				require.Equal(t, ratelimit.SourceFallback, res.Source)
				tc.check(t, i, res)
			}
			assert.Equal(t, calls, l.Stats().RedisCalls, "an open breaker must not call Redis")
			assert.Equal(t, int64(3), hookErrs.Load(), "open-breaker answers are not new errors")

			require.NoError(t, s.Start())
			require.Eventually(t, func() bool {
				res, err := l.Allow(ctx, "k")
				return err == nil && res.Source == ratelimit.SourceRedis
			}, 20*time.Second, 20*time.Millisecond, "the breaker must close by itself")
			assert.Equal(t, "closed", l.BreakerState())
			mu.Lock()
			defer mu.Unlock()
			assert.Contains(t, changes, "closed->open")
			assert.Contains(t, changes, "half-open->closed")
			assert.GreaterOrEqual(t, bySource[ratelimit.SourceFallback], 10)
			st := l.Stats()
			assert.Equal(t, uint64(bySource[ratelimit.SourceFallback]), st.Fallback)
			assert.Equal(t, uint64(bySource[ratelimit.SourceRedis]), st.Redis)
		})
	}
}

// TestBreakerOpenIsFast: answers while the breaker is open do not touch the
// network, so 1000 of them take nowhere near 1000 dial timeouts. (Not a
// timing assertion: the bound is a thousand times the cost.)
func TestBreakerOpenIsFast(t *testing.T) {
	s := redistest.StartServer(t)
	c := s.Client(t, func(o *redis.Options) { o.MaxRetries = -1; o.DialTimeout = 100 * time.Millisecond })
	l, err := ratelimit.NewRedis(c, ratelimit.PerSecond(10), ratelimit.WithBreaker(1, time.Minute))
	require.NoError(t, err)
	require.NoError(t, s.Stop())
	ctx := ctxT(t, 30*time.Second)
	_, err = l.Allow(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "open", l.BreakerState())
	start := time.Now()
	for range 1000 {
		res, err := l.Allow(ctx, "k")
		require.NoError(t, err)
		require.Equal(t, ratelimit.SourceFallback, res.Source)
	}
	assert.Less(t, time.Since(start), 100*time.Second)
	t.Logf("1000 fallback answers in %v", time.Since(start))
}

// TestRetryCountsOnce pauses Redis past the client's read timeout so that
// go-redis re-sends the script; when Redis resumes it runs every copy. By
// default the re-sent copies are refused, with request IDs they return the
// first reply: either way the request is counted once. With neither (the
// control, the guard switched off) it counts more than once, which shows
// the test can fail.
func TestRetryCountsOnce(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ridTTL time.Duration // -1: the default
		once   bool
	}{{"default-resend-guard", -1, true}, {"request-ids", 15 * time.Second, true}, {"control-unguarded", 0, false}} {
		t.Run(tc.name, func(t *testing.T) {
			s := redistest.StartServer(t)
			c := s.Client(t, func(o *redis.Options) {
				o.MaxRetries = 2
				o.MinRetryBackoff = time.Millisecond
				o.MaxRetryBackoff = 2 * time.Millisecond
				o.ReadTimeout = 150 * time.Millisecond
				o.PoolSize = 4
			})
			ctx := ctxT(t, 60*time.Second)
			ridOpt := ratelimit.WithRequestIDTTL(tc.ridTTL)
			if tc.ridTTL < 0 {
				ridOpt = ratelimit.WithDenyCache(0) // no option: the default
			}
			l, err := ratelimit.NewRedis(c, ratelimit.PerHour(10), ridOpt,
				ratelimit.WithFallback(ratelimit.FailOpen), ratelimit.WithDenyCache(0))
			require.NoError(t, err)
			warmForPause(t, ctx, c, l, "k")

			require.NoError(t, s.Pause())
			t.Cleanup(func() { _ = s.Resume() })
			var errs atomic.Int64
			l2, err := ratelimit.NewRedis(c, ratelimit.PerHour(10), ridOpt,
				ratelimit.WithFallback(ratelimit.FailOpen), ratelimit.WithDenyCache(0),
				ratelimit.WithHooks(ratelimit.Hooks{OnError: func(string, error) { errs.Add(1) }}))
			require.NoError(t, err)
			if !tc.once {
				ratelimit.DisableResendGuard(l2)
			}
			res, err := l2.Allow(ctx, "k")
			require.NoError(t, err)
			require.Equal(t, ratelimit.SourceFallback, res.Source, "Redis is paused: every attempt times out")
			require.Equal(t, int64(1), errs.Load())
			require.NoError(t, s.Resume())

			// Redis now runs the queued copies. Poll until they are done:
			// the count stops changing.
			peek := func() int {
				r, err := l.AllowN(ctx, "k", 0)
				if err != nil || r.Source != ratelimit.SourceRedis {
					return -1
				}
				return 10 - r.Remaining
			}
			if !tc.once {
				// control: the copies do get counted again
				require.Eventually(t, func() bool { return peek() > 1 }, 20*time.Second, 20*time.Millisecond,
					"control: without request IDs the retries must count again")
			}
			// wait until the count has settled: unchanged over 300ms
			var counted int
			require.Eventually(t, func() bool {
				c1 := peek()
				if c1 < 1 {
					return false
				}
				select {
				case <-time.After(300 * time.Millisecond):
				case <-ctx.Done():
					return false
				}
				counted = peek()
				return counted == c1
			}, 20*time.Second, 20*time.Millisecond)
			t.Logf("one request counted %d times", counted)
			if tc.once {
				assert.Equal(t, 1, counted, "a retried request must be counted once")
			} else {
				assert.Greater(t, counted, 1, "control: without request IDs the retries count again")
			}
		})
	}
}

// TestRequestIDTTLFor: the suggested request-ID TTL follows the client's
// retry settings and is 0 for a client that never re-sends; request IDs are
// off unless asked for.
func TestRequestIDTTLFor(t *testing.T) {
	db := redistest.New(t)
	tests := []struct {
		name string
		mod  func(*redis.UniversalOptions)
		want time.Duration
	}{
		{"defaults", func(*redis.UniversalOptions) {}, 4*(5*time.Second+5*time.Second+time.Second) + time.Second},
		{"no retries", func(o *redis.UniversalOptions) { o.MaxRetries = -1 }, 0},
		{"short", func(o *redis.UniversalOptions) {
			o.MaxRetries = 1
			o.ReadTimeout = 100 * time.Millisecond
			o.WriteTimeout = 100 * time.Millisecond
			o.MaxRetryBackoff = 50 * time.Millisecond
		}, 2*250*time.Millisecond + time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, ratelimit.RequestIDTTLFor(db.NewClient(t, tt.mod)))
		})
	}
	l, err := ratelimit.NewRedis(db.Client, ratelimit.PerSecond(1))
	require.NoError(t, err)
	assert.Zero(t, l.RequestIDTTL(), "off by default")
	l, err = ratelimit.NewRedis(db.Client, ratelimit.PerSecond(1), ratelimit.WithRequestIDTTL(3*time.Second))
	require.NoError(t, err)
	assert.Equal(t, 3*time.Second, l.RequestIDTTL())
}

// TestResentCopyAnswered pauses Redis past one read timeout but not past
// the client's retries, so that a re-sent copy gets an answer: by default
// it is refused (the call fails with ErrResent and the fallback decides);
// with request IDs it returns the first copy's reply. Either way Redis
// counted the request once.
func TestResentCopyAnswered(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ridTTL time.Duration
	}{{"default", 0}, {"request-ids", 15 * time.Second}} {
		t.Run(tc.name, func(t *testing.T) {
			s := redistest.StartServer(t)
			c := s.Client(t, func(o *redis.Options) {
				o.MaxRetries = 3
				o.MinRetryBackoff = time.Millisecond
				o.MaxRetryBackoff = 2 * time.Millisecond
				o.ReadTimeout = 400 * time.Millisecond
				o.PoolSize = 4
			})
			ctx := ctxT(t, 60*time.Second)
			var hookErr atomic.Value
			l, err := ratelimit.NewRedis(c, ratelimit.PerHour(10), ratelimit.WithRequestIDTTL(tc.ridTTL),
				ratelimit.WithFallback(ratelimit.FailClosed), ratelimit.WithDenyCache(0),
				ratelimit.WithHooks(ratelimit.Hooks{OnError: func(_ string, err error) { hookErr.Store(err) }}))
			require.NoError(t, err)
			warmForPause(t, ctx, c, l, "k")

			require.NoError(t, s.Pause())
			resumed := make(chan error, 1)
			go func() {
				time.Sleep(600 * time.Millisecond) // past the first read timeout
				resumed <- s.Resume()
			}()
			res, err := l.Allow(ctx, "k")
			require.NoError(t, <-resumed)
			require.NoError(t, err)
			if tc.ridTTL == 0 {
				require.Equal(t, ratelimit.SourceFallback, res.Source)
				require.False(t, res.Allowed, "FailClosed decided")
				e, _ := hookErr.Load().(error)
				require.ErrorIs(t, e, ratelimit.ErrResent)
			} else {
				require.Equal(t, ratelimit.SourceRedis, res.Source, "the re-sent copy returned the first reply")
				require.True(t, res.Allowed)
				require.Equal(t, 9, res.Remaining)
			}
			peek, err := l.AllowN(ctx, "k", 0)
			require.NoError(t, err)
			require.Equal(t, 9, peek.Remaining, "counted once")
		})
	}
}
