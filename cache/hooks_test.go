package cache_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/cache"
	"github.com/outrigger-dev/outrigger/internal/redistest"
)

// hookLog records every hook call.
type hookLog struct {
	mu      *sync.Mutex
	hits    map[string]int // "tier/stale"
	misses  []string
	loads   []int // keys per load
	loadErr []error
	refresh []bool
	errs    []string // "op/invalid"
	inval   []string
}

func (h *hookLog) hooks() cache.Hooks {
	h.mu, h.hits = new(sync.Mutex), map[string]int{}
	return cache.Hooks{
		OnHit: func(key string, tier cache.Tier, stale bool) {
			h.mu.Lock()
			defer h.mu.Unlock()
			k := tier.String()
			if stale {
				k += "/stale"
			}
			h.hits[k]++
		},
		OnMiss: func(key string) { h.mu.Lock(); h.misses = append(h.misses, key); h.mu.Unlock() },
		OnLoad: func(keys int, d time.Duration, err error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.loads = append(h.loads, keys)
			h.loadErr = append(h.loadErr, err)
		},
		OnRefresh: func(key string, early bool) { h.mu.Lock(); h.refresh = append(h.refresh, early); h.mu.Unlock() },
		OnError: func(op string, err error, invalid bool) {
			h.mu.Lock()
			defer h.mu.Unlock()
			s := op
			if invalid {
				s += "/invalid"
			}
			h.errs = append(h.errs, s)
		},
		OnInvalidation: func(key string) { h.mu.Lock(); h.inval = append(h.inval, key); h.mu.Unlock() },
	}
}

func (h *hookLog) snapshot() hookLog {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := hookLog{mu: new(sync.Mutex), hits: map[string]int{}}
	for k, v := range h.hits {
		c.hits[k] = v
	}
	c.misses = append(c.misses, h.misses...)
	c.loads = append(c.loads, h.loads...)
	c.loadErr = append(c.loadErr, h.loadErr...)
	c.refresh = append(c.refresh, h.refresh...)
	c.errs = append(c.errs, h.errs...)
	c.inval = append(c.inval, h.inval...)
	return c
}

// TestHooks: every hook fires with the right values, on a two-tier cache on
// a single node and on a Cluster.
func TestHooks(t *testing.T) {
	for _, rb := range redisBackends {
		t.Run("deploy="+rb.name, func(t *testing.T) {
			leakCheck(t)
			db := rb.mk(t)
			ctx := context.Background()
			var h1, h2 hookLog
			mk := func(h *hookLog, opts ...cache.Option) *cache.Cache[int] {
				c, err := cache.New[int](append([]cache.Option{cache.WithRedis(db.NewClient(t)), cache.WithPrefix(db.Prefix),
					cache.WithLocal(100, time.Minute), cache.WithEarlyRefresh(0), cache.WithHooks(h.hooks())}, opts...)...)
				require.NoError(t, err)
				t.Cleanup(func() { _ = c.Close() })
				return c
			}
			a, b := mk(&h1), mk(&h2)
			load := func(context.Context) (int, error) { return 1, nil }

			_, err := a.Fetch(ctx, "k", load) // miss, load
			require.NoError(t, err)
			_, err = a.Fetch(ctx, "k", load) // local hit
			require.NoError(t, err)
			_, err = b.Fetch(ctx, "k", load) // redis hit
			require.NoError(t, err)
			_, err = a.Fetch(ctx, "absent", func(context.Context) (int, error) { return 0, cache.ErrNotFound })
			require.ErrorIs(t, err, cache.ErrNotFound)
			_, err = a.FetchMany(ctx, []string{"m1", "m2", "m3"}, func(_ context.Context, keys []string) (map[string]int, error) {
				return map[string]int{"m1": 1, "m2": 2, "m3": 3}, nil
			})
			require.NoError(t, err)
			require.NoError(t, b.Set(ctx, "k", 2)) // a's local copy is invalidated
			require.Eventually(t, func() bool { return len(h1.snapshot().inval) > 0 }, 10*time.Second, 5*time.Millisecond, "no invalidation hook")

			require.NoError(t, db.Client.HSet(ctx, db.Key("bad"), "f", "v").Err())
			_, err = a.Fetch(ctx, "bad", load)
			require.Error(t, err)

			s1, s2 := h1.snapshot(), h2.snapshot()
			assert.Equal(t, 1, s1.hits["local"], "a: local hits")
			assert.Equal(t, 1, s2.hits["redis"], "b: redis hits")
			assert.Equal(t, []string{"k", "absent", "m1"}, s1.misses, "a: misses")
			assert.Equal(t, []int{1, 1, 3}, s1.loads, "a: keys per load")
			assert.NoError(t, s1.loadErr[0])
			assert.ErrorIs(t, s1.loadErr[1], cache.ErrNotFound)
			assert.Contains(t, s1.inval, "k")
			assert.Equal(t, []string{"fetch/invalid"}, s1.errs, "a: error hooks")

			// a stale value is served while it refreshes
			var h3 hookLog
			now := time.Now()
			clock := atomic.Pointer[time.Time]{}
			clock.Store(&now)
			c := mk(&h3, cache.WithTTL(10*time.Second, 0), cache.WithStaleWhileRevalidate(time.Hour),
				cache.WithClock(func() time.Time { return *clock.Load() }))
			_, err = c.Fetch(ctx, "s", load)
			require.NoError(t, err)
			later := now.Add(30 * time.Second)
			clock.Store(&later)
			_, err = c.Fetch(ctx, "s", load)
			require.NoError(t, err)
			require.Eventually(t, func() bool { return len(h3.snapshot().refresh) > 0 }, 10*time.Second, 5*time.Millisecond)
			s3 := h3.snapshot()
			assert.Equal(t, 1, s3.hits["local/stale"], "stale local hits")
			assert.Equal(t, []bool{false}, s3.refresh, "a stale refresh, not an early one")
		})
	}
}

// TestHooksUnavailable: an unavailable Redis is reported with invalid false.
func TestHooksUnavailable(t *testing.T) {
	leakCheck(t)
	s := redistest.StartServer(t)
	var errs []string
	var mu sync.Mutex
	c, err := cache.New[int](cache.WithRedis(s.Client(t)), cache.WithInvalidation(false),
		cache.WithHooks(cache.Hooks{OnError: func(op string, err error, invalid bool) {
			mu.Lock()
			defer mu.Unlock()
			if !invalid {
				errs = append(errs, op)
			}
		}}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, s.Stop())
	_, err = c.Fetch(context.Background(), "k", func(context.Context) (int, error) { return 1, nil })
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	assert.NotEmpty(t, errs, "no OnError for an unavailable Redis")
	assert.Contains(t, errs, "acquire")
}

// TestHooksUnsetAllocateNothing: a local hit allocates nothing with or
// without hooks.
func TestHooksUnsetAllocateNothing(t *testing.T) {
	for _, h := range []cache.Hooks{{}, {OnHit: func(string, cache.Tier, bool) {}}} {
		c, err := cache.New[int](cache.WithHooks(h))
		require.NoError(t, err)
		ctx := context.Background()
		load := func(context.Context) (int, error) { return 1, nil }
		_, err = c.Fetch(ctx, "k", load)
		require.NoError(t, err)
		allocs := testing.AllocsPerRun(1000, func() { _, _ = c.Fetch(ctx, "k", load) })
		assert.Zero(t, allocs, "allocations per local hit")
		require.NoError(t, c.Close())
	}
}
