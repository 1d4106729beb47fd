package ratelimit_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/ratelimit"
)

var algorithms = []ratelimit.Algorithm{ratelimit.GCRA, ratelimit.SlidingWindow}

// TestMultiAcrossReplicas: a multi-limit limiter decides on Redis and holds
// every limit across three replicas, on a single node and on a Cluster, with
// both algorithms. (It used to fail in the script on every call and answer
// from each replica's fallback: 3 × the limit.)
func TestMultiAcrossReplicas(t *testing.T) {
	for _, mk := range []func(testing.TB) *redistest.DB{redistest.New, redistest.NewCluster} {
		db := mk(t)
		for _, alg := range algorithms {
			t.Run("cluster="+strconv.FormatBool(db.Cluster)+"/alg="+alg.String(), func(t *testing.T) {
				perMin := ratelimit.Limit{Rate: 10, Period: time.Minute, Burst: 10}
				perHour := ratelimit.Limit{Rate: 25, Period: time.Hour, Burst: 25}
				prefix := db.Prefix + alg.String() + ":"
				var lims []*ratelimit.RedisLimiter
				for range 3 {
					l := newRedis(t, db.NewClient(t), prefix, []ratelimit.Limit{perMin, perHour},
						ratelimit.WithAlgorithm(alg), ratelimit.WithDenyCache(0))
					t.Cleanup(func() { requireRedisDecided(t, l) })
					lims = append(lims, l)
				}
				ctx := ctxT(t, 20*time.Second)
				allowed := 0
				for i := range 30 {
					res, err := lims[i%3].Allow(ctx, "k")
					require.NoError(t, err)
					require.Equal(t, ratelimit.SourceRedis, res.Source, "request %d", i)
					if res.Allowed {
						allowed++
					} else {
						assert.Equal(t, perMin, res.Limit, "request %d: the per-minute limit denies", i)
					}
				}
				assert.Equal(t, perMin.Burst, allowed, "allowed across 3 replicas: got %d, want %d", allowed, perMin.Burst)

				// the hourly limit is shared too: 15 more on another key
				// after taking 20 of its 25 in cost
				res, err := lims[0].AllowN(ctx, "h", 10)
				require.NoError(t, err)
				require.True(t, res.Allowed)
				res, err = lims[1].AllowN(ctx, "h", 10)
				require.NoError(t, err)
				assert.False(t, res.Allowed, "second 10 within a minute: the per-minute limit (10) denies")
				assert.Equal(t, ratelimit.SourceRedis, res.Source)
			})
		}
	}
}

