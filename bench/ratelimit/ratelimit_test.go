// Package ratelimitbench compares outrigger/ratelimit with go-redis/redis_rate
// (Redis) and golang.org/x/time/rate (in process) on the same Redis, in one
// run. See RESULTS.md for figures and commands.
package ratelimitbench

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/ratelimit"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"
)

func TestMain(m *testing.M) { redistest.Main(m) }

const nKeys = 1024

var keys = func() []string {
	k := make([]string, nKeys)
	for i := range k {
		k[i] = "user:" + strconv.Itoa(i)
	}
	return k
}()

// allowFunc is one implementation's Allow(ctx, key) → allowed.
type allowFunc func(ctx context.Context, key string) bool

// runAllow measures f sequentially (conc=1) or from 64 goroutines (conc=64).
func runAllow(b *testing.B, conc int, f allowFunc, cnt *redistest.Counter) {
	b.Helper()
	ctx := context.Background()
	b.ReportAllocs()
	if cnt != nil {
		cnt.Reset()
	}
	var denied atomic.Int64
	if conc == 1 {
		i := 0
		for b.Loop() {
			if !f(ctx, keys[i%nKeys]) {
				denied.Add(1)
			}
			i++
		}
	} else {
		b.SetParallelism(max(1, conc/runtimeProcs()))
		var seq atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			i := int(seq.Add(1)) * 7919
			for pb.Next() {
				if !f(ctx, keys[i%nKeys]) {
					denied.Add(1)
				}
				i++
			}
		})
	}
	if cnt != nil {
		cnt.Report(b)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
	b.ReportMetric(float64(denied.Load())/float64(b.N), "denied/op")
}

func newClient(b *testing.B, db *redistest.DB) (redis.UniversalClient, *redistest.Counter) {
	c := db.NewClient(b, func(o *redis.UniversalOptions) { o.PoolSize = 128 })
	cnt := redistest.NewCounter()
	c.AddHook(cnt)
	return c, cnt
}

// BenchmarkRedisAllow: Allow on Redis over 1024 keys with a limit that is
// never reached (every call is a real decision that records an event) but
// where each event leaves 100ms of debt, so keys in use keep their state as
// in production (with an unreachable rate the state would expire within
// microseconds and every call would create a key).
// impl=outrigger is the default configuration (GCRA, re-sent copies
// refused, deny cache on); outrigger-rid turns request IDs on (a re-sent
// copy returns the first reply: one small key per allowed request);
// outrigger-batch32 takes tokens in batches of 32.
func BenchmarkRedisAllow(b *testing.B) {
	db := redistest.New(b)
	lim := ratelimit.Limit{Rate: 10, Period: time.Second, Burst: 1_000_000}
	var prefix string // per sub-benchmark: every run starts from empty keys
	for _, conc := range []int{1, 64} {
		impls := []struct {
			name string
			mk   func(c redis.UniversalClient) allowFunc
		}{
			{"outrigger", func(c redis.UniversalClient) allowFunc {
				return outrigger(b, c, lim, ratelimit.WithPrefix(prefix))
			}},
			{"outrigger-rid", func(c redis.UniversalClient) allowFunc {
				return outrigger(b, c, lim, ratelimit.WithPrefix(prefix), ratelimit.WithRequestIDTTL(15*time.Second))
			}},
			{"outrigger-window", func(c redis.UniversalClient) allowFunc {
				// the window ignores Burst: give it room to never deny
				wlim := ratelimit.Limit{Rate: 1_000_000, Period: time.Second, Burst: 1}
				return outrigger(b, c, wlim, ratelimit.WithPrefix(prefix), ratelimit.WithAlgorithm(ratelimit.SlidingWindow))
			}},
			{"outrigger-batch32", func(c redis.UniversalClient) allowFunc {
				return outrigger(b, c, lim, ratelimit.WithPrefix(prefix), ratelimit.WithBatch(32, time.Second))
			}},
			{"redis_rate", func(c redis.UniversalClient) allowFunc {
				rl := redis_rate.NewLimiter(c)
				rlim := redis_rate.Limit{Rate: lim.Rate, Burst: lim.Burst, Period: lim.Period}
				return func(ctx context.Context, key string) bool {
					res, err := rl.Allow(ctx, prefix+key, rlim)
					if err != nil {
						b.Fatal(err)
					}
					return res.Allowed > 0
				}
			}},
		}
		for _, impl := range impls {
			b.Run("impl="+impl.name+"/conc="+strconv.Itoa(conc), func(b *testing.B) {
				c, cnt := newClient(b, db)
				prefix = db.Prefix + impl.name + strconv.Itoa(conc) + ":"
				runAllow(b, conc, impl.mk(c), cnt)
			})
		}
	}
}

