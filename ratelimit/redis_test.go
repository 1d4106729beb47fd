package ratelimit_test

import (
	"context"
	"strconv"
	"strings"
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

func newRedis(t *testing.T, c redis.UniversalClient, prefix string, limits []ratelimit.Limit, opts ...ratelimit.Option) *ratelimit.RedisLimiter {
	t.Helper()
	opts = append([]ratelimit.Option{ratelimit.WithPrefix(prefix)}, opts...)
	l, err := ratelimit.NewMulti(c, limits, opts...)
	require.NoError(t, err)
	return l
}

func redisTime(t *testing.T, c redis.UniversalClient) time.Time {
	t.Helper()
	tm, err := c.Time(context.Background()).Result()
	require.NoError(t, err)
	return tm
}

// TestRedisKeys checks the key layout: hash-tagged under the prefix, with a
// TTL no longer than the time the state matters.
func TestRedisKeys(t *testing.T) {
	for _, mk := range []func(testing.TB) *redistest.DB{redistest.New, redistest.NewCluster} {
		db := mk(t)
		ctx := ctxT(t, 60*time.Second) // SCAN walks the shared keyspace
		for _, alg := range []ratelimit.Algorithm{ratelimit.GCRA, ratelimit.SlidingWindow} {
			t.Run("cluster="+strconv.FormatBool(db.Cluster)+"/alg="+alg.String(), func(t *testing.T) {
				prefix := db.Prefix + alg.String() + ":"
				l := newRedis(t, db.Client, prefix, []ratelimit.Limit{ratelimit.PerMinute(10)}, ratelimit.WithAlgorithm(alg))
				want := prefix + "{user:1}"
				if alg == ratelimit.SlidingWindow {
					want += ":sw"
				}
				assert.Equal(t, want, l.Key("user:1"))
				_, err := l.AllowN(ctx, "user:1", 3)
				require.NoError(t, err)
				ttl, err := db.Client.PTTL(ctx, l.Key("user:1")).Result()
				require.NoError(t, err)
				assert.Greater(t, ttl, time.Duration(0), "the key must expire by itself")
				if alg == ratelimit.GCRA {
					// 3 events at 6s each: state matters for 18s.
					assert.LessOrEqual(t, ttl, 18*time.Second+10*time.Millisecond)
				} else {
					assert.LessOrEqual(t, ttl, 2*time.Minute+10*time.Millisecond)
				}
				// request IDs live in the same slot and expire too
				keys, err := scanAll(ctx, db, prefix+"*")
				require.NoError(t, err)
				for _, k := range keys {
					assert.Truef(t, strings.HasPrefix(k, prefix+"{user:1}"), "key %q outside the hash tag", k)
					ttl, err := db.Client.PTTL(ctx, k).Result()
					require.NoError(t, err)
					assert.Greaterf(t, ttl, time.Duration(0), "key %q has no TTL", k)
				}
			})
		}
	}
}

func scanAll(ctx context.Context, db *redistest.DB, pattern string) ([]string, error) {
	var keys []string
	scan := func(ctx context.Context, c redis.UniversalClient) error {
		iter := c.Scan(ctx, 0, pattern, 10000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		return iter.Err()
	}
	if cc, ok := db.Client.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		err := cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			iter := c.Scan(ctx, 0, pattern, 10000).Iterator()
			for iter.Next(ctx) {
				mu.Lock()
				keys = append(keys, iter.Val())
				mu.Unlock()
			}
			return iter.Err()
		})
		return keys, err
	}
	return keys, scan(ctx, db.Client)
}

// TestRedisScriptFlush: the script is reloaded after SCRIPT FLUSH and the
// call sent again. On a private server so others' scripts are untouched.
func TestRedisScriptFlush(t *testing.T) {
	s := redistest.StartServer(t)
	c := s.Client(t)
	ctx := ctxT(t, 10*time.Second)
	l := newRedis(t, c, "p:", []ratelimit.Limit{ratelimit.PerHour(3)})
	res, err := l.Allow(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, ratelimit.SourceRedis, res.Source)
	require.NoError(t, c.ScriptFlush(ctx).Err())
	res, err = l.Allow(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, ratelimit.SourceRedis, res.Source, "got %v after SCRIPT FLUSH", res.Source)
	assert.Equal(t, 1, res.Remaining)
	assert.Equal(t, uint64(0), l.Stats().Errors)
}

