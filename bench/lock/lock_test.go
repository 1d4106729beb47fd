// Package lockbench compares outrigger's lock with bsm/redislock and
// go-redsync/redsync on the same Redis, and with sync.Mutex as the floor.
package lockbench

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bsm/redislock"
	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/lock"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// locker is the common shape of the implementations under test: acquire
// returns the release function.
type locker func(ctx context.Context, key string) (release func() error, err error)

const holdTTL = 10 * time.Second

type impl struct {
	name string
	mk   func(b *testing.B, c redis.UniversalClient, prefix string) locker
}

// outrigger builds outrigger's lock with opts on top of the prefix.
func outrigger(opts ...lock.Option) func(b *testing.B, c redis.UniversalClient, prefix string) locker {
	return func(b *testing.B, c redis.UniversalClient, prefix string) locker {
		l, err := lock.New(c, append([]lock.Option{lock.WithPrefix(prefix)}, opts...)...)
		if err != nil {
			b.Fatal(err)
		}
		return func(ctx context.Context, key string) (func() error, error) {
			lk, err := l.Acquire(ctx, key, holdTTL)
			if err != nil {
				return nil, err
			}
			return func() error { return lk.Release(ctx) }, nil
		}
	}
}

func impls() []impl {
	return []impl{
		{"outrigger", outrigger()},
		{"outrigger-redis-only", outrigger(lock.WithLocalHandoff(0))},
		{"outrigger-wake", outrigger(lock.WithHandoff(false), lock.WithLocalHandoff(0))},
		{"redislock", func(b *testing.B, c redis.UniversalClient, prefix string) locker {
			l := redislock.New(c)
			opt := &redislock.Options{RetryStrategy: redislock.LinearBackoff(10 * time.Millisecond)}
			return func(ctx context.Context, key string) (func() error, error) {
				lk, err := l.Obtain(ctx, prefix+key, holdTTL, opt)
				if err != nil {
					return nil, err
				}
				return func() error { return lk.Release(ctx) }, nil
			}
		}},
		{"redislock-1ms", func(b *testing.B, c redis.UniversalClient, prefix string) locker {
			l := redislock.New(c)
			opt := &redislock.Options{RetryStrategy: redislock.LinearBackoff(time.Millisecond)}
			return func(ctx context.Context, key string) (func() error, error) {
				lk, err := l.Obtain(ctx, prefix+key, holdTTL, opt)
				if err != nil {
					return nil, err
				}
				return func() error { return lk.Release(ctx) }, nil
			}
		}},
		{"redsync", func(b *testing.B, c redis.UniversalClient, prefix string) locker {
			rs := redsync.New(goredis.NewPool(c))
			return func(ctx context.Context, key string) (func() error, error) {
				m := rs.NewMutex(prefix+key, redsync.WithExpiry(holdTTL),
					redsync.WithTries(1<<30), redsync.WithRetryDelay(10*time.Millisecond))
				if err := m.LockContext(ctx); err != nil {
					return nil, err
				}
				return func() error { _, err := m.UnlockContext(ctx); return err }, nil
			}
		}},
	}
}

// BenchmarkUncontended measures acquire+release of a free lock, one
// goroutine, on the same Redis for every implementation. redis-µs/op is
// the time Redis spent executing the commands (INFO commandstats), which
// includes the INFO calls themselves once per run.
func BenchmarkUncontended(b *testing.B) {
	db := redistest.New(b)
	ctx := context.Background()
	for _, im := range impls() {
		if im.name == "redislock-1ms" || strings.HasPrefix(im.name, "outrigger-") {
			continue // same calls as redislock when uncontended
		}
		b.Run("impl="+im.name, func(b *testing.B) {
			c := db.NewClient(b)
			cnt := redistest.NewCounter()
			c.AddHook(cnt)
			l := im.mk(b, c, db.Prefix+im.name+":")
			b.ReportAllocs()
			cnt.Reset()
			before := redisUsec(b, c)
			for b.Loop() {
				rel, err := l(ctx, "k")
				if err != nil {
					b.Fatal(err)
				}
				if err := rel(); err != nil {
					b.Fatal(err)
				}
			}
			cnt.Report(b)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
			b.ReportMetric((redisUsec(b, c)-before)/float64(b.N), "redis-µs/op")
		})
	}
}

// redisUsec returns the total time Redis spent executing commands since its
// statistics were last reset, in µs (INFO commandstats).
func redisUsec(b *testing.B, c redis.UniversalClient) float64 {
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\n") {
		_, rest, ok := strings.Cut(line, "usec=")
		if !ok {
			continue
		}
		v, _, _ := strings.Cut(rest, ",")
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			b.Fatalf("commandstats line %q: %v", line, err)
		}
		total += n
	}
	return total
}