// TestInvalidReplyFailsLoudly: when Redis' answer means the script or the
// key's data is wrong, Allow returns the error (no fallback), counts it,
// calls OnError, logs it once, and the breaker stays closed; a healthy key
// on the same limiter keeps deciding on Redis.
func TestInvalidReplyFailsLoudly(t *testing.T) {
	cases := []struct {
		name  string
		alg   ratelimit.Algorithm
		limit []ratelimit.Limit
		// breakKey makes key's state unusable; breakLimiter breaks the
		// limiter itself (then the healthy key fails too)
		breakKey     func(t *testing.T, c redis.UniversalClient, key string)
		breakLimiter func(l *ratelimit.RedisLimiter)
		want         string // in the error
	}{
		{name: "gcra wrong type", alg: ratelimit.GCRA, limit: []ratelimit.Limit{ratelimit.PerMinute(5)}, want: "WRONGTYPE",
			breakKey: func(t *testing.T, c redis.UniversalClient, key string) {
				require.NoError(t, c.HSet(context.Background(), key, "f", "v").Err())
			}},
		{name: "gcra multi wrong type", alg: ratelimit.GCRA, limit: []ratelimit.Limit{ratelimit.PerSecond(5), ratelimit.PerMinute(100)}, want: "WRONGTYPE",
			breakKey: func(t *testing.T, c redis.UniversalClient, key string) {
				require.NoError(t, c.RPush(context.Background(), key, "x").Err())
			}},
		{name: "window wrong type", alg: ratelimit.SlidingWindow, limit: []ratelimit.Limit{ratelimit.PerMinute(5)}, want: "WRONGTYPE",
			breakKey: func(t *testing.T, c redis.UniversalClient, key string) {
				require.NoError(t, c.Set(context.Background(), key, "x", 0).Err())
			}},
		{name: "script error", alg: ratelimit.GCRA, limit: []ratelimit.Limit{ratelimit.PerMinute(5), ratelimit.PerHour(50)}, want: "user_script",
			breakLimiter: func(l *ratelimit.RedisLimiter) { ratelimit.SetScript(l, "return never + 1") }},
		{name: "reply of the wrong shape", alg: ratelimit.GCRA, limit: []ratelimit.Limit{ratelimit.PerMinute(5)}, want: "unexpected reply",
			breakLimiter: func(l *ratelimit.RedisLimiter) { ratelimit.SetScript(l, "return 'allowed'") }},
		{name: "reply of the wrong type", alg: ratelimit.GCRA, limit: []ratelimit.Limit{ratelimit.PerMinute(5)}, want: "unexpected reply",
			breakLimiter: func(l *ratelimit.RedisLimiter) { ratelimit.SetScript(l, "return {1, 2}") }},
	}
	for _, mk := range []func(testing.TB) *redistest.DB{redistest.New, redistest.NewCluster} {
		db := mk(t)
		for _, tc := range cases {
			t.Run("cluster="+strconv.FormatBool(db.Cluster)+"/"+tc.name, func(t *testing.T) {
				logger, logs := redistest.NewLogs()
				var hookErrs atomic.Int64
				prefix := db.Prefix + strings.ReplaceAll(tc.name, " ", "-") + ":"
				l := newRedis(t, db.Client, prefix, tc.limit, ratelimit.WithAlgorithm(tc.alg),
					ratelimit.WithLogger(logger), ratelimit.WithBreaker(3, time.Minute),
					ratelimit.WithHooks(ratelimit.Hooks{OnError: func(string, error) { hookErrs.Add(1) }}))
				ctx := ctxT(t, 20*time.Second)
				if tc.breakKey != nil {
					tc.breakKey(t, db.Client, l.Key("bad"))
				}
				if tc.breakLimiter != nil {
					tc.breakLimiter(l)
				}
				const calls = 10 // more than the breaker's 3 failures
				for i := range calls {
					res, err := l.Allow(ctx, "bad")
					require.Errorf(t, err, "call %d: got %+v and no error, want the invalid reply", i, res)
					assert.Contains(t, err.Error(), tc.want)
					assert.Contains(t, err.Error(), `ratelimit: allow "bad"`)
					assert.False(t, errors.Is(err, ratelimit.ErrResent))
					assert.Equal(t, ratelimit.Result{}, res)
				}
				st := l.Stats()
				assert.Equal(t, uint64(calls), st.Invalid, "Stats.Invalid")
				assert.Zero(t, st.Fallback, "the fallback answered")
				assert.Zero(t, st.Errors, "counted as Redis unavailable")
				assert.Equal(t, int64(calls), hookErrs.Load(), "OnError calls")
				assert.Equal(t, "closed", l.BreakerState(), "an invalid reply opened the breaker")
				assert.Equal(t, 1, logs.Count(slog.LevelError), "error log lines, want 1 (once per kind):\n%s", logs)

				res, err := l.Allow(ctx, "good")
				if tc.breakLimiter != nil {
					require.Error(t, err, "a broken script fails for every key")
					assert.Equal(t, 1, logs.Count(slog.LevelError), "still one log line")
					return
				}
				require.NoError(t, err)
				assert.True(t, res.Allowed)
				assert.Equal(t, ratelimit.SourceRedis, res.Source)
			})
		}
	}
}

// TestUnavailableStillFallsBack: the other side of the line, a Redis that
// is down, still answers from the fallback without an error.
func TestUnavailableStillFallsBack(t *testing.T) {
	s := redistest.StartServer(t)
	c := s.Client(t, func(o *redis.Options) { o.MaxRetries = -1; o.DialTimeout = 200 * time.Millisecond })
	l := newRedis(t, c, "fb:", []ratelimit.Limit{ratelimit.PerMinute(5), ratelimit.PerHour(50)})
	ctx := ctxT(t, 20*time.Second)
	res, err := l.Allow(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, ratelimit.SourceRedis, res.Source)
	require.NoError(t, s.Stop())
	for range 3 {
		res, err = l.Allow(ctx, "k")
		require.NoError(t, err)
		assert.Equal(t, ratelimit.SourceFallback, res.Source)
	}
	st := l.Stats()
	assert.Equal(t, uint64(3), st.Fallback)
	assert.Zero(t, st.Invalid)
}
