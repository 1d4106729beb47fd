package ratelimit_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/ratelimit"
)

// TestScriptBranches runs every branch of gcra.lua and window.lua through
// the limiter, on a single node and on a Cluster, with request IDs off and
// on: one limit (the fast path of gcra.lua) and several, allowed, denied,
// never allowed, peek (n = 0) and token batching. Each case checks that
// Redis decided, so a branch that fails in the script fails here. The
// scripts' header comments list these case names.
func TestScriptBranches(t *testing.T) {
	one := []ratelimit.Limit{{Rate: 3, Period: time.Minute, Burst: 3}}
	multi := []ratelimit.Limit{{Rate: 3, Period: time.Minute, Burst: 3}, {Rate: 10, Period: time.Hour, Burst: 10}}
	type step struct {
		n       int
		allowed bool
		never   bool // RetryAfter -1
	}
	branches := []struct {
		name  string
		batch int
		steps []step
	}{
		{name: "allow-deny", steps: []step{{n: 1, allowed: true}, {n: 2, allowed: true}, {n: 1}}},
		{name: "never", steps: []step{{n: 4, never: true}, {n: 1, allowed: true}}},
		{name: "peek", steps: []step{{n: 0, allowed: true}, {n: 3, allowed: true}, {n: 0, allowed: true}}},
		{name: "batch", batch: 2, steps: []step{{n: 1, allowed: true}, {n: 1, allowed: true}, {n: 1, allowed: true}, {n: 1}}},
	}
	for _, mk := range []func(testing.TB) *redistest.DB{redistest.New, redistest.NewCluster} {
		db := mk(t)
		for _, alg := range algorithms {
			for _, limits := range [][]ratelimit.Limit{one, multi} {
				for _, rid := range []time.Duration{0, 15 * time.Second} {
					if alg == ratelimit.SlidingWindow {
						name := "cluster=" + strconv.FormatBool(db.Cluster) + "/alg=" + alg.String() +
							"/limits=" + strconv.Itoa(len(limits)) + "/rid=" + strconv.FormatBool(rid > 0) + "/slide"
						t.Run(name, func(t *testing.T) {
							t.Parallel()
							slideWindow(t, db, name, len(limits), rid)
						})
					}
					for _, br := range branches {
						name := "cluster=" + strconv.FormatBool(db.Cluster) + "/alg=" + alg.String() +
							"/limits=" + strconv.Itoa(len(limits)) + "/rid=" + strconv.FormatBool(rid > 0) + "/" + br.name
						t.Run(name, func(t *testing.T) {
							opts := []ratelimit.Option{ratelimit.WithAlgorithm(alg), ratelimit.WithDenyCache(0), ratelimit.WithRequestIDTTL(rid)}
							if br.batch > 0 {
								opts = append(opts, ratelimit.WithBatch(br.batch, time.Minute))
							}
							l := newRedis(t, db.Client, db.Prefix+strings.ReplaceAll(name, "/", ":")+":", limits, opts...)
							t.Cleanup(func() { requireRedisDecided(t, l) })
							ctx := ctxT(t, 20*time.Second)
							for i, s := range br.steps {
								res, err := l.AllowN(ctx, "k", s.n)
								require.NoError(t, err, "step %d", i)
								assert.Equal(t, s.allowed, res.Allowed, "step %d (n=%d): allowed", i, s.n)
								if s.never {
									assert.Equal(t, time.Duration(-1), res.RetryAfter, "step %d: RetryAfter", i)
								}
								if !s.allowed && !s.never {
									assert.Positive(t, res.RetryAfter, "step %d: RetryAfter", i)
								}
							}
						})
					}
				}
			}
		}
	}
}

