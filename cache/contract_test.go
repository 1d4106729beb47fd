package cache_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/cache"
	"github.com/outrigger-dev/outrigger/internal/redistest"
)

type user struct {
	ID   int    `json:"id"`
	Name string `json:"name"`
}

// backend builds caches of one kind for the contract tests.
type backend struct {
	name  string
	redis bool
	local bool
	mk    func(testing.TB) *redistest.DB
}

var backends = []backend{
	{name: "local", local: true},
	{name: "redis", redis: true, mk: redistest.New},
	{name: "two-tier", redis: true, local: true, mk: redistest.New},
	{name: "redis-cluster", redis: true, mk: redistest.NewCluster},
	{name: "two-tier-cluster", redis: true, local: true, mk: redistest.NewCluster},
}

// env is one contract test's deployment: a DB (nil for local-only) and a
// constructor of caches standing for replicas (each with its own client).
type env struct {
	t  *testing.T
	db *redistest.DB
	b  backend
}

func newEnv(t *testing.T, b backend) *env {
	t.Helper()
	e := &env{t: t, b: b}
	if b.redis {
		e.db = b.mk(t)
	}
	return e
}

// newCache returns a cache on the env (a replica with its own client),
// closed when the test ends.
func newCache[V any](e *env, opts ...cache.Option) *cache.Cache[V] {
	e.t.Helper()
	var base []cache.Option
	if e.b.redis {
		base = append(base, cache.WithRedis(e.db.NewClient(e.t)), cache.WithPrefix(e.db.Prefix))
		if e.b.local {
			base = append(base, cache.WithLocal(1000, time.Minute))
		}
	}
	c, err := cache.New[V](append(base, opts...)...)
	require.NoError(e.t, err)
	e.t.Cleanup(func() { _ = c.Close() })
	if e.b.redis {
		e.t.Cleanup(func() { requireRedisServed(e.t, c.Stats()) })
	}
	return c
}

// requireRedisServed fails t if a cache on Redis ever failed a Redis call or
// met an invalid answer: a backend that silently degrades to its loader must
// fail its own contract suite (the tests check per-tier hits where they
// matter).
func requireRedisServed(t *testing.T, st cache.Stats) {
	t.Helper()
	assert.Zerof(t, st.RedisErrors, "Redis errors: got %d, want 0 (stats %+v)", st.RedisErrors, st)
	assert.Zerof(t, st.Invalid, "invalid answers: got %d, want 0 (stats %+v)", st.Invalid, st)
	assert.Equal(t, "closed", st.Breaker, "breaker state")
}

func forEachBackend(t *testing.T, f func(t *testing.T, e *env)) {
	for _, b := range backends {
		t.Run("backend="+b.name, func(t *testing.T) {
			leakCheck(t)
			f(t, newEnv(t, b))
		})
	}
}

func TestContractFetchLoadsOnceThenHits(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		c := newCache[user](e)
		ctx := context.Background()
		var calls atomic.Int32
		load := func(context.Context) (user, error) {
			calls.Add(1)
			return user{ID: 1, Name: "ada"}, nil
		}
		for i := range 5 {
			got, err := c.Fetch(ctx, "u1", load)
			require.NoError(t, err)
			require.Equal(t, user{ID: 1, Name: "ada"}, got, "fetch %d", i)
		}
		assert.Equal(t, int32(1), calls.Load(), "loader calls")
		st := c.Stats()
		assert.Equal(t, uint64(1), st.Loads)
		assert.Equal(t, uint64(4), st.LocalHits+st.RedisHits, "hits")

		v, ok, err := c.Get(ctx, "u1")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, "ada", v.Name)

		if e.b.redis {
			// Another replica (no shared memory) reads it from Redis.
			other := newCache[user](e)
			got, err := other.Fetch(ctx, "u1", load)
			require.NoError(t, err)
			require.Equal(t, "ada", got.Name)
			assert.Equal(t, int32(1), calls.Load(), "loader calls after the other replica's fetch")
			assert.Equal(t, uint64(1), other.Stats().RedisHits)
		}
	})
}