// BenchmarkUncontendedParallel measures acquire+release of free locks by
// 64 goroutines at once, each on a key of its own (no contention): the
// throughput one replica gets when many requests each take their own lock.
func BenchmarkUncontendedParallel(b *testing.B) {
	db := redistest.New(b)
	ctx := context.Background()
	for _, im := range impls() {
		if im.name == "redislock-1ms" || strings.HasPrefix(im.name, "outrigger-") {
			continue
		}
		b.Run("impl="+im.name, func(b *testing.B) {
			c := db.NewClient(b)
			cnt := redistest.NewCounter()
			c.AddHook(cnt)
			l := im.mk(b, c, db.Prefix+im.name+":")
			var id atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(32) // × GOMAXPROCS (2 here) = 64 goroutines
			cnt.Reset()
			b.RunParallel(func(pb *testing.PB) {
				key := "k" + strconv.FormatInt(id.Add(1), 10)
				for pb.Next() {
					rel, err := l(ctx, key)
					if err != nil {
						b.Error(err)
						return
					}
					if err := rel(); err != nil {
						b.Error(err)
						return
					}
				}
			})
			cnt.Report(b)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}

// BenchmarkUncontendedInterleaved runs one acquire+release of every
// implementation per iteration, timing each separately, so that load from
// other processes on the machine hits them all alike. It reports each
// implementation's ops/s and ops-ratio, outrigger's ops/s ÷ redislock's.
func BenchmarkUncontendedInterleaved(b *testing.B) {
	db := redistest.New(b)
	ctx := context.Background()
	var names []string
	var ls []locker
	for _, im := range impls() {
		if im.name == "redislock-1ms" || strings.HasPrefix(im.name, "outrigger-") {
			continue
		}
		names = append(names, im.name)
		ls = append(ls, im.mk(b, db.NewClient(b), db.Prefix+im.name+":"))
	}
	spent := make([]time.Duration, len(ls))
	b.ReportAllocs()
	for b.Loop() {
		for i, l := range ls {
			t0 := time.Now()
			rel, err := l(ctx, "k")
			if err != nil {
				b.Fatal(err)
			}
			if err := rel(); err != nil {
				b.Fatal(err)
			}
			spent[i] += time.Since(t0)
		}
	}
	for i, n := range names {
		b.ReportMetric(float64(b.N)/spent[i].Seconds(), n+"-ops/s")
	}
	// outrigger's pairs per second ÷ redislock's (names[0], names[1])
	b.ReportMetric(spent[1].Seconds()/spent[0].Seconds(), "ops-ratio")
}

// Contended workload (from the issue): 8 goroutines on one key; each holds
// it for 200µs of CPU work (a spin loop), then sleeps 1ms before asking
// again, so there are always waiters.
const (
	contenders = 8
	work       = 200 * time.Microsecond
	pause      = time.Millisecond
)

func spin(d time.Duration) {
	for s := time.Now(); time.Since(s) < d; {
	}
}

// handoffs records, inside the critical section, the time from the last
// release to an acquire by a different goroutine.
type handoffs struct {
	lastOwner  atomic.Int64
	lastRel    atomic.Int64 // UnixNano when the previous holder started releasing
	mu         sync.Mutex
	latencies  []time.Duration
	overlapped atomic.Int64
	inside     atomic.Int64
}

func (h *handoffs) enter(me int64) {
	if h.inside.Add(1) != 1 {
		h.overlapped.Add(1)
	}
	if prev := h.lastOwner.Load(); prev != 0 && prev != me {
		d := time.Duration(time.Now().UnixNano() - h.lastRel.Load())
		h.mu.Lock()
		h.latencies = append(h.latencies, d)
		h.mu.Unlock()
	}
}

func (h *handoffs) leave(me int64) {
	h.lastOwner.Store(me)
	h.inside.Add(-1)
	h.lastRel.Store(time.Now().UnixNano())
}

func (h *handoffs) report(b *testing.B) {
	if n := h.overlapped.Load(); n > 0 {
		b.Fatalf("%d critical sections overlapped", n)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sections/s")
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.latencies) == 0 {
		return
	}
	slices.Sort(h.latencies)
	q := func(p float64) float64 {
		return float64(h.latencies[int(p*float64(len(h.latencies)-1))].Microseconds())
	}
	b.ReportMetric(q(0.50), "p50-handoff-µs")
	b.ReportMetric(q(0.99), "p99-handoff-µs")
}

// run drives the contended workload: b.N critical sections in total.
func run(b *testing.B, acquire func(me int64) (release func())) {
	var h handoffs
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for g := range contenders {
		me := int64(g + 1)
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				release := acquire(me)
				h.enter(me)
				spin(work)
				h.leave(me)
				release()
				time.Sleep(pause)
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	h.report(b)
}

// BenchmarkContended runs the contended workload for every implementation
// and for an in-process sync.Mutex (the floor).
func BenchmarkContended(b *testing.B) {
	b.Run("impl=sync.Mutex", func(b *testing.B) {
		var mu sync.Mutex
		run(b, func(int64) func() {
			mu.Lock()
			return mu.Unlock
		})
	})
	db := redistest.New(b)
	ctx := context.Background()
	for _, im := range impls() {
		b.Run("impl="+im.name, func(b *testing.B) {
			// Two clients, as two replicas of a service would have.
			ls := []locker{
				im.mk(b, db.NewClient(b), db.Prefix+im.name+":"),
				im.mk(b, db.NewClient(b), db.Prefix+im.name+":"),
			}
			run(b, func(me int64) func() {
				rel, err := ls[me%2](ctx, "hot")
				if err != nil {
					b.Error(err)
					return func() {}
				}
				return func() {
					if err := rel(); err != nil {
						b.Error(err)
					}
				}
			})
		})
	}
}
