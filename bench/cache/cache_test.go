package cachebench

import (
	"context"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gocache "github.com/go-redis/cache/v9"
	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/cache"
	"github.com/outrigger-dev/outrigger/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// Profile is the benchmark value: a small struct, ~150 bytes encoded.
type Profile struct {
	ID      int      `json:"id" msgpack:"id"`
	Name    string   `json:"name" msgpack:"name"`
	Email   string   `json:"email" msgpack:"email"`
	Roles   []string `json:"roles" msgpack:"roles"`
	Balance float64  `json:"balance" msgpack:"balance"`
}

var profile = Profile{ID: 42, Name: "Ada Lovelace", Email: "ada@example.com", Roles: []string{"admin", "editor"}, Balance: 1234.5}

func loadProfile(context.Context) (Profile, error) { return profile, nil }

// impl is one cache under test, with Fetch-like cache-aside semantics.
type impl struct {
	name  string
	fetch func(ctx context.Context, key string, load func(context.Context) (Profile, error)) (Profile, error)
	close func()
}

func ours(b *testing.B, client redis.UniversalClient, prefix string, local bool) impl {
	opts := []cache.Option{cache.WithRedis(client), cache.WithPrefix(prefix)}
	if local {
		opts = append(opts, cache.WithLocal(10_000, time.Minute))
	}
	c, err := cache.New[Profile](opts...)
	if err != nil {
		b.Fatal(err)
	}
	return impl{name: "outrigger", fetch: c.Fetch, close: func() { _ = c.Close() }}
}

func theirs(client redis.UniversalClient, prefix string, local bool) impl {
	o := &gocache.Options{Redis: client}
	if local {
		o.LocalCache = gocache.NewTinyLFU(10_000, time.Minute)
	}
	c := gocache.New(o)
	return impl{
		name: "go-redis-cache",
		fetch: func(ctx context.Context, key string, load func(context.Context) (Profile, error)) (Profile, error) {
			var p Profile
			err := c.Once(&gocache.Item{Ctx: ctx, Key: prefix + key, Value: &p, TTL: time.Hour,
				Do: func(it *gocache.Item) (any, error) { return load(it.Ctx) }})
			return p, err
		},
		close: func() {},
	}
}

func impls(b *testing.B, db *redistest.DB, client redis.UniversalClient, local bool) []impl {
	return []impl{ours(b, client, db.Prefix+"o:", local), theirs(client, db.Prefix+"g:", local)}
}

// seq numbers the keys of miss benchmarks: unique across runs.
var seq atomic.Int64

func report(b *testing.B) { b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s") }

// BenchmarkHit: a warm key read through the local tier (tier=local) or from
// Redis (tier=redis, no local tier).
func BenchmarkHit(b *testing.B) {
	db := redistest.New(b)
	ctx := context.Background()
	for _, tier := range []string{"local", "redis"} {
		client := db.NewClient(b)
		cnt := redistest.NewCounter()
		client.AddHook(cnt)
		for _, im := range impls(b, db, client, tier == "local") {
			for _, mode := range []string{"seq", "par"} {
				b.Run("tier="+tier+"/impl="+im.name+"/mode="+mode, func(b *testing.B) {
					if _, err := im.fetch(ctx, "hot", loadProfile); err != nil {
						b.Fatal(err)
					}
					b.ReportAllocs()
					cnt.Reset()
					b.ResetTimer()
					if mode == "seq" {
						for b.Loop() {
							if _, err := im.fetch(ctx, "hot", loadProfile); err != nil {
								b.Fatal(err)
							}
						}
					} else {
						b.RunParallel(func(pb *testing.PB) {
							for pb.Next() {
								if _, err := im.fetch(ctx, "hot", loadProfile); err != nil {
									b.Error(err)
									return
								}
							}
						})
					}
					b.StopTimer()
					cnt.Report(b)
					report(b)
				})
			}
			im.close()
		}
	}
}

// BenchmarkMissLoad: every Fetch is of a new key: read, load, write.
func BenchmarkMissLoad(b *testing.B) {
	db := redistest.New(b)
	ctx := context.Background()
	client := db.NewClient(b)
	cnt := redistest.NewCounter()
	client.AddHook(cnt)
	for _, im := range impls(b, db, client, true) {
		b.Run("impl="+im.name, func(b *testing.B) {
			_, _ = im.fetch(ctx, "warm", loadProfile) // script cache, connections
			b.ReportAllocs()
			cnt.Reset()
			for b.Loop() {
				if _, err := im.fetch(ctx, "miss:"+strconv.FormatInt(seq.Add(1), 10), loadProfile); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			cnt.Report(b)
			report(b)
		})
		im.close()
	}
}

// BenchmarkMissLoadInterleaved is BenchmarkMissLoad with the two caches
// called in turn, call by call (the order alternating), so that load from
// other processes hits both alike: µs/call of each and time-ratio,
// outrigger's ÷ go-redis/cache's (lower is better for outrigger).
func BenchmarkMissLoadInterleaved(b *testing.B) {
	db := redistest.New(b)
	ctx := context.Background()
	ims := impls(b, db, db.NewClient(b), true)
	for _, im := range ims {
		_, _ = im.fetch(ctx, "warm", loadProfile)
		defer im.close()
	}
	var spent [2]time.Duration
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		key := "miss:" + strconv.FormatInt(seq.Add(1), 10)
		for j := range ims {
			k := (i + j) % len(ims)
			start := time.Now()
			if _, err := ims[k].fetch(ctx, key, loadProfile); err != nil {
				b.Fatal(err)
			}
			spent[k] += time.Since(start)
		}
		i++
	}
	for k, im := range ims {
		b.ReportMetric(float64(spent[k].Microseconds())/float64(b.N), im.name+"-µs/call")
	}
	b.ReportMetric(float64(spent[0])/float64(spent[1]), "time-ratio")
}

// BenchmarkStampede: 16 replicas (own clients) × 50 goroutines fetch one cold
// key whose load takes 20ms; loader-calls/op is how many times the source
// of truth was queried for it.
func BenchmarkStampede(b *testing.B) {
	db := redistest.New(b)
	ctx := context.Background()
	const replicas, goroutines = 16, 50
	for _, name := range []string{"outrigger", "go-redis-cache"} {
		b.Run("impl="+name+"/replicas=16/goroutines=50", func(b *testing.B) {
			var reps []impl
			for range replicas {
				c := db.NewClient(b)
				if name == "outrigger" {
					reps = append(reps, ours(b, c, db.Prefix+"so:", true))
				} else {
					reps = append(reps, theirs(c, db.Prefix+"sg:", true))
				}
			}
			defer func() {
				for _, r := range reps {
					r.close()
				}
			}()
			var calls atomic.Int64
			load := func(context.Context) (Profile, error) {
				calls.Add(1)
				time.Sleep(20 * time.Millisecond)
				return profile, nil
			}
			b.ReportAllocs()
			for b.Loop() {
				key := "cold:" + strconv.FormatInt(seq.Add(1), 10)
				start := make(chan struct{})
				var wg sync.WaitGroup
				for _, r := range reps {
					for range goroutines {
						wg.Go(func() {
							<-start
							if _, err := r.fetch(ctx, key, load); err != nil {
								b.Error(err)
							}
						})
					}
				}
				close(start)
				wg.Wait()
			}
			b.ReportMetric(float64(calls.Load())/float64(b.N), "loader-calls/op")
		})
	}
}

// BenchmarkInvalidation: the time from Set on one replica until another
// replica's local tier has dropped the key (p50/p99). go-redis/cache has no
// cross-replica invalidation, so only outrigger is measured.
func BenchmarkInvalidation(b *testing.B) {
	db := redistest.New(b)
	ctx := context.Background()
	mk := func() *cache.Cache[Profile] {
		c, err := cache.New[Profile](cache.WithRedis(db.NewClient(b)), cache.WithPrefix(db.Prefix), cache.WithLocal(1000, time.Minute))
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	for _, replicas := range []int{2, 8} {
		b.Run("impl=outrigger/replicas="+strconv.Itoa(replicas), func(b *testing.B) {
			writer := mk()
			defer writer.Close()
			var others []*cache.Cache[Profile]
			for range replicas - 1 {
				c := mk()
				defer c.Close()
				others = append(others, c)
			}
			var lat []time.Duration
			b.ReportAllocs()
			for b.Loop() {
				base := make([]uint64, len(others))
				for i, c := range others {
					base[i] = c.Stats().Invalidations
				}
				start := time.Now()
				if err := writer.Set(ctx, "k", profile); err != nil {
					b.Fatal(err)
				}
				for i, c := range others {
					deadline := time.Now().Add(5 * time.Second)
					for c.Stats().Invalidations == base[i] {
						if time.Now().After(deadline) {
							b.Fatal("invalidation not received within 5s")
						}
						runtime.Gosched() // 2 cores: let the subscriber run
					}
					lat = append(lat, time.Since(start))
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}