func TestContractLoaderErrorSharedNotCached(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		c := newCache[int](e)
		ctx := context.Background()
		boom := errors.New("db down")
		release := make(chan struct{})
		var calls atomic.Int32
		load := func(context.Context) (int, error) {
			calls.Add(1)
			<-release
			return 0, boom
		}
		const n = 20
		errs := make(chan error, n)
		for range n {
			go func() {
				_, err := c.Fetch(ctx, "k", load)
				errs <- err
			}()
		}
		require.Eventually(t, func() bool { return c.Stats().CoalescedWaits == n-1 }, 10*time.Second, time.Millisecond)
		close(release)
		for range n {
			require.ErrorIs(t, <-errs, boom)
		}
		require.Equal(t, int32(1), calls.Load(), "loader calls for coalesced fetches")

		// Not cached: the next Fetch loads again and succeeds.
		v, err := c.Fetch(ctx, "k", func(context.Context) (int, error) { return 7, nil })
		require.NoError(t, err)
		require.Equal(t, 7, v)
		require.Equal(t, uint64(1), c.Stats().LoadErrors)
	})
}

func TestContractNegativeCaching(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		c := newCache[string](e, cache.WithNegativeTTL(time.Minute))
		ctx := context.Background()
		var calls atomic.Int32
		load := func(context.Context) (string, error) {
			calls.Add(1)
			return "", fmt.Errorf("user 42: %w", cache.ErrNotFound)
		}
		for range 3 {
			_, err := c.Fetch(ctx, "missing", load)
			require.ErrorIs(t, err, cache.ErrNotFound)
		}
		require.Equal(t, int32(1), calls.Load(), "loader calls")
		_, ok, err := c.Get(ctx, "missing")
		require.NoError(t, err)
		require.False(t, ok)

		// Disabled negative caching loads every time but still reports it.
		c2 := newCache[string](e, cache.WithNegativeTTL(0), cache.WithPrefix(prefixOf(e)+"neg0:"))
		for range 2 {
			_, err := c2.Fetch(ctx, "missing", load)
			require.ErrorIs(t, err, cache.ErrNotFound)
		}
		require.Equal(t, int32(3), calls.Load(), "loader calls without negative caching")
	})
}

func prefixOf(e *env) string {
	if e.db == nil {
		return "local:"
	}
	return e.db.Prefix
}

func TestContractLoaderPanicDoesNotWedge(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		c := newCache[int](e)
		ctx := context.Background()
		_, err := c.Fetch(ctx, "p", func(context.Context) (int, error) { panic("bad loader") })
		require.ErrorIs(t, err, cache.ErrLoaderPanic)
		require.ErrorContains(t, err, "bad loader")
		done := make(chan struct{})
		go func() {
			defer close(done)
			v, err := c.Fetch(ctx, "p", func(context.Context) (int, error) { return 3, nil })
			assert.NoError(t, err)
			assert.Equal(t, 3, v)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("fetch after a panicking loader did not return: key wedged")
		}
	})
}

func TestContractSetGetDelete(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		c := newCache[user](e)
		ctx := context.Background()
		_, ok, err := c.Get(ctx, "u")
		require.NoError(t, err)
		require.False(t, ok)

		v, err := c.Fetch(ctx, "u", func(context.Context) (user, error) { return user{Name: "old"}, nil })
		require.NoError(t, err)
		require.Equal(t, "old", v.Name)

		// Set overwrites every tier, the local one included.
		require.NoError(t, c.Set(ctx, "u", user{Name: "new"}))
		v, err = c.Fetch(ctx, "u", func(context.Context) (user, error) { return user{Name: "loader"}, nil })
		require.NoError(t, err)
		require.Equal(t, "new", v.Name)
		got, ok, err := c.Get(ctx, "u")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, "new", got.Name)

		require.NoError(t, c.Delete(ctx, "u", "never-set"))
		_, ok, err = c.Get(ctx, "u")
		require.NoError(t, err)
		require.False(t, ok)
		v, err = c.Fetch(ctx, "u", func(context.Context) (user, error) { return user{Name: "reloaded"}, nil })
		require.NoError(t, err)
		require.Equal(t, "reloaded", v.Name)
	})
}

