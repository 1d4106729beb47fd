package cache_test

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/cache"
	"github.com/outrigger-dev/outrigger/internal/redistest"
)

var redisBackends = []struct {
	name string
	mk   func(testing.TB) *redistest.DB
}{
	{"single", redistest.New},
	{"cluster", redistest.NewCluster},
}

// TestStampedeAcrossReplicas: 16 replicas (own clients) × 50 goroutines
// fetch one cold key: the loader runs exactly once.
func TestStampedeAcrossReplicas(t *testing.T) {
	for _, rb := range redisBackends {
		for _, local := range []bool{false, true} {
			t.Run("deploy="+rb.name+"/local="+boolStr(local), func(t *testing.T) {
				leakCheck(t)
				db := rb.mk(t)
				const replicas, goroutines = 16, 50
				var calls atomic.Int32
				load := func(ctx context.Context) (string, error) {
					calls.Add(1)
					time.Sleep(100 * time.Millisecond) // a slow query
					return "value", nil
				}
				caches := make([]*cache.Cache[string], replicas)
				for i := range caches {
					opts := []cache.Option{cache.WithRedis(db.NewClient(t)), cache.WithPrefix(db.Prefix),
						cache.WithLease(10*time.Second, 10*time.Second)}
					if local {
						opts = append(opts, cache.WithLocal(100, time.Minute))
					}
					c, err := cache.New[string](opts...)
					require.NoError(t, err)
					t.Cleanup(func() { _ = c.Close() })
					caches[i] = c
				}
				start := make(chan struct{})
				var wg sync.WaitGroup
				var errs atomic.Int32
				for _, c := range caches {
					for range goroutines {
						wg.Go(func() {
							<-start
							v, err := c.Fetch(context.Background(), "cold", load)
							if err != nil || v != "value" {
								errs.Add(1)
							}
						})
					}
				}
				close(start)
				wg.Wait()
				require.Zero(t, errs.Load(), "failed fetches")
				require.Equal(t, int32(1), calls.Load(), "loader calls across %d replicas", replicas)
			})
		}
	}
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// TestHolderDies: a replica holding the load lease never writes (it
// crashed); the others finish within the wait bound and load themselves.
func TestHolderDies(t *testing.T) {
	for _, rb := range redisBackends {
		t.Run("deploy="+rb.name, func(t *testing.T) {
			leakCheck(t)
			db := rb.mk(t)
			ctx := context.Background()
			const wait = 300 * time.Millisecond
			newReplica := func() *cache.Cache[int] {
				c, err := cache.New[int](cache.WithRedis(db.NewClient(t)), cache.WithPrefix(db.Prefix),
					cache.WithLease(time.Minute, wait))
				require.NoError(t, err)
				t.Cleanup(func() { _ = c.Close() })
				return c
			}

			t.Run("holder=hung", func(t *testing.T) {
				// Replica A's loader hangs: it holds the lease and never writes.
				a := newReplica()
				hang := make(chan struct{})
				defer close(hang)
				go func() {
					_, _ = a.Fetch(ctx, "hung", func(ctx context.Context) (int, error) {
						select {
						case <-hang:
						case <-ctx.Done():
						}
						return 0, errors.New("gave up")
					})
				}()
				require.Eventually(t, func() bool { return a.Stats().Loads == 1 }, 10*time.Second, time.Millisecond)
				b := newReplica()
				var wg sync.WaitGroup
				var calls atomic.Int32
				start := time.Now()
				for range 10 {
					wg.Go(func() {
						v, err := b.Fetch(ctx, "hung", func(context.Context) (int, error) { calls.Add(1); return 2, nil })
						assert.NoError(t, err)
						assert.Equal(t, 2, v)
					})
				}
				wg.Wait()
				elapsed := time.Since(start)
				require.Equal(t, int32(1), calls.Load(), "loader calls in replica B")
				require.GreaterOrEqual(t, elapsed, wait, "B did not wait for A's lease")
				require.Less(t, elapsed, 30*time.Second, "B waited unboundedly")
				require.Equal(t, uint64(1), b.Stats().LeaseWaits)
				// B's value replaced A's lease: a third replica hits Redis.
				c := newReplica()
				v, err := c.Fetch(ctx, "hung", func(context.Context) (int, error) { return 3, nil })
				require.NoError(t, err)
				require.Equal(t, 2, v)
			})

			t.Run("holder=crashed", func(t *testing.T) {
				// A lease written by a process that died: a lease envelope
				// with a long PX that nobody will ever release.
				lease := make([]byte, 30)
				lease[0], lease[1], lease[29] = 1, 4, 7
				require.NoError(t, db.Client.Set(ctx, db.Key("dead"), lease, time.Minute).Err())
				b := newReplica()
				start := time.Now()
				v, err := b.Fetch(ctx, "dead", func(context.Context) (int, error) { return 5, nil })
				require.NoError(t, err)
				require.Equal(t, 5, v)
				require.Less(t, time.Since(start), 30*time.Second)
				v, err = newReplica().Fetch(ctx, "dead", func(context.Context) (int, error) { return 6, nil })
				require.NoError(t, err)
				require.Equal(t, 5, v, "the waiter's value did not replace the dead lease")
			})

			t.Run("holder=failed", func(t *testing.T) {
				// A's load fails: it releases its lease at once, so B does
				// not wait for the bound.
				a, b := newReplica(), newReplica()
				release := make(chan struct{})
				aDone := make(chan error, 1)
				go func() {
					_, err := a.Fetch(ctx, "fails", func(context.Context) (int, error) { <-release; return 0, errors.New("db") })
					aDone <- err
				}()
				require.Eventually(t, func() bool { return a.Stats().Loads == 1 }, 10*time.Second, time.Millisecond)
				bDone := make(chan int, 1)
				go func() {
					v, err := b.Fetch(ctx, "fails", func(context.Context) (int, error) { return 8, nil })
					assert.NoError(t, err)
					bDone <- v
				}()
				require.Eventually(t, func() bool { return b.Stats().LeaseWaits == 1 }, 10*time.Second, time.Millisecond)
				close(release)
				require.Error(t, <-aDone)
				require.Equal(t, 8, <-bDone)
			})
		})
	}
}

// TestEarlyRefreshKeepsHotKeyWarm: a hot key read continuously across
// several TTLs is refreshed in the background before it expires: after the
// first load, no read misses.
func TestEarlyRefreshKeepsHotKeyWarm(t *testing.T) {
	for _, local := range []bool{false, true} {
		t.Run("local="+boolStr(local), func(t *testing.T) {
			leakCheck(t)
			db := redistest.New(t)
			// XFetch starts a refresh about delta*beta*ln(reads per
			// delta*beta) before expiry: with a 25 ms load and beta 4, some
			// 300-450 ms ahead, so a refresh that stalls for a few hundred
			// ms on a loaded machine still lands before the TTL of 1 s
			const ttl = time.Second
			opts := []cache.Option{cache.WithRedis(db.NewClient(t)), cache.WithPrefix(db.Prefix),
				cache.WithTTL(ttl, 0), cache.WithEarlyRefresh(4)}
			if local {
				opts = append(opts, cache.WithLocal(100, time.Minute))
			}
			c, err := cache.New[int](opts...)
			require.NoError(t, err)
			defer c.Close()
			var calls atomic.Int32
			load := func(context.Context) (int, error) {
				time.Sleep(25 * time.Millisecond)
				return int(calls.Add(1)), nil
			}
			ctx := context.Background()
			_, err = c.Fetch(ctx, "hot", load)
			require.NoError(t, err)
			deadline := time.Now().Add(3 * ttl)
			for time.Now().Before(deadline) {
				_, err := c.Fetch(ctx, "hot", load)
				require.NoError(t, err)
				time.Sleep(time.Millisecond)
			}
			st := c.Stats()
			require.Equal(t, uint64(1), st.Misses, "reads that missed (blocked on a load)")
			require.GreaterOrEqual(t, st.EarlyRefreshes, uint64(3), "early refreshes over 3 TTLs")
			require.GreaterOrEqual(t, calls.Load(), int32(4), "loads")
		})
	}
}

func TestStaleWhileRevalidate(t *testing.T) {
	for _, local := range []bool{false, true} {
		t.Run("local="+boolStr(local), func(t *testing.T) {
			leakCheck(t)
			db := redistest.New(t)
			opts := []cache.Option{cache.WithRedis(db.NewClient(t)), cache.WithPrefix(db.Prefix),
				cache.WithTTL(100*time.Millisecond, 0), cache.WithStaleWhileRevalidate(time.Minute), cache.WithEarlyRefresh(0), cache.WithLogger(testLogger(t))}
			if local {
				opts = append(opts, cache.WithLocal(100, time.Minute))
			}
			c, err := cache.New[int](opts...)
			require.NoError(t, err)
			defer c.Close()
			ctx := context.Background()
			var calls atomic.Int32
			release := make(chan struct{})
			load := func(ctx context.Context) (int, error) {
				n := calls.Add(1)
				if n > 1 {
					select {
					case <-release:
					case <-ctx.Done():
						return 0, ctx.Err()
					}
				}
				return int(n), nil
			}
			v, err := c.Fetch(ctx, "k", load)
			require.NoError(t, err)
			require.Equal(t, 1, v)
			require.Eventually(t, func() bool {
				_, ok, _ := c.Get(ctx, "k")
				return !ok // stale now
			}, 10*time.Second, 5*time.Millisecond)
			// Stale reads return at once while one refresh is blocked.
			for range 20 {
				v, err := c.Fetch(ctx, "k", load)
				require.NoError(t, err)
				require.Equal(t, 1, v)
			}
			require.Eventually(t, func() bool { return calls.Load() == 2 }, 10*time.Second, time.Millisecond)
			for range 20 {
				v, err := c.Fetch(ctx, "k", load)
				require.NoError(t, err)
				require.Equal(t, 1, v)
			}
			require.Equal(t, int32(2), calls.Load(), "loads: one initial, one refresh")
			require.GreaterOrEqual(t, c.Stats().StaleServed, uint64(20))
			close(release)
			require.Eventually(t, func() bool {
				v, err := c.Fetch(ctx, "k", load)
				return err == nil && v == 2
			}, 10*time.Second, 5*time.Millisecond)
		})
	}
}

// TestInvalidationReachesReplicas: Set and Delete on one replica drop the
// key from every other replica's local tier.
func TestInvalidationReachesReplicas(t *testing.T) {
	for _, rb := range redisBackends {
		t.Run("deploy="+rb.name, func(t *testing.T) {
			leakCheck(t)
			db := rb.mk(t)
			ctx := context.Background()
			var replicas []*cache.Cache[string]
			for range 3 {
				c, err := cache.New[string](cache.WithRedis(db.NewClient(t)), cache.WithPrefix(db.Prefix),
					cache.WithLocal(100, time.Hour))
				require.NoError(t, err)
				t.Cleanup(func() { _ = c.Close() })
				replicas = append(replicas, c)
			}
			for _, c := range replicas {
				v, err := c.Fetch(ctx, "k", func(context.Context) (string, error) { return "v1", nil })
				require.NoError(t, err)
				require.Equal(t, "v1", v)
			}
			require.NoError(t, replicas[0].Set(ctx, "k", "v2"))
			for i, c := range replicas[1:] {
				require.Eventually(t, func() bool {
					v, ok, err := c.Get(ctx, "k")
					return err == nil && ok && v == "v2"
				}, 10*time.Second, 5*time.Millisecond, "replica %d still serves the old value", i+1)
				require.GreaterOrEqual(t, c.Stats().Invalidations, uint64(1))
			}
			require.NoError(t, replicas[1].Delete(ctx, "k"))
			for i, c := range []*cache.Cache[string]{replicas[0], replicas[2]} {
				require.Eventually(t, func() bool {
					v, err := c.Fetch(ctx, "k", func(context.Context) (string, error) { return "v3", nil })
					return err == nil && v == "v3"
				}, 10*time.Second, 5*time.Millisecond, "replica %d still serves the deleted value", i)
			}
		})
	}
}

// TestRedisRestartNoCallerError: Redis is stopped and restarted under load;
// Fetch never fails (breaker + loader fallback), the local tier is flushed
// when the subscription drops, and the cache uses Redis again afterwards.
func TestRedisRestartNoCallerError(t *testing.T) {
	leakCheck(t)
	srv := redistest.StartServer(t)
	mkClient := func() *redis.Client {
		return srv.Client(t, func(o *redis.Options) {
			o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.MaxRetries = 200*time.Millisecond, 200*time.Millisecond, 200*time.Millisecond, -1
		})
	}
	var caches []*cache.Cache[int]
	for _, local := range []bool{false, true} {
		opts := []cache.Option{cache.WithRedis(mkClient()), cache.WithPrefix("restart:"),
			cache.WithBreaker(3, 100*time.Millisecond), cache.WithTTL(time.Hour, 0)}
		if local {
			opts = append(opts, cache.WithLocal(100, time.Minute))
		}
		c, err := cache.New[int](opts...)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		caches = append(caches, c)
	}
	ctx := context.Background()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var fetches, failures atomic.Int64
	var firstErr atomic.Value
	for _, c := range caches {
		for g := range 4 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					k := string(rune('a' + (g*7+i)%10))
					_, err := c.Fetch(ctx, k, func(context.Context) (int, error) { return i, nil })
					fetches.Add(1)
					if err != nil {
						failures.Add(1)
						firstErr.CompareAndSwap(nil, err)
					}
					time.Sleep(time.Millisecond)
				}
			})
		}
	}
	waitFetches := func(n int64) {
		t.Helper()
		target := fetches.Load() + n
		require.Eventually(t, func() bool { return fetches.Load() >= target }, 20*time.Second, time.Millisecond)
	}
	waitFetches(100)
	require.NoError(t, srv.Stop())
	waitFetches(200)
	require.Eventually(t, func() bool { return caches[0].Stats().Breaker == "open" }, 10*time.Second, time.Millisecond)
	require.NoError(t, srv.Start())
	redisHits := caches[0].Stats().RedisHits
	require.Eventually(t, func() bool {
		return caches[0].Stats().Breaker == "closed" && caches[0].Stats().RedisHits > redisHits
	}, 20*time.Second, 5*time.Millisecond, "cache did not recover")
	require.Eventually(t, func() bool { return caches[1].Stats().LocalFlushes >= 1 }, 20*time.Second, 5*time.Millisecond,
		"local tier not flushed after the subscription dropped")
	waitFetches(100)
	close(stop)
	wg.Wait()
	require.Zero(t, failures.Load(), "failed fetches out of %d; first: %v", fetches.Load(), firstErr.Load())
	require.Greater(t, caches[0].Stats().RedisErrors, uint64(0))
	// Invalidation works again after the restart.
	require.NoError(t, caches[0].Set(ctx, "z", 1))
	v, err := caches[1].Fetch(ctx, "z", func(context.Context) (int, error) { return 0, nil })
	require.NoError(t, err)
	require.Equal(t, 1, v)
	require.NoError(t, caches[0].Set(ctx, "z", 2))
	require.Eventually(t, func() bool { v, ok, _ := caches[1].Get(ctx, "z"); return ok && v == 2 }, 10*time.Second, 5*time.Millisecond)
}