// TestRedisSlidingWindow checks the sliding-window counter's counting.
func TestRedisSlidingWindow(t *testing.T) {
	for _, mk := range []func(testing.TB) *redistest.DB{redistest.New, redistest.NewCluster} {
		db := mk(t)
		t.Run("cluster="+strconv.FormatBool(db.Cluster), func(t *testing.T) {
			ctx := ctxT(t, 10*time.Second)
			l := newRedis(t, db.Client, db.Prefix, []ratelimit.Limit{ratelimit.PerHour(5), ratelimit.PerMinute(4)},
				ratelimit.WithAlgorithm(ratelimit.SlidingWindow), ratelimit.WithDenyCache(0))
			for i := range 4 {
				res, err := l.Allow(ctx, "k")
				require.NoError(t, err)
				require.True(t, res.Allowed)
				assert.Equal(t, 3-i, res.Remaining)
			}
			res, err := l.Allow(ctx, "k")
			require.NoError(t, err)
			assert.False(t, res.Allowed)
			assert.Equal(t, ratelimit.PerMinute(4), res.Limit)
			// retry is when enough of this window has slid out: at most two minutes
			assert.Greater(t, res.RetryAfter, time.Duration(0))
			assert.LessOrEqual(t, res.RetryAfter, 2*time.Minute)
			res, err = l.AllowN(ctx, "k", 6)
			require.NoError(t, err)
			assert.Equal(t, time.Duration(-1), res.RetryAfter)
		})
	}
}

// TestRedisSlidingWindowSlides uses a short window: after the counts slide
// out the key is allowed again, and never more than Rate in a window.
func TestRedisSlidingWindowSlides(t *testing.T) {
	db := redistest.New(t)
	ctx := ctxT(t, 20*time.Second)
	lim := ratelimit.Limit{Rate: 5, Period: 200 * time.Millisecond, Burst: 5}
	l := newRedis(t, db.Client, db.Prefix, []ratelimit.Limit{lim}, ratelimit.WithAlgorithm(ratelimit.SlidingWindow))
	allowed := 0
	for range 5 {
		res, err := l.Allow(ctx, "k")
		require.NoError(t, err)
		if res.Allowed {
			allowed++
		}
	}
	require.GreaterOrEqual(t, allowed, 1)
	require.Eventually(t, func() bool {
		res, err := l.Allow(ctx, "k2")
		return err == nil && res.Allowed
	}, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, l.Wait(ctx, "k"))
}