func TestContractValidation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		c := newCache[int](e)
		ctx := context.Background()
		ok := func(context.Context) (int, error) { return 1, nil }
		_, err := c.Fetch(ctx, "", ok)
		require.ErrorIs(t, err, cache.ErrEmptyKey)
		_, err = c.Fetch(ctx, "k", nil)
		require.ErrorIs(t, err, cache.ErrNilLoader)
		_, _, err = c.Get(ctx, "")
		require.ErrorIs(t, err, cache.ErrEmptyKey)
		require.ErrorIs(t, c.Set(ctx, "", 1), cache.ErrEmptyKey)
		require.ErrorIs(t, c.SetWithTTL(ctx, "k", 1, -time.Second), cache.ErrBadTTL)
		require.ErrorIs(t, c.SetWithTTL(ctx, "k", 1, 0), cache.ErrBadTTL)
		require.ErrorIs(t, c.Delete(ctx, "a", ""), cache.ErrEmptyKey)
		_, err = c.FetchMany(ctx, []string{"a", ""}, func(context.Context, []string) (map[string]int, error) { return nil, nil })
		require.ErrorIs(t, err, cache.ErrEmptyKey)
		_, err = c.FetchMany(ctx, []string{"a"}, nil)
		require.ErrorIs(t, err, cache.ErrNilLoader)
	})
}

func TestNewValidatesOptions(t *testing.T) {
	leakCheck(t)
	tests := []struct {
		name string
		opt  cache.Option
		want string
	}{
		{"nil client", cache.WithRedis(nil), "WithRedis client must not be nil"},
		{"negative ttl", cache.WithTTL(-time.Second, 0), "WithTTL ttl must be > 0, got -1s"},
		{"zero ttl", cache.WithTTL(0, 0), "WithTTL ttl must be > 0, got 0s"},
		{"jitter too large", cache.WithTTL(time.Second, time.Second), "WithTTL jitter must be in [0, ttl), got 1s"},
		{"negative jitter", cache.WithTTL(time.Second, -1), "WithTTL jitter"},
		{"local entries", cache.WithLocal(0, time.Second), "WithLocal maxEntries must be >= 1, got 0"},
		{"local ttl", cache.WithLocal(10, -time.Second), "WithLocal ttl must be >= 0"},
		{"local bytes", cache.WithLocalBytes(0, 0), "WithLocalBytes maxBytes must be >= 1, got 0"},
		{"negative ttl option", cache.WithNegativeTTL(-1), "WithNegativeTTL must be >= 0"},
		{"beta", cache.WithEarlyRefresh(-1), "WithEarlyRefresh beta must be >= 0, got -1"},
		{"swr", cache.WithStaleWhileRevalidate(-time.Second), "WithStaleWhileRevalidate must be >= 0"},
		{"codec", cache.WithCodec(nil), "WithCodec codec must not be nil"},
		{"lease ttl", cache.WithLease(0, time.Second), "WithLease ttl must be > 0, got 0s"},
		{"lease wait", cache.WithLease(time.Second, 0), "WithLease wait must be > 0, got 0s"},
		{"load timeout", cache.WithLoadTimeout(0), "WithLoadTimeout must be > 0, got 0s"},
		{"breaker", cache.WithBreaker(3, 0), "WithBreaker open must be > 0, got 0s"},
		{"policy", cache.WithRedisErrorPolicy(cache.RedisErrorPolicy(9)), "WithRedisErrorPolicy unknown policy 9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := cache.New[int](tt.opt)
			require.Nil(t, c)
			require.ErrorIs(t, err, cache.ErrBadOption)
			require.ErrorContains(t, err, tt.want)
		})
	}
}