func TestRedisErrorPolicyReturn(t *testing.T) {
	leakCheck(t)
	srv := redistest.StartServer(t)
	cl := srv.Client(t, func(o *redis.Options) { o.MaxRetries = -1; o.DialTimeout = 200 * time.Millisecond })
	c, err := cache.New[int](cache.WithRedis(cl), cache.WithRedisErrorPolicy(cache.ReturnRedisErrors))
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, srv.Stop())
	_, err = c.Fetch(context.Background(), "k", func(context.Context) (int, error) { return 1, nil })
	require.Error(t, err)
	require.Equal(t, uint64(0), c.Stats().Loads)
	_, err = c.FetchMany(context.Background(), []string{"k"}, func(context.Context, []string) (map[string]int, error) { return nil, nil })
	require.Error(t, err)
}

// TestRoundTrips: a Redis hit costs one round trip, a miss two (the read
// takes the load lease, the write releases it), a FetchMany miss at most
// three.
func TestRoundTrips(t *testing.T) {
	for _, rb := range redisBackends {
		t.Run("deploy="+rb.name, func(t *testing.T) {
			leakCheck(t)
			db := rb.mk(t)
			cl := db.NewClient(t)
			cnt := redistest.NewCounter()
			cl.AddHook(cnt)
			c, err := cache.New[int](cache.WithRedis(cl), cache.WithPrefix(db.Prefix))
			require.NoError(t, err)
			defer c.Close()
			ctx := context.Background()
			// Warm the script cache of every node, and the connections.
			_, err = c.FetchMany(ctx, []string{"w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "w9"}, func(_ context.Context, m []string) (map[string]int, error) {
				return map[string]int{}, nil
			})
			require.NoError(t, err)
			cnt.Reset()
			_, err = c.Fetch(ctx, "miss", func(context.Context) (int, error) { return 1, nil })
			require.NoError(t, err)
			require.Equal(t, int64(2), cnt.RoundTrips(), "round trips of a miss")
			cnt.Reset()
			_, err = c.Fetch(ctx, "miss", func(context.Context) (int, error) { return 2, nil })
			require.NoError(t, err)
			require.Equal(t, int64(1), cnt.RoundTrips(), "round trips of a hit")
			cnt.Reset()
			_, err = c.FetchMany(ctx, []string{"a", "b", "c", "d", "e", "f"}, func(_ context.Context, m []string) (map[string]int, error) {
				out := map[string]int{}
				for _, k := range m {
					out[k] = 1
				}
				return out, nil
			})
			require.NoError(t, err)
			require.LessOrEqual(t, cnt.RoundTrips(), int64(3), "round trips of a FetchMany miss")
			cnt.Reset()
			_, err = c.FetchMany(ctx, []string{"a", "b", "c", "d", "e", "f"}, func(context.Context, []string) (map[string]int, error) { return nil, nil })
			require.NoError(t, err)
			require.Equal(t, int64(1), cnt.RoundTrips(), "round trips of a FetchMany hit")
		})
	}
}