func outrigger(b *testing.B, c redis.UniversalClient, lim ratelimit.Limit, opts ...ratelimit.Option) allowFunc {
	var lastErr atomic.Value
	opts = append(opts, ratelimit.WithHooks(ratelimit.Hooks{OnError: func(_ string, err error) { lastErr.Store(err.Error()) }}))
	l, err := ratelimit.NewRedis(c, lim, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if e := lastErr.Load(); e != nil {
			b.Errorf("Redis error: %v", e)
		}
	})
	return func(ctx context.Context, key string) bool {
		res, err := l.Allow(ctx, key)
		if err != nil {
			b.Fatal(err)
		}
		if res.Source == ratelimit.SourceFallback {
			b.Fatalf("Redis failed (the fallback answered): %v %+v", lastErr.Load(), l.Stats())
		}
		return res.Allowed
	}
}

// BenchmarkRedisAbuser: one key far over its limit (an abusive client).
// outrigger answers from its deny cache; redis_rate asks Redis every time.
func BenchmarkRedisAbuser(b *testing.B) {
	db := redistest.New(b)
	lim := ratelimit.PerMinute(10)
	for _, conc := range []int{1, 64} {
		b.Run("impl=outrigger/conc="+strconv.Itoa(conc), func(b *testing.B) {
			c, cnt := newClient(b, db)
			l, err := ratelimit.NewRedis(c, lim, ratelimit.WithPrefix(db.Prefix+strconv.Itoa(conc)))
			if err != nil {
				b.Fatal(err)
			}
			runAllow(b, conc, func(ctx context.Context, _ string) bool {
				res, err := l.Allow(ctx, "abuser")
				if err != nil {
					b.Fatal(err)
				}
				return res.Allowed
			}, cnt)
		})
		b.Run("impl=redis_rate/conc="+strconv.Itoa(conc), func(b *testing.B) {
			c, cnt := newClient(b, db)
			rl := redis_rate.NewLimiter(c)
			key := db.Prefix + "rr" + strconv.Itoa(conc) + ":abuser"
			runAllow(b, conc, func(ctx context.Context, _ string) bool {
				res, err := rl.Allow(ctx, key, redis_rate.PerMinute(10))
				if err != nil {
					b.Fatal(err)
				}
				return res.Allowed > 0
			}, cnt)
		})
	}
}

// BenchmarkRedisBatching: Redis calls per decision with token batching on a
// key at its limit's pace: batch=0 is one call per decision.
func BenchmarkRedisBatching(b *testing.B) {
	db := redistest.New(b)
	lim := ratelimit.PerSecond(1_000_000_000)
	for _, size := range []int{0, 8, 32, 128} {
		b.Run("batch="+strconv.Itoa(size)+"/conc=64", func(b *testing.B) {
			c, cnt := newClient(b, db)
			opts := []ratelimit.Option{ratelimit.WithPrefix(db.Prefix + strconv.Itoa(size))}
			if size > 0 {
				opts = append(opts, ratelimit.WithBatch(size, time.Second))
			}
			f := outrigger(b, c, lim, opts...)
			runAllow(b, 64, func(ctx context.Context, _ string) bool { return f(ctx, "hot") }, cnt)
		})
	}
}

// xrateMap is the usual per-key x/time/rate setup: a mutex-guarded map of
// limiters.
type xrateMap struct {
	mu sync.Mutex
	m  map[string]*rate.Limiter
	r  rate.Limit
	b  int
}

func (x *xrateMap) Allow(key string) bool {
	x.mu.Lock()
	l, ok := x.m[key]
	if !ok {
		l = rate.NewLimiter(x.r, x.b)
		x.m[key] = l
	}
	x.mu.Unlock()
	return l.Allow()
}

// BenchmarkLocalAllow: in-process Allow for existing keys, vs x/time/rate in
// a per-key map.
func BenchmarkLocalAllow(b *testing.B) {
	for _, conc := range []int{1, 64} {
		for _, nk := range []int{1, nKeys} {
			suffix := "/keys=" + strconv.Itoa(nk) + "/conc=" + strconv.Itoa(conc)
			b.Run("impl=outrigger"+suffix, func(b *testing.B) {
				l, err := ratelimit.NewLocal(ratelimit.PerSecond(1_000_000_000))
				if err != nil {
					b.Fatal(err)
				}
				for _, k := range keys {
					_, _ = l.Allow(context.Background(), k)
				}
				runAllow(b, conc, func(ctx context.Context, key string) bool {
					if nk == 1 {
						key = keys[0]
					}
					res, _ := l.Allow(ctx, key)
					return res.Allowed
				}, nil)
			})
			b.Run("impl=xrate-map"+suffix, func(b *testing.B) {
				x := &xrateMap{m: map[string]*rate.Limiter{}, r: rate.Limit(1_000_000_000), b: 1_000_000_000}
				for _, k := range keys {
					x.Allow(k)
				}
				runAllow(b, conc, func(_ context.Context, key string) bool {
					if nk == 1 {
						key = keys[0]
					}
					return x.Allow(key)
				}, nil)
			})
		}
	}
}

