package cache_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/cache"
	"github.com/outrigger-dev/outrigger/internal/redistest"
)

// TestInvalidAnswersFailLoudly: when Redis' answer means a bug or bad data
// (a key of another type, a value that is not a cache entry, a write script
// that fails), Fetch, FetchMany and Get return the error whatever the
// policy; the loader does not answer, Stats.Invalid counts, the breaker stays
// closed, the log has one line per kind; healthy keys keep working.
func TestInvalidAnswersFailLoudly(t *testing.T) {
	cases := []struct {
		name   string
		policy cache.RedisErrorPolicy
		// breakKey spoils key "bad"; breakCache breaks the cache itself
		breakKey   func(t *testing.T, db *redistest.DB)
		breakCache func(c *cache.Cache[int])
		badValue   bool // the error wraps ErrBadValue (else a Redis error reply)
	}{
		{name: "wrong type", breakKey: func(t *testing.T, db *redistest.DB) {
			require.NoError(t, db.Client.HSet(context.Background(), db.Key("bad"), "f", "v").Err())
		}},
		{name: "wrong type, return policy", policy: cache.ReturnRedisErrors, breakKey: func(t *testing.T, db *redistest.DB) {
			require.NoError(t, db.Client.RPush(context.Background(), db.Key("bad"), "x").Err())
		}},
		{name: "not an entry", badValue: true, breakKey: func(t *testing.T, db *redistest.DB) {
			require.NoError(t, db.Client.Set(context.Background(), db.Key("bad"), "written by someone else", 0).Err())
		}},
		{name: "undecodable payload", badValue: true, breakKey: func(t *testing.T, db *redistest.DB) {
			// a valid entry of a string where the cache holds ints
			c, err := cache.New[string](cache.WithRedis(db.Client), cache.WithPrefix(db.Prefix))
			require.NoError(t, err)
			defer c.Close()
			require.NoError(t, c.Set(context.Background(), "bad", "not a number"))
		}},
		{name: "write script fails", breakCache: func(c *cache.Cache[int]) {
			cache.SetWriteScript(c, "return redis.call('HSET', KEYS[1])")
		}},
	}
	for _, rb := range redisBackends {
		for _, tc := range cases {
			t.Run("deploy="+rb.name+"/"+tc.name, func(t *testing.T) {
				leakCheck(t)
				db := rb.mk(t)
				logger, logs := redistest.NewLogs()
				c, err := cache.New[int](cache.WithRedis(db.NewClient(t)), cache.WithPrefix(db.Prefix),
					cache.WithRedisErrorPolicy(tc.policy), cache.WithLogger(logger), cache.WithBreaker(3, time.Minute),
					cache.WithLocal(100, time.Minute))
				require.NoError(t, err)
				t.Cleanup(func() { _ = c.Close() })
				ctx := context.Background()
				if tc.breakKey != nil {
					tc.breakKey(t, db)
				}
				if tc.breakCache != nil {
					tc.breakCache(c)
				}
				var loads atomic.Int32
				load := func(context.Context) (int, error) { loads.Add(1); return 7, nil }
				check := func(what string, err error) {
					t.Helper()
					require.Errorf(t, err, "%s: got no error, want the invalid answer", what)
					assert.Contains(t, err.Error(), `"bad"`, what)
					if tc.badValue {
						assert.ErrorIs(t, err, cache.ErrBadValue, what)
					} else {
						var re redis.Error
						assert.Truef(t, errors.As(err, &re), "%s: %v is not a Redis error reply", what, err)
					}
				}
				const calls = 6 // more than the breaker's 3 failures
				for i := range calls {
					_, err := c.Fetch(ctx, "bad", load)
					check("Fetch "+strconv.Itoa(i), err)
				}
				_, err = c.FetchMany(ctx, []string{"bad", "good1", "good2"}, func(_ context.Context, keys []string) (map[string]int, error) {
					m := map[string]int{}
					for _, k := range keys {
						m[k] = len(k)
					}
					return m, nil
				})
				if tc.breakCache != nil {
					check("FetchMany", err) // a broken script fails every key
				} else {
					check("FetchMany", err)
					v, err := c.Fetch(ctx, "good1", load)
					require.NoError(t, err, "a healthy key")
					assert.Equal(t, 5, v, "good1 was loaded by FetchMany")
				}
				if tc.breakKey != nil {
					_, _, err = c.Get(ctx, "bad")
					check("Get", err)
					assert.Zero(t, loads.Load(), "the loader answered for an invalid key")
				}
				st := c.Stats()
				assert.GreaterOrEqual(t, st.Invalid, uint64(calls), "Stats.Invalid")
				assert.Zero(t, st.RedisErrors, "counted as Redis unavailable")
				assert.Equal(t, "closed", st.Breaker, "an invalid answer opened the breaker")
				nErr := logs.Count(slog.LevelError)
				assert.GreaterOrEqual(t, nErr, 1, "no error logged:\n%s", logs)
				assert.LessOrEqual(t, nErr, 3, "error lines: want one per operation and kind:\n%s", logs)
				for _, r := range logs.Records(slog.LevelDebug) {
					assert.NotContains(t, r.Msg, "loading without it", "fell back to the loader")
				}
			})
		}
	}
}

// TestUnavailableRedisStillFallsBack: the other side of the line, a Redis
// that is down still leaves Fetch to the loader with the default policy.
func TestUnavailableRedisStillFallsBack(t *testing.T) {
	leakCheck(t)
	s := redistest.StartServer(t)
	client := s.Client(t, func(o *redis.Options) { o.MaxRetries = -1; o.DialTimeout = 200 * time.Millisecond })
	c, err := cache.New[int](cache.WithRedis(client), cache.WithInvalidation(false))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, s.Stop())
	v, err := c.Fetch(context.Background(), "k", func(context.Context) (int, error) { return 3, nil })
	require.NoError(t, err)
	assert.Equal(t, 3, v)
	st := c.Stats()
	assert.Positive(t, st.RedisErrors)
	assert.Zero(t, st.Invalid)
}