// flateCompressor is a test Compressor.
type flateCompressor struct{ calls *atomic.Int32 }

func (f flateCompressor) Encode(src []byte) ([]byte, error) {
	f.calls.Add(1)
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestSpeed)
	_, _ = w.Write(src)
	_ = w.Close()
	return b.Bytes(), nil
}

func (f flateCompressor) Decode(src []byte) ([]byte, error) {
	return io.ReadAll(flate.NewReader(bytes.NewReader(src)))
}

// upperCodec is a test Codec that stores JSON with a marker.
type upperCodec struct{}

func (upperCodec) Marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	return append([]byte("UC"), b...), err
}

func (upperCodec) Unmarshal(data []byte, v any) error {
	if !bytes.HasPrefix(data, []byte("UC")) {
		return errors.New("not upperCodec data")
	}
	return json.Unmarshal(data[2:], v)
}

func TestCodecAndCompressionRoundTrip(t *testing.T) {
	for _, rb := range redisBackends {
		t.Run("deploy="+rb.name, func(t *testing.T) {
			leakCheck(t)
			db := rb.mk(t)
			ctx := context.Background()
			var calls atomic.Int32
			mk := func() *cache.Cache[user] {
				c, err := cache.New[user](cache.WithRedis(db.NewClient(t)), cache.WithPrefix(db.Prefix),
					cache.WithCodec(upperCodec{}), cache.WithCompression(flateCompressor{&calls}, 512))
				require.NoError(t, err)
				t.Cleanup(func() { _ = c.Close() })
				return c
			}
			w, r := mk(), mk()
			big := user{ID: 1, Name: strings.Repeat("outrigger ", 500)}
			small := user{ID: 2, Name: "ada"}
			require.NoError(t, w.Set(ctx, "big", big))
			require.NoError(t, w.Set(ctx, "small", small))
			require.Equal(t, int32(1), calls.Load(), "compressions (only the big value)")

			raw, err := db.Client.Get(ctx, db.Key("big")).Bytes()
			require.NoError(t, err)
			require.Less(t, len(raw), len(big.Name)/2, "stored size of a compressible value")
			require.NotZero(t, raw[1]&2, "compressed flag")
			raw, err = db.Client.Get(ctx, db.Key("small")).Bytes()
			require.NoError(t, err)
			require.Contains(t, string(raw), `UC{"id":2`)

			got, ok, err := r.Get(ctx, "big")
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, big, got)
			got, err = r.Fetch(ctx, "small", func(context.Context) (user, error) { return user{}, errors.New("must hit") })
			require.NoError(t, err)
			require.Equal(t, small, got)

			// A value the cache cannot read is an error, not a miss: the
			// loader does not run over it (see TestInvalidAnswersFailLoudly).
			require.NoError(t, db.Client.Set(ctx, db.Key("garbage"), "not an envelope", time.Minute).Err())
			_, err = r.Fetch(ctx, "garbage", func(context.Context) (user, error) { return small, nil })
			require.ErrorIs(t, err, cache.ErrBadValue)
			_, _, err = mk().Get(ctx, "garbage")
			require.ErrorIs(t, err, cache.ErrBadValue)
			require.NoError(t, w.Delete(ctx, "garbage"))
			got, err = r.Fetch(ctx, "garbage", func(context.Context) (user, error) { return small, nil })
			require.NoError(t, err)
			require.Equal(t, small, got)
		})
	}
}