// TestExactnessAcrossReplicas: three replicas (three clients, three
// limiters) hammer one key. Redis-side, no window may hold more than
// burst + rate × elapsed allowed requests, and the whole run must be within
// 1 of the ideal count (up to the measured uncertainty of when the first and
// last requests were processed).
func TestExactnessAcrossReplicas(t *testing.T) {
	for _, mk := range []func(testing.TB) *redistest.DB{redistest.New, redistest.NewCluster} {
		db := mk(t)
		t.Run("cluster="+strconv.FormatBool(db.Cluster), func(t *testing.T) {
			// Burst × interval = 500ms: the bucket only loses capacity if all
			// 12 goroutines stall for that long, so "within 1 of ideal" holds
			// on a loaded machine too.
			lim := ratelimit.Limit{Rate: 100, Period: time.Second, Burst: 50}
			run := 1500 * time.Millisecond
			type ev struct{ sent, recv time.Time }
			var (
				mu      sync.Mutex
				allowed []ev
				first   = time.Now().Add(time.Hour) // earliest reply
				last    time.Time                   // latest send
			)
			ctx := ctxT(t, 30*time.Second)
			var wg sync.WaitGroup
			var lims []*ratelimit.RedisLimiter
			for range 3 {
				c := db.NewClient(t)
				lims = append(lims, newRedis(t, c, db.Prefix, []ratelimit.Limit{lim}, ratelimit.WithDenyCache(0)))
			}
			before := time.Now()
			t0 := redisTime(t, db.Client)
			deadline := time.Now().Add(run)
			for _, l := range lims {
				for range 4 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for time.Now().Before(deadline) {
							sent := time.Now()
							res, err := l.Allow(ctx, "hot")
							recv := time.Now()
							if err != nil || res.Source != ratelimit.SourceRedis {
								t.Errorf("Allow: %v, source %v", err, res.Source)
								return
							}
							mu.Lock()
							if recv.Before(first) {
								first = recv
							}
							if sent.After(last) {
								last = sent
							}
							if res.Allowed {
								allowed = append(allowed, ev{sent, recv})
							}
							mu.Unlock()
						}
					}()
				}
			}
			wg.Wait()
			lastSent := last
			t1 := redisTime(t, db.Client)
			after := time.Now()

			n := len(allowed)
			rate := float64(lim.Rate) / lim.Period.Seconds()
			elapsed := t1.Sub(t0).Seconds()
			// upper bound over the whole run, Redis clock
			assert.LessOrEqualf(t, float64(n), float64(lim.Burst)+rate*elapsed, "allowed %d in %.3fs", n, elapsed)
			// lower bound: within 1 of ideal, less the time the first and last
			// processing may lie inside [t0, t1] without us seeing it
			slack := first.Sub(before).Seconds() + after.Sub(lastSent).Seconds()
			ideal := float64(lim.Burst) + rate*elapsed
			assert.GreaterOrEqualf(t, float64(n), ideal-1-rate*slack, "allowed %d, ideal %.1f, slack %.3fs", n, ideal, slack)
			t.Logf("allowed %d, ideal %.1f (%.3fs), slack %.3fs", n, ideal, elapsed, slack)

			// windows: a request whose [sent, recv] lies in [a, b] was processed
			// in it, so their count is bounded by burst + rate × (b - a).
			for a := before; a.Before(after); a = a.Add(20 * time.Millisecond) {
				for _, w := range []time.Duration{50 * time.Millisecond, 200 * time.Millisecond, 700 * time.Millisecond} {
					b := a.Add(w)
					cnt := 0
					for _, e := range allowed {
						if !e.sent.Before(a) && !e.recv.After(b) {
							cnt++
						}
					}
					require.LessOrEqualf(t, float64(cnt), float64(lim.Burst)+rate*w.Seconds(), "window %v at +%v", w, a.Sub(before))
				}
			}
		})
	}
}

// TestDenyCache: once Redis denies a key, the replica answers it locally
// until RetryAfter, without Redis calls.
func TestDenyCache(t *testing.T) {
	db := redistest.New(t)
	ctx := ctxT(t, 10*time.Second)
	l := newRedis(t, db.Client, db.Prefix, []ratelimit.Limit{ratelimit.PerHour(2)})
	for range 2 {
		res, err := l.Allow(ctx, "abuser")
		require.NoError(t, err)
		require.True(t, res.Allowed)
	}
	res, err := l.Allow(ctx, "abuser")
	require.NoError(t, err)
	require.False(t, res.Allowed)
	require.Equal(t, ratelimit.SourceRedis, res.Source)
	calls := l.Stats().RedisCalls
	for range 100 {
		res, err = l.Allow(ctx, "abuser")
		require.NoError(t, err)
		require.False(t, res.Allowed)
		require.Equal(t, ratelimit.SourceDenyCache, res.Source)
		require.Greater(t, res.RetryAfter, 29*time.Minute)
	}
	assert.Equal(t, calls, l.Stats().RedisCalls, "deny cache must not call Redis")
	assert.Equal(t, uint64(100), l.Stats().DenyCache)
	// a cheaper request (n=0 peek) still goes to Redis
	res, err = l.AllowN(ctx, "abuser", 0)
	require.NoError(t, err)
	assert.Equal(t, ratelimit.SourceRedis, res.Source)

	// off: every call goes to Redis
	off := newRedis(t, db.Client, db.Prefix, []ratelimit.Limit{ratelimit.PerHour(2)}, ratelimit.WithDenyCache(0))
	for range 5 {
		res, err := off.Allow(ctx, "abuser")
		require.NoError(t, err)
		assert.Equal(t, ratelimit.SourceRedis, res.Source)
		assert.False(t, res.Allowed)
	}
}