func TestContractSubSecondTTLIsExact(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		c := newCache[int](e, cache.WithTTL(300*time.Millisecond, 0), cache.WithEarlyRefresh(0))
		ctx := context.Background()
		require.NoError(t, c.Set(ctx, "short", 1))
		require.NoError(t, c.SetWithTTL(ctx, "shorter", 2, 150*time.Millisecond))
		if e.db != nil {
			for key, max := range map[string]time.Duration{"short": 300 * time.Millisecond, "shorter": 150 * time.Millisecond} {
				pttl, err := e.db.Client.PTTL(ctx, e.db.Key(key)).Result()
				require.NoError(t, err)
				require.Greater(t, pttl, time.Duration(0), "PTTL of %s", key)
				require.LessOrEqual(t, pttl, max, "PTTL of %s: got %v, want <= %v", key, pttl, max)
			}
		}
		start := time.Now()
		require.Eventually(t, func() bool {
			_, ok, err := c.Get(ctx, "short")
			return err == nil && !ok
		}, 10*time.Second, 5*time.Millisecond)
		require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond, "expired too early")
		_, ok, err := c.Get(ctx, "shorter")
		require.NoError(t, err)
		require.False(t, ok)
		if e.db != nil {
			// Redis expires the keys by their PX, within a few ms.
			require.Eventually(t, func() bool {
				for _, k := range []string{"short", "shorter"} {
					if n, err := e.db.Client.Exists(ctx, e.db.Key(k)).Result(); err != nil || n != 0 {
						return false
					}
				}
				return true
			}, 5*time.Second, 5*time.Millisecond, "keys left in Redis after their TTL")
		}
	})
}

func TestContractCancelledCallerDoesNotCancelLoad(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		c := newCache[int](e)
		release := make(chan struct{})
		var loaderCtxErr atomic.Value
		load := func(ctx context.Context) (int, error) {
			<-release
			loaderCtxErr.Store(fmt.Sprint(ctx.Err()))
			return 9, nil
		}
		ctx1, cancel1 := context.WithCancel(context.Background())
		first := make(chan error, 1)
		go func() {
			_, err := c.Fetch(ctx1, "k", load)
			first <- err
		}()
		second := make(chan int, 1)
		go func() {
			v, err := c.Fetch(context.Background(), "k", load)
			assert.NoError(t, err)
			second <- v
		}()
		require.Eventually(t, func() bool { return c.Stats().CoalescedWaits == 1 }, 10*time.Second, time.Millisecond)
		cancel1()
		select {
		case err := <-first:
			require.ErrorIs(t, err, context.Canceled)
		case <-time.After(5 * time.Second):
			t.Fatal("cancelled caller did not return promptly")
		}
		close(release)
		require.Equal(t, 9, <-second)
		require.Equal(t, "<nil>", loaderCtxErr.Load(), "loader context error")
	})
}

func TestContractFetchMany(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		c := newCache[int](e)
		ctx := context.Background()
		const n = 60 // spread over the cluster's slots
		var keys []string
		for i := range n {
			keys = append(keys, "k"+strconv.Itoa(i))
		}
		for i := 0; i < n; i += 3 {
			require.NoError(t, c.Set(ctx, keys[i], i))
		}
		var calls atomic.Int32
		var asked []string
		load := func(_ context.Context, missing []string) (map[string]int, error) {
			calls.Add(1)
			asked = append([]string(nil), missing...)
			m := make(map[string]int)
			for _, k := range missing {
				i, _ := strconv.Atoi(k[1:])
				if i%5 != 0 { // multiples of 5 do not exist
					m[k] = i
				}
			}
			return m, nil
		}
		got, err := c.FetchMany(ctx, append(keys, "k1", "k2"), load) // duplicates fetched once
		require.NoError(t, err)
		require.Equal(t, int32(1), calls.Load(), "batch loader calls")
		require.Len(t, asked, n-n/3, "keys asked of the loader")
		for i, k := range keys {
			v, ok := got[k]
			switch {
			case i%3 == 0:
				require.True(t, ok, "set key %s", k)
				require.Equal(t, i, v)
			case i%5 == 0:
				require.False(t, ok, "not-found key %s present", k)
			default:
				require.True(t, ok, "loaded key %s", k)
				require.Equal(t, i, v)
			}
		}
		// Everything, not-found included, is cached now.
		got2, err := c.FetchMany(ctx, keys, load)
		require.NoError(t, err)
		require.Equal(t, int32(1), calls.Load(), "batch loader calls on the second FetchMany")
		require.Equal(t, got, got2)
		if e.db != nil {
			other := newCache[int](e)
			got3, err := other.FetchMany(ctx, keys, load)
			require.NoError(t, err)
			require.Equal(t, int32(1), calls.Load(), "batch loader calls from another replica")
			require.Equal(t, got, got3)
		}
		// A single Fetch sees the batch's negative entries.
		_, err = c.Fetch(ctx, "k5", func(context.Context) (int, error) { return 5, nil })
		require.ErrorIs(t, err, cache.ErrNotFound)
	})
}