// TestLocalEntryNeverOutlivesRedisTTL: a two-tier cache does not serve a
// local entry after the value's Redis TTL, even with a longer local TTL.
func TestLocalEntryNeverOutlivesRedisTTL(t *testing.T) {
	leakCheck(t)
	db := redistest.New(t)
	c, err := cache.New[int](cache.WithRedis(db.NewClient(t)), cache.WithPrefix(db.Prefix),
		cache.WithLocal(10, time.Hour), cache.WithInvalidation(false), cache.WithEarlyRefresh(0))
	require.NoError(t, err)
	defer c.Close()
	ctx := context.Background()
	require.NoError(t, c.SetWithTTL(ctx, "k", 1, 200*time.Millisecond))
	v, ok, err := c.Get(ctx, "k")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, 1, v)
	require.Eventually(t, func() bool {
		v, err := c.Fetch(ctx, "k", func(context.Context) (int, error) { return 2, nil })
		return err == nil && v == 2
	}, 10*time.Second, 5*time.Millisecond)
}

// TestSetDuringLoadWins: a value Set while a load is in flight is not
// overwritten by the load's (older) result.
func TestSetDuringLoadWins(t *testing.T) {
	leakCheck(t)
	db := redistest.New(t)
	ctx := context.Background()
	a, err := cache.New[string](cache.WithRedis(db.NewClient(t)), cache.WithPrefix(db.Prefix))
	require.NoError(t, err)
	defer a.Close()
	b, err := cache.New[string](cache.WithRedis(db.NewClient(t)), cache.WithPrefix(db.Prefix))
	require.NoError(t, err)
	defer b.Close()
	release := make(chan struct{})
	done := make(chan string, 1)
	go func() {
		v, _ := a.Fetch(ctx, "k", func(context.Context) (string, error) { <-release; return "loaded-before-update", nil })
		done <- v
	}()
	require.Eventually(t, func() bool { return a.Stats().Loads == 1 }, 10*time.Second, time.Millisecond)
	require.NoError(t, b.Set(ctx, "k", "updated"))
	close(release)
	require.Equal(t, "loaded-before-update", <-done)
	v, ok, err := b.Get(ctx, "k")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, "updated", v)
}

