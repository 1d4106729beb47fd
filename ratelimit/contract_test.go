package ratelimit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/ratelimit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// backend builds a limiter for limits (one limit: NewRedis/NewLocal; more:
// NewMulti/NewLocalMulti).
type backend struct {
	name  string
	redis bool
	make  func(t *testing.T, limits []ratelimit.Limit, opts ...ratelimit.Option) ratelimit.Limiter
}

func backends() []backend {
	bs := []backend{{
		name: "local",
		make: func(t *testing.T, limits []ratelimit.Limit, opts ...ratelimit.Option) ratelimit.Limiter {
			t.Helper()
			if len(limits) == 1 {
				l, err := ratelimit.NewLocal(limits[0], opts...)
				require.NoError(t, err)
				return l
			}
			l, err := ratelimit.NewLocalMulti(limits, opts...)
			require.NoError(t, err)
			return l
		},
	}}
	for _, d := range []struct {
		name string
		mk   func(testing.TB) *redistest.DB
	}{{"redis", redistest.New}, {"cluster", redistest.NewCluster}} {
		bs = append(bs, backend{
			name:  d.name,
			redis: true,
			make: func(t *testing.T, limits []ratelimit.Limit, opts ...ratelimit.Option) ratelimit.Limiter {
				t.Helper()
				db := d.mk(t)
				opts = append([]ratelimit.Option{ratelimit.WithPrefix(db.Prefix)}, opts...)
				l, err := ratelimit.NewMulti(db.Client, limits, opts...)
				require.NoError(t, err)
				t.Cleanup(func() { requireRedisDecided(t, l) })
				return l
			},
		})
	}
	return bs
}