// discardWriter is a ResponseWriter that keeps nothing, reused across
// requests so that only the middleware's own work is measured.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkMiddleware: per-request cost of the middleware with the local
// limiter (impl=outrigger-local) against the bare handler (impl=none).
func BenchmarkMiddleware(b *testing.B) {
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})
	l, err := ratelimit.NewLocal(ratelimit.PerSecond(1_000_000_000))
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{
		{"none", next},
		{"outrigger-local", ratelimit.Middleware(l, ratelimit.KeyByIP())(next)},
		{"outrigger-local-noheaders", ratelimit.Middleware(l, ratelimit.KeyByIP(), ratelimit.DraftHeaders(false), ratelimit.LegacyHeaders(false))(next)},
		{"outrigger-local-xff", ratelimit.Middleware(l, ratelimit.KeyByIP("10.0.0.0/8"))(next)},
	} {
		b.Run("impl="+tc.name, func(b *testing.B) {
			r, _ := http.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = "10.0.0.1:4711"
			r.Header.Set("X-Forwarded-For", "203.0.113.7")
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				tc.h.ServeHTTP(w, r)
			}
		})
	}
}

// BenchmarkRedisAllowInterleaved runs outrigger (default and without request
// IDs) and redis_rate call by call in turn, timing each call, so that load
// from other processes on the machine hits all of them alike. It reports the
// mean latency per call of each (µs/call; lower is better) and time-ratio,
// outrigger's ÷ redis_rate's; with conc=64
// every goroutine alternates. One op is one call of each implementation.
func BenchmarkRedisAllowInterleaved(b *testing.B) {
	db := redistest.New(b)
	lim := ratelimit.Limit{Rate: 10, Period: time.Second, Burst: 1_000_000}
	for _, conc := range []int{1, 64} {
		b.Run("conc="+strconv.Itoa(conc), func(b *testing.B) {
			c, _ := newClient(b, db)
			pre := db.Prefix + "il" + strconv.Itoa(conc) + ":"
			impls := []allowFunc{
				outrigger(b, c, lim, ratelimit.WithPrefix(pre+"o:")),
				outrigger(b, c, lim, ratelimit.WithPrefix(pre+"n:"), ratelimit.WithRequestIDTTL(15*time.Second)),
			}
			rl := redis_rate.NewLimiter(c)
			rlim := redis_rate.Limit{Rate: lim.Rate, Burst: lim.Burst, Period: lim.Period}
			impls = append(impls, func(ctx context.Context, key string) bool {
				res, err := rl.Allow(ctx, pre+"r:"+key, rlim)
				if err != nil {
					b.Fatal(err)
				}
				return res.Allowed > 0
			})
			names := []string{"outrigger", "outrigger-rid", "redis_rate"}
			var total [3]atomic.Int64 // ns
			ctx := context.Background()
			one := func(i int) {
				key := keys[i%nKeys]
				// rotate the order so that none always goes first
				for j := range impls {
					k := (i + j) % len(impls)
					start := time.Now()
					impls[k](ctx, key)
					total[k].Add(int64(time.Since(start)))
				}
			}
			b.ReportAllocs()
			if conc == 1 {
				i := 0
				for b.Loop() {
					one(i)
					i++
				}
			} else {
				b.SetParallelism(max(1, conc/runtimeProcs()))
				var seq atomic.Int64
				b.RunParallel(func(pb *testing.PB) {
					i := int(seq.Add(1)) * 7919
					for pb.Next() {
						one(i)
						i++
					}
				})
			}
			for k, name := range names {
				b.ReportMetric(float64(total[k].Load())/1e3/float64(b.N), name+"-µs/call")
			}
			// outrigger's time per call ÷ redis_rate's (lower is better)
			b.ReportMetric(float64(total[0].Load())/float64(total[2].Load()), "time-ratio")
		})
	}
}

// BenchmarkLocalAllowInterleaved alternates chunks of 256 calls of
// outrigger's local limiter and x/time/rate in a per-key map, timing each
// chunk, so that machine load hits both alike. One op is one chunk of each;
// the metrics are ns per call.
func BenchmarkLocalAllowInterleaved(b *testing.B) {
	for _, nk := range []int{1, nKeys} {
		b.Run("keys="+strconv.Itoa(nk), func(b *testing.B) {
			l, err := ratelimit.NewLocal(ratelimit.PerSecond(1_000_000_000))
			if err != nil {
				b.Fatal(err)
			}
			x := &xrateMap{m: map[string]*rate.Limiter{}, r: rate.Limit(1_000_000_000), b: 1_000_000_000}
			ctx := context.Background()
			for _, k := range keys {
				_, _ = l.Allow(ctx, k)
				x.Allow(k)
			}
			const chunk = 256
			var tO, tX time.Duration
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				start := time.Now()
				for j := range chunk {
					_, _ = l.Allow(ctx, keys[(i+j)%nk])
				}
				mid := time.Now()
				for j := range chunk {
					x.Allow(keys[(i+j)%nk])
				}
				tX += time.Since(mid)
				tO += mid.Sub(start)
				i += chunk
			}
			b.ReportMetric(float64(tO.Nanoseconds())/float64(b.N*chunk), "outrigger-ns/call")
			b.ReportMetric(float64(tX.Nanoseconds())/float64(b.N*chunk), "xrate-map-ns/call")
			b.ReportMetric(float64(tO)/float64(tX), "ratio")
		})
	}
}