func TestContractFetchManyLoaderError(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		c := newCache[int](e)
		ctx := context.Background()
		require.NoError(t, c.Set(ctx, "a", 1))
		boom := errors.New("boom")
		got, err := c.FetchMany(ctx, []string{"a", "b"}, func(context.Context, []string) (map[string]int, error) { return nil, boom })
		require.ErrorIs(t, err, boom)
		require.Equal(t, map[string]int{"a": 1}, got)
		got, err = c.FetchMany(ctx, []string{"a", "b"}, func(_ context.Context, m []string) (map[string]int, error) {
			require.Equal(t, []string{"b"}, m)
			return map[string]int{"b": 2}, nil
		})
		require.NoError(t, err)
		require.Equal(t, map[string]int{"a": 1, "b": 2}, got)
		_, err = c.FetchMany(ctx, []string{"c"}, func(context.Context, []string) (map[string]int, error) { panic("x") })
		require.ErrorIs(t, err, cache.ErrLoaderPanic)
	})
}

func TestContractConcurrentMixedUse(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		c := newCache[int](e, cache.WithTTL(50*time.Millisecond, 10*time.Millisecond))
		ctx := context.Background()
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 200 {
					k := "k" + strconv.Itoa(i%10)
					switch (g + i) % 4 {
					case 0:
						_ = c.Set(ctx, k, i)
					case 1:
						_ = c.Delete(ctx, k)
					default:
						_, err := c.Fetch(ctx, k, func(context.Context) (int, error) { return i, nil })
						assert.NoError(t, err)
					}
				}
			})
		}
		wg.Wait()
	})
}

// TestContractLoadFlightWhateverLeaderCtx: a load led by a caller whose ctx
// cannot be cancelled runs on that caller's goroutine, one whose ctx can on a
// goroutine of the cache; either way a waiting caller's cancellation returns
// at once, the loader runs once, and Close cancels the load and waits for it.
func TestContractLoadFlightWhateverLeaderCtx(t *testing.T) {
	cases := []struct {
		name        string
		cancellable bool
		closeCache  bool
	}{
		{name: "leader=background", cancellable: false},
		{name: "leader=cancellable", cancellable: true},
		{name: "leader=background/close", cancellable: false, closeCache: true},
		{name: "leader=cancellable/close", cancellable: true, closeCache: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, e *env) {
				c := newCache[int](e)
				started, release := make(chan struct{}), make(chan struct{})
				var calls atomic.Int64
				load := func(ctx context.Context) (int, error) {
					calls.Add(1)
					close(started)
					select {
					case <-release:
						return 9, nil
					case <-ctx.Done():
						return 0, ctx.Err()
					}
				}
				leaderCtx := context.Background()
				if tc.cancellable {
					var cancel context.CancelFunc
					leaderCtx, cancel = context.WithCancel(leaderCtx)
					defer cancel()
				}
				type res struct {
					v   int
					err error
				}
				leader := make(chan res, 1)
				go func() {
					v, err := c.Fetch(leaderCtx, "k", load)
					leader <- res{v, err}
				}()
				<-started
				wctx, wcancel := context.WithCancel(context.Background())
				waiter := make(chan error, 1)
				go func() {
					_, err := c.Fetch(wctx, "k", load)
					waiter <- err
				}()
				require.Eventually(t, func() bool { return c.Stats().CoalescedWaits == 1 }, 10*time.Second, time.Millisecond)
				wcancel()
				select {
				case err := <-waiter:
					require.ErrorIs(t, err, context.Canceled)
				case <-time.After(5 * time.Second):
					t.Fatal("cancelled waiter did not return promptly")
				}
				if tc.closeCache {
					require.NoError(t, c.Close())
					r := <-leader
					require.Error(t, r.err, "leader of a load cancelled by Close: got value %d", r.v)
				} else {
					close(release)
					r := <-leader
					require.NoError(t, r.err)
					require.Equal(t, 9, r.v)
				}
				require.Equal(t, int64(1), calls.Load(), "loader calls")
			})
		})
	}
}