// TestDenyCacheExpires uses a short retry: after it, Redis is asked again.
func TestDenyCacheExpires(t *testing.T) {
	db := redistest.New(t)
	ctx := ctxT(t, 10*time.Second)
	l := newRedis(t, db.Client, db.Prefix, []ratelimit.Limit{{Rate: 10, Period: time.Second, Burst: 1}})
	res, err := l.Allow(ctx, "k")
	require.NoError(t, err)
	require.True(t, res.Allowed)
	require.Eventually(t, func() bool {
		res, err := l.Allow(ctx, "k")
		return err == nil && res.Allowed && res.Source == ratelimit.SourceRedis
	}, 5*time.Second, 5*time.Millisecond)
}

// TestBatching: three replicas take tokens in batches. Redis calls drop by
// more than 5×, and the overshoot stays within replicas × (size − 1).
func TestBatching(t *testing.T) {
	db := redistest.New(t)
	ctx := ctxT(t, 30*time.Second)
	lim := ratelimit.Limit{Rate: 2000, Period: time.Second, Burst: 100}
	const size, replicas = 20, 3
	var lims []*ratelimit.RedisLimiter
	for range replicas {
		lims = append(lims, newRedis(t, db.NewClient(t), db.Prefix, []ratelimit.Limit{lim},
			ratelimit.WithBatch(size, time.Second), ratelimit.WithDenyCache(0)))
	}
	var allowed, decisions atomic.Int64
	t0 := redisTime(t, db.Client)
	deadline := time.Now().Add(time.Second)
	var wg sync.WaitGroup
	for _, l := range lims {
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					res, err := l.Allow(ctx, "hot")
					if err != nil {
						t.Error(err)
						return
					}
					decisions.Add(1)
					if res.Allowed {
						allowed.Add(1)
					}
				}
			}()
		}
	}
	wg.Wait()
	t1 := redisTime(t, db.Client)
	var calls, batch uint64
	for _, l := range lims {
		s := l.Stats()
		calls += s.RedisCalls
		batch += s.Batch
	}
	elapsed := t1.Sub(t0).Seconds()
	bound := float64(lim.Burst) + float64(lim.Rate)*elapsed + replicas*(size-1)
	assert.LessOrEqualf(t, float64(allowed.Load()), bound, "allowed %d in %.3fs", allowed.Load(), elapsed)
	assert.Greater(t, batch, uint64(0))
	// Denies still go to Redis (the deny cache is off here), so compare calls
	// with allowed decisions.
	t.Logf("decisions %d, allowed %d, redis calls %d, from batches %d", decisions.Load(), allowed.Load(), calls, batch)

	// Allowed-only traffic: a limit nobody reaches, calls / decisions.
	roomy := newRedis(t, db.Client, db.Prefix, []ratelimit.Limit{ratelimit.PerSecond(1_000_000)}, ratelimit.WithBatch(size, time.Second))
	for range 1000 {
		res, err := roomy.Allow(ctx, "k")
		require.NoError(t, err)
		require.True(t, res.Allowed)
	}
	s := roomy.Stats()
	assert.LessOrEqualf(t, s.RedisCalls*5, uint64(1000), "got %d Redis calls for 1000 decisions", s.RedisCalls)
	assert.Equal(t, uint64(1000)-s.RedisCalls, s.Batch)
}

// TestBatchTokensExpire: unspent tokens are dropped after maxAge.
func TestBatchTokensExpire(t *testing.T) {
	db := redistest.New(t)
	ctx := ctxT(t, 10*time.Second)
	var now atomic.Int64
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	l := newRedis(t, db.Client, db.Prefix, []ratelimit.Limit{ratelimit.PerHour(100)},
		ratelimit.WithBatch(10, time.Second), ratelimit.WithClock(clock))
	res, err := l.Allow(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, ratelimit.SourceRedis, res.Source)
	res, err = l.Allow(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, ratelimit.SourceBatch, res.Source)
	now.Add(int64(2 * time.Second))
	res, err = l.Allow(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, ratelimit.SourceRedis, res.Source, "expired tokens must not be spent")
	// 10 + 10 taken from Redis, 3 spent: the batches are counted in Redis.
	peek, err := l.AllowN(ctx, "k", 0)
	require.NoError(t, err)
	assert.Equal(t, 80, peek.Remaining)
}