// TestScriptRequestIDBranches runs the request-ID branches of the scripts
// by hand, on a single node and on a Cluster: a second copy of an allowed
// request returns the first reply and counts nothing; a second copy of a
// denied one is decided again; a copy marked re-sent with request IDs off
// is refused (resend.lua).
func TestScriptRequestIDBranches(t *testing.T) {
	for _, mk := range []func(testing.TB) *redistest.DB{redistest.New, redistest.NewCluster} {
		db := mk(t)
		for _, alg := range algorithms {
			for _, limits := range [][]ratelimit.Limit{{ratelimit.PerHour(2)}, {ratelimit.PerHour(2), ratelimit.PerMinute(5)}} {
				name := "cluster=" + strconv.FormatBool(db.Cluster) + "/alg=" + alg.String() + "/limits=" + strconv.Itoa(len(limits))
				t.Run(name, func(t *testing.T) {
					ctx := ctxT(t, 20*time.Second)
					l := newRedis(t, db.Client, db.Prefix+strings.ReplaceAll(name, "/", ":")+":", limits, ratelimit.WithAlgorithm(alg))
					script, static := ratelimit.ScriptArgs(l)
					k := l.Key("k")
					run := func(rid, ttl string, n int) (string, error) {
						keys := []string{k}
						if rid != "" {
							keys = append(keys, k+":rid:"+rid)
						}
						args := append([]any{n, n, ttl, len(limits)}, static...)
						return script.Run(ctx, db.Client, keys, args...).Text()
					}
					first, err := run("a", "15000", 1)
					require.NoError(t, err)
					require.True(t, strings.HasPrefix(first, "1 1 "), "first copy: got %q, want allowed with 1 left", first)
					again, err := run("a", "r15000", 1)
					require.NoError(t, err)
					assert.Equal(t, first, again, "a re-sent copy returns the first reply")
					peek, err := run("", "0", 0)
					require.NoError(t, err)
					assert.True(t, strings.HasPrefix(peek, "1 1 "), "counted once: got %q, want 1 left", peek)

					_, err = run("b", "15000", 1)
					require.NoError(t, err)
					denied, err := run("c", "15000", 1)
					require.NoError(t, err)
					require.True(t, strings.HasPrefix(denied, "0 0 "), "third request: got %q, want denied", denied)
					deniedAgain, err := run("c", "r15000", 1)
					require.NoError(t, err)
					assert.True(t, strings.HasPrefix(deniedAgain, "0 0 "), "a denied request's copy is decided again: %q", deniedAgain)

					_, err = run("", "r0", 1)
					require.Error(t, err)
					assert.True(t, redis.HasErrorPrefix(err, "OUTRIGGER_RESENT"), "got %v, want the re-sent copy refused", err)
				})
			}
		}
	}
}

// slideWindow fills a short sliding window and keeps asking across the next
// window's start: the denies there have the previous window's count to
// weigh (window.lua's "retry in this window" branch), the earlier ones not
// (the "next window" branch).
func slideWindow(t *testing.T, db *redistest.DB, name string, nlimits int, rid time.Duration) {
	limits := []ratelimit.Limit{{Rate: 3, Period: 600 * time.Millisecond, Burst: 3}, {Rate: 100, Period: time.Hour, Burst: 100}}[:nlimits]
	l := newRedis(t, db.Client, db.Prefix+strings.ReplaceAll(name, "/", ":")+":", limits,
		ratelimit.WithAlgorithm(ratelimit.SlidingWindow), ratelimit.WithDenyCache(0), ratelimit.WithRequestIDTTL(rid))
	t.Cleanup(func() { requireRedisDecided(t, l) })
	ctx := ctxT(t, 20*time.Second)
	var allowed, denied int
	for deadline := time.Now().Add(1500 * time.Millisecond); time.Now().Before(deadline); {
		res, err := l.Allow(ctx, "k")
		require.NoError(t, err)
		if res.Allowed {
			allowed++
		} else {
			denied++
			assert.Positive(t, res.RetryAfter)
			assert.LessOrEqual(t, res.RetryAfter, 1200*time.Millisecond)
		}
		time.Sleep(5 * time.Millisecond) // pacing the requests, not waiting for an event
	}
	assert.GreaterOrEqual(t, allowed, 3)
	assert.Positive(t, denied)
}