// TestDefaultCompression: without WithCompression, values above the default
// threshold are stored zstd-compressed and read back by another replica.
func TestDefaultCompression(t *testing.T) {
	leakCheck(t)
	db := redistest.New(t)
	ctx := context.Background()
	w, err := cache.New[string](cache.WithRedis(db.NewClient(t)), cache.WithPrefix(db.Prefix))
	require.NoError(t, err)
	defer w.Close()
	r, err := cache.New[string](cache.WithRedis(db.NewClient(t)), cache.WithPrefix(db.Prefix))
	require.NoError(t, err)
	defer r.Close()
	big := strings.Repeat("abcdefgh", 1024) // 8 KiB
	require.NoError(t, w.Set(ctx, "big", big))
	require.NoError(t, w.Set(ctx, "small", "tiny"))
	raw, err := db.Client.Get(ctx, db.Key("big")).Bytes()
	require.NoError(t, err)
	require.Less(t, len(raw), 1024, "stored size of 8 KiB of repetitive text")
	require.NotZero(t, raw[1]&2, "compressed flag")
	raw, err = db.Client.Get(ctx, db.Key("small")).Bytes()
	require.NoError(t, err)
	require.Zero(t, raw[1]&2, "small value compressed")
	got, ok, err := r.Get(ctx, "big")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, big, got)
}