// requireRedisDecided fails t unless Redis made every decision l did not
// answer locally: a limiter that silently degrades to its fallback must fail
// its own contract suite.
func requireRedisDecided(t *testing.T, l *ratelimit.RedisLimiter) {
	t.Helper()
	st := l.Stats()
	assert.Zerof(t, st.Fallback, "%d decisions came from the fallback, want 0 (stats %+v)", st.Fallback, st)
	assert.Zerof(t, st.Invalid, "%d calls failed with an invalid reply, want 0 (stats %+v)", st.Invalid, st)
	assert.Zerof(t, st.Errors, "%d Redis errors, want 0 (stats %+v)", st.Errors, st)
	if st.RedisCalls > 0 {
		assert.NotZero(t, st.Redis, "no decision came from Redis")
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestContract runs the same behaviour against every backend. Periods are
// long (a minute or more) so that no quota comes back while a case runs:
// counts are exact, no timing involved.
func TestContract(t *testing.T) {
	for _, b := range backends() {
		t.Run("backend="+b.name, func(t *testing.T) {
			t.Run("burst then deny", func(t *testing.T) {
				lim := ratelimit.Limit{Rate: 10, Period: time.Minute, Burst: 5}
				l := b.make(t, []ratelimit.Limit{lim})
				ctx := ctxT(t, 10*time.Second)
				for i := range 5 {
					res, err := l.Allow(ctx, "k")
					require.NoError(t, err)
					require.Truef(t, res.Allowed, "request %d: got denied, want allowed", i)
					assert.Equal(t, 4-i, res.Remaining, "remaining after request %d", i)
					assert.Equal(t, time.Duration(0), res.RetryAfter)
					assert.Equal(t, lim, res.Limit)
					assert.InDelta(t, float64(6*time.Second)*float64(i+1), float64(res.ResetAfter), float64(time.Second))
					if b.redis {
						assert.Equal(t, ratelimit.SourceRedis, res.Source)
					} else {
						assert.Equal(t, ratelimit.SourceLocal, res.Source)
					}
				}
				res, err := l.Allow(ctx, "k")
				require.NoError(t, err)
				assert.False(t, res.Allowed, "6th request: got allowed, want denied")
				assert.Equal(t, 0, res.Remaining)
				assert.Greater(t, res.RetryAfter, time.Duration(0))
				assert.LessOrEqual(t, res.RetryAfter, 6*time.Second)
				assert.Greater(t, res.ResetAfter, 24*time.Second)
				assert.LessOrEqual(t, res.ResetAfter, 30*time.Second)

				other, err := l.Allow(ctx, "other")
				require.NoError(t, err)
				assert.True(t, other.Allowed, "another key: got denied, want allowed")
				assert.Equal(t, 4, other.Remaining)
			})

			t.Run("AllowN all or nothing", func(t *testing.T) {
				l := b.make(t, []ratelimit.Limit{ratelimit.PerHour(5)})
				ctx := ctxT(t, 10*time.Second)
				res, err := l.AllowN(ctx, "k", 3)
				require.NoError(t, err)
				require.True(t, res.Allowed)
				assert.Equal(t, 2, res.Remaining)
				res, err = l.AllowN(ctx, "k", 3)
				require.NoError(t, err)
				assert.False(t, res.Allowed, "got allowed 3 with 2 left")
				assert.Equal(t, 2, res.Remaining, "a deny must consume nothing")
				res, err = l.AllowN(ctx, "k", 2)
				require.NoError(t, err)
				assert.True(t, res.Allowed)
				assert.Equal(t, 0, res.Remaining)
			})

			t.Run("n zero peeks", func(t *testing.T) {
				l := b.make(t, []ratelimit.Limit{ratelimit.PerHour(4)})
				ctx := ctxT(t, 10*time.Second)
				res, err := l.AllowN(ctx, "k", 0)
				require.NoError(t, err)
				assert.True(t, res.Allowed)
				assert.Equal(t, 4, res.Remaining)
				_, err = l.AllowN(ctx, "k", 4)
				require.NoError(t, err)
				for range 3 {
					res, err = l.AllowN(ctx, "k", 0)
					require.NoError(t, err)
					assert.True(t, res.Allowed)
					assert.Equal(t, 0, res.Remaining)
				}
			})

			t.Run("n above burst never allowed", func(t *testing.T) {
				l := b.make(t, []ratelimit.Limit{ratelimit.PerHour(3)})
				defer verifyNoLeaks(t)()
				ctx := ctxT(t, 10*time.Second)
				res, err := l.AllowN(ctx, "k", 4)
				require.NoError(t, err)
				assert.False(t, res.Allowed)
				assert.Equal(t, time.Duration(-1), res.RetryAfter)
				assert.Equal(t, 3, res.Remaining, "nothing consumed")
				err = l.(interface {
					WaitN(context.Context, string, int) error
				}).WaitN(ctx, "k", 4)
				require.ErrorIs(t, err, ratelimit.ErrExceedsBurst)
				require.NoError(t, ctx.Err(), "WaitN must fail at once, not wait for ctx")
			})

			t.Run("bad arguments", func(t *testing.T) {
				l := b.make(t, []ratelimit.Limit{ratelimit.PerHour(3)})
				ctx := ctxT(t, 10*time.Second)
				_, err := l.AllowN(ctx, "k", -1)
				require.ErrorIs(t, err, ratelimit.ErrInvalidArgument)
				assert.Contains(t, err.Error(), "n must be >= 0, got -1")
				_, err = l.Allow(ctx, "")
				require.ErrorIs(t, err, ratelimit.ErrInvalidArgument)
				assert.Contains(t, err.Error(), "key")
				require.ErrorIs(t, l.Wait(ctx, ""), ratelimit.ErrInvalidArgument)
			})

			t.Run("Wait honours ctx", func(t *testing.T) {
				l := b.make(t, []ratelimit.Limit{ratelimit.PerHour(1)})
				defer verifyNoLeaks(t)()
				ctx := ctxT(t, 10*time.Second)
				require.NoError(t, l.Wait(ctx, "k"))
				short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
				defer cancel()
				err := l.Wait(short, "k")
				require.ErrorIs(t, err, context.DeadlineExceeded)

				canceled, cancel2 := context.WithCancel(ctx)
				done := make(chan error, 1)
				go func() { done <- l.Wait(canceled, "k") }()
				cancel2()
				select {
				case err := <-done:
					require.ErrorIs(t, err, context.Canceled)
				case <-ctx.Done():
					t.Fatal("Wait did not return after its ctx was canceled")
				}
			})

			t.Run("Wait waits for quota", func(t *testing.T) {
				// 1 per 50ms: the second Wait needs about 50ms.
				l := b.make(t, []ratelimit.Limit{{Rate: 20, Period: time.Second, Burst: 1}})
				defer verifyNoLeaks(t)()
				ctx := ctxT(t, 20*time.Second)
				require.NoError(t, l.Wait(ctx, "k"))
				require.NoError(t, l.Wait(ctx, "k"))
				res, err := l.Allow(ctx, "k")
				require.NoError(t, err)
				if res.Allowed {
					// Only possible if the machine stalled ~50ms between calls.
					t.Log("third request allowed: the machine is slow")
				}
			})

			t.Run("multi all or nothing", func(t *testing.T) {
				perMin := ratelimit.Limit{Rate: 3, Period: time.Minute, Burst: 3}
				perHour := ratelimit.Limit{Rate: 5, Period: time.Hour, Burst: 5}
				l := b.make(t, []ratelimit.Limit{perMin, perHour})
				ctx := ctxT(t, 10*time.Second)
				for i := range 3 {
					res, err := l.Allow(ctx, "k")
					require.NoError(t, err)
					require.Truef(t, res.Allowed, "request %d denied", i)
					assert.Equal(t, 2-i, res.Remaining)
					assert.Equal(t, perMin, res.Limit, "tightest limit")
				}
				res, err := l.Allow(ctx, "k")
				require.NoError(t, err)
				assert.False(t, res.Allowed)
				assert.Equal(t, perMin, res.Limit, "the per-minute limit denies")
				assert.Greater(t, res.RetryAfter, 10*time.Second)
				assert.LessOrEqual(t, res.RetryAfter, 20*time.Second)
				res, err = l.AllowN(ctx, "k", 4)
				require.NoError(t, err)
				assert.Equal(t, time.Duration(-1), res.RetryAfter)
				assert.Equal(t, perMin, res.Limit, "cost above the per-minute burst")
			})

			t.Run("multi deny consumes nothing", func(t *testing.T) {
				hourly := ratelimit.Limit{Rate: 1, Period: time.Hour, Burst: 5}
				fast := ratelimit.Limit{Rate: 20, Period: time.Second, Burst: 3} // full again after 150ms
				l := b.make(t, []ratelimit.Limit{hourly, fast}, ratelimit.WithDenyCache(0))
				ctx := ctxT(t, 20*time.Second)
				res, err := l.AllowN(ctx, "k", 3)
				require.NoError(t, err)
				require.True(t, res.Allowed)
				// fast is empty now: this is denied by fast, and must not take
				// the 2 tokens hourly still has.
				res, err = l.AllowN(ctx, "k", 2)
				require.NoError(t, err)
				if !res.Allowed {
					assert.Equal(t, fast, res.Limit)
					assert.LessOrEqual(t, res.RetryAfter, 100*time.Millisecond)
					require.Eventually(t, func() bool {
						res, err = l.AllowN(ctx, "k", 2)
						return err == nil && res.Allowed
					}, 10*time.Second, 10*time.Millisecond)
				}
				// hourly is empty now.
				assert.Equal(t, 0, res.Remaining)
				require.Eventually(t, func() bool {
					res, err = l.AllowN(ctx, "k", 1)
					return err == nil && res.Limit == hourly
				}, 10*time.Second, 10*time.Millisecond)
				assert.False(t, res.Allowed)
				assert.Greater(t, res.RetryAfter, 50*time.Minute)
			})

			t.Run("shadow mode", func(t *testing.T) {
				var shadowed int
				l := b.make(t, []ratelimit.Limit{ratelimit.PerHour(2)}, ratelimit.WithShadow(true),
					ratelimit.WithHooks(ratelimit.Hooks{OnDecision: func(_ string, r ratelimit.Result) {
						if r.Shadowed {
							shadowed++
						}
					}}))
				ctx := ctxT(t, 10*time.Second)
				for i := range 5 {
					res, err := l.Allow(ctx, "k")
					require.NoError(t, err)
					assert.True(t, res.Allowed, "shadow mode must allow")
					assert.Equalf(t, i >= 2, res.Shadowed, "request %d Shadowed", i)
				}
				assert.Equal(t, 3, shadowed)
			})
		})
	}
}

func TestValidation(t *testing.T) {
	db := redistest.New(t)
	tests := []struct {
		name  string
		limit ratelimit.Limit
		want  string
	}{
		{"zero rate", ratelimit.Limit{Rate: 0, Period: time.Second, Burst: 1}, "Limit.Rate must be >= 1, got 0"},
		{"negative rate", ratelimit.Limit{Rate: -3, Period: time.Second, Burst: 1}, "Limit.Rate must be >= 1, got -3"},
		{"zero period", ratelimit.Limit{Rate: 1, Period: 0, Burst: 1}, "Limit.Period must be >= 1µs, got 0s"},
		{"negative period", ratelimit.Limit{Rate: 1, Period: -time.Second, Burst: 1}, "Limit.Period must be >= 1µs"},
		{"zero burst", ratelimit.Limit{Rate: 1, Period: time.Second, Burst: 0}, "Limit.Burst must be >= 1, got 0"},
		{"sub-µs period", ratelimit.Limit{Rate: 1, Period: 1500 * time.Nanosecond, Burst: 1}, "whole number of microseconds"},
		{"too large", ratelimit.Limit{Rate: 1, Period: 24 * time.Hour, Burst: 1 << 30}, "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ratelimit.NewLocal(tt.limit)
			require.ErrorIs(t, err, ratelimit.ErrInvalidLimit)
			assert.Contains(t, err.Error(), tt.want)
			_, err = ratelimit.NewRedis(db.Client, tt.limit)
			require.ErrorIs(t, err, ratelimit.ErrInvalidLimit)
			assert.Contains(t, err.Error(), tt.want)
			_, err = ratelimit.NewMulti(db.Client, []ratelimit.Limit{ratelimit.PerSecond(1), tt.limit})
			require.ErrorIs(t, err, ratelimit.ErrInvalidLimit)
			assert.Contains(t, err.Error(), "limit 1")
		})
	}
	optTests := []struct {
		name string
		opt  ratelimit.Option
		want string
	}{
		{"batch size", ratelimit.WithBatch(0, time.Second), "WithBatch size must be >= 1, got 0"},
		{"batch age", ratelimit.WithBatch(5, 0), "WithBatch maxAge"},
		{"breaker", ratelimit.WithBreaker(0, time.Second), "WithBreaker failures must be >= 1, got 0"},
		{"deny cache", ratelimit.WithDenyCache(-1), "WithDenyCache size must be >= 0, got -1"},
		{"max keys", ratelimit.WithMaxKeys(0), "WithMaxKeys must be >= 1, got 0"},
		{"request id", ratelimit.WithRequestIDTTL(-time.Second), "WithRequestIDTTL"},
		{"fallback", ratelimit.WithFallback(ratelimit.FailLocal(ratelimit.Limit{})), "FailLocal limit 0"},
		{"algorithm", ratelimit.WithAlgorithm(7), "unknown algorithm"},
	}
	for _, tt := range optTests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ratelimit.NewRedis(db.Client, ratelimit.PerSecond(1), tt.opt)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	_, err := ratelimit.NewRedis(nil, ratelimit.PerSecond(1))
	assert.ErrorIs(t, err, ratelimit.ErrInvalidArgument)
	_, err = ratelimit.NewMulti(db.Client, nil)
	assert.ErrorIs(t, err, ratelimit.ErrInvalidLimit)
	_, err = ratelimit.NewLocal(ratelimit.PerSecond(1), ratelimit.WithAlgorithm(ratelimit.SlidingWindow))
	assert.ErrorIs(t, err, ratelimit.ErrInvalidArgument)
	_, err = ratelimit.NewMulti(db.Client, []ratelimit.Limit{ratelimit.PerSecond(1), ratelimit.PerHour(5)},
		ratelimit.WithFallback(ratelimit.FailLocal(ratelimit.PerSecond(1))))
	assert.ErrorIs(t, err, ratelimit.ErrInvalidArgument)
}

func TestLimitConstructors(t *testing.T) {
	assert.Equal(t, ratelimit.Limit{Rate: 5, Period: time.Second, Burst: 5}, ratelimit.PerSecond(5))
	assert.Equal(t, ratelimit.Limit{Rate: 5, Period: time.Minute, Burst: 5}, ratelimit.PerMinute(5))
	assert.Equal(t, ratelimit.Limit{Rate: 5, Period: time.Hour, Burst: 5}, ratelimit.PerHour(5))
	assert.Equal(t, 20, ratelimit.PerSecond(5).WithBurst(20).Burst)
	assert.Equal(t, 200*time.Millisecond, ratelimit.PerSecond(5).Interval())
	assert.Equal(t, "redis", ratelimit.SourceRedis.String())
	assert.True(t, errors.Is(ratelimit.PerSecond(0).Validate(), ratelimit.ErrInvalidLimit))
}

// verifyNoLeaks returns a check, to defer, that no goroutine started since
// the call is still running, apart from go-redis' own per-node goroutines
// (a cluster client dials nodes lazily; the client's Close stops them).
func verifyNoLeaks(t *testing.T) func() {
	opts := []goleak.Option{
		goleak.IgnoreCurrent(),
		goleak.IgnoreTopFunction("github.com/redis/go-redis/v9/maintnotifications.(*CircuitBreakerManager).cleanupLoop"),
	}
	return func() { goleak.VerifyNone(t, opts...) }
}
