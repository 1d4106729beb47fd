// Package schedulerbench compares Outrigger's scheduler with
// go-co-op/gocron v2 using a Redis distributed locker (bsm/redislock), on the
// same Redis, in one run.
//
// Both schedulers run on the real clock, so a benchmark's wall time is set
// by the schedule, not by the code: ns/op is not meaningful here. The
// figures are the custom metrics: process CPU per run, Redis round trips per
// run, tick-to-start latency percentiles and duplicate runs. Run them with
// an explicit op count (see RESULTS.md), e.g. -benchtime 3000x.
package schedulerbench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bsm/redislock"
	"github.com/go-co-op/gocron/v2"
	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/scheduler"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// server returns the redis-server the benchmark runs on: one of its own,
// so that other packages' tests on the shared server (pauses, SCRIPT FLUSH,
// load) do not disturb the figures, or the shared one with
// OUTRIGGER_BENCH_SHARED=1. Both implementations use the same one.
func server(b *testing.B) func(b *testing.B) *redistest.DB {
	b.Helper()
	if os.Getenv("OUTRIGGER_BENCH_SHARED") != "" {
		return func(b *testing.B) *redistest.DB { return redistest.New(b) }
	}
	srv := redistest.StartServer(b)
	return func(b *testing.B) *redistest.DB {
		return &redistest.DB{Prefix: redistest.NewPrefix(), Addrs: []string{srv.Addr()}}
	}
}

// cpuTime returns the user+system CPU time of this process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisLocker is gocron's distributed Locker on bsm/redislock, as users
// write it: obtain key for the TTL without retrying, release after the run.
type redisLocker struct {
	c      *redislock.Client
	prefix string
	ttl    time.Duration
}

func (l *redisLocker) Lock(ctx context.Context, key string) (gocron.Lock, error) {
	lk, err := l.c.Obtain(ctx, l.prefix+key, l.ttl, nil)
	if err != nil {
		return nil, err
	}
	return redisLock{lk}, nil
}

type redisLock struct{ lk *redislock.Lock }

func (l redisLock) Unlock(ctx context.Context) error { return l.lk.Release(ctx) }

var _ gocron.Locker = (*redisLocker)(nil)

// runCounter counts runs and wakes a waiter at a target.
type runCounter struct {
	n      atomic.Int64
	target atomic.Int64
	done   chan struct{}
	once   sync.Once
}

func newRunCounter(target int) *runCounter {
	c := &runCounter{done: make(chan struct{})}
	c.target.Store(int64(target))
	return c
}

func (c *runCounter) add() {
	if c.n.Add(1) == c.target.Load() {
		c.once.Do(func() { close(c.done) })
	}
}

func (c *runCounter) wait(b *testing.B, timeout time.Duration) {
	b.Helper()
	select {
	case <-c.done:
	case <-time.After(timeout):
		b.Fatalf("only %d of %d runs after %v", c.n.Load(), c.target.Load(), timeout)
	}
}

const (
	manyJobs = 10_000
	period   = 10 * time.Second
)

// BenchmarkOverhead registers 10,000 jobs running every 10s on one replica
// (spread over the period: Jitter for Outrigger, staggered start times for
// gocron) and measures, per run, the process CPU time and the Redis round
// trips. One op is one run. Outrigger runs with Overlap(Skip), the default
// (claim + lease in one script, record + release in another: 2 round trips,
// fewer when concurrent runs share pipelines), and Overlap(Allow) (claim,
// record: 2).
func BenchmarkOverhead(b *testing.B) {
	newDB := server(b)
	for _, p := range []scheduler.OverlapPolicy{scheduler.Skip, scheduler.Allow} {
		b.Run("impl=outrigger/overlap="+p.String(), func(b *testing.B) {
			db := newDB(b)
			c := db.NewClient(b, func(o *redis.UniversalOptions) { o.PoolSize = 64 })
			cnt := redistest.NewCounter()
			c.AddHook(cnt)
			s, err := scheduler.New(c, scheduler.WithNamespace(db.Prefix))
			if err != nil {
				b.Fatal(err)
			}
			runs := newRunCounter(b.N)
			job := func(ctx context.Context, run scheduler.Run) error {
				runs.add()
				return nil
			}
			for i := range manyJobs {
				if err := s.Every("job-"+strconv.Itoa(i), period, job, scheduler.Jitter(period), scheduler.Overlap(p)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			if err := s.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			cnt.Reset()
			cpu0 := cpuTime()
			runs.wait(b, time.Duration(b.N/(manyJobs/10)+3)*period)
			cpu := cpuTime() - cpu0
			b.StopTimer()
			rt := cnt.RoundTrips()
			n := runs.n.Load()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_ = s.Stop(ctx)
			b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/run")
			b.ReportMetric(float64(rt)/float64(n), "round-trips/run")
		})
	}
	b.Run("impl=gocron-redislock", func(b *testing.B) {
		db := newDB(b)
		c := db.NewClient(b, func(o *redis.UniversalOptions) { o.PoolSize = 64 })
		cnt := redistest.NewCounter()
		c.AddHook(cnt)
		s, err := gocron.NewScheduler(gocron.WithDistributedLocker(&redisLocker{
			c: redislock.New(c), prefix: db.Prefix, ttl: 30 * time.Second,
		}))
		if err != nil {
			b.Fatal(err)
		}
		runs := newRunCounter(b.N)
		now := time.Now()
		for i := range manyJobs {
			start := now.Add(time.Second + time.Duration(i)*period/manyJobs)
			_, err := s.NewJob(gocron.DurationJob(period), gocron.NewTask(runs.add),
				gocron.WithName("job-"+strconv.Itoa(i)), gocron.WithStartAt(gocron.WithStartDateTime(start)))
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportAllocs()
		s.Start()
		b.ResetTimer()
		cnt.Reset()
		cpu0 := cpuTime()
		runs.wait(b, time.Duration(b.N/(manyJobs/10)+3)*period)
		cpu := cpuTime() - cpu0
		b.StopTimer()
		rt := cnt.RoundTrips()
		n := runs.n.Load()
		_ = s.Shutdown()
		b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/run")
		b.ReportMetric(float64(rt)/float64(n), "round-trips/run")
	})
}

// latencies collects tick-to-start latencies and runs per (job, tick).
type latencies struct {
	mu    sync.Mutex
	lat   []time.Duration
	ticks map[string]int
	runs  *runCounter
}

func newLatencies(n int) *latencies {
	return &latencies{ticks: make(map[string]int), runs: newRunCounter(n)}
}

func (l *latencies) record(job string, tick time.Time, start time.Time) {
	l.mu.Lock()
	l.lat = append(l.lat, start.Sub(tick))
	l.ticks[job+"@"+strconv.FormatInt(tick.Unix(), 10)]++
	l.mu.Unlock()
	l.runs.add()
}

func (l *latencies) report(b *testing.B) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := slices.Clone(l.lat)
	slices.Sort(s)
	pct := func(p float64) float64 {
		if len(s) == 0 {
			return 0
		}
		return float64(s[min(len(s)-1, int(p*float64(len(s))))].Microseconds()) / 1000
	}
	dups := 0
	for _, c := range l.ticks {
		dups += c - 1
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(dups)/float64(len(l.ticks)), "dup-runs/tick")
}

const (
	latJobs     = 100
	latReplicas = 5
)

// BenchmarkTickToStart runs 100 every-second jobs on five replicas
// (separate clients) and measures the latency from the scheduled tick to
// the job's start, the Redis round trips per run (all replicas), and runs
// beyond the first per (job, tick). One op is one run.
func BenchmarkTickToStart(b *testing.B) {
	newDB := server(b)
	b.Run(fmt.Sprintf("impl=outrigger/replicas=%d", latReplicas), func(b *testing.B) {
		db := newDB(b)
		cnt := redistest.NewCounter()
		l := newLatencies(b.N)
		var ss []*scheduler.Scheduler
		for r := range latReplicas {
			c := db.NewClient(b)
			c.AddHook(cnt)
			s, err := scheduler.New(c, scheduler.WithNamespace(db.Prefix), scheduler.WithNodeID(strconv.Itoa(r)))
			if err != nil {
				b.Fatal(err)
			}
			for i := range latJobs {
				name := "job-" + strconv.Itoa(i)
				err := s.Every(name, time.Second, func(ctx context.Context, run scheduler.Run) error {
					l.record(run.Job, run.Tick, time.Now())
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			ss = append(ss, s)
		}
		b.ReportAllocs()
		for _, s := range ss {
			if err := s.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
		cnt.Reset()
		l.runs.wait(b, time.Duration(b.N/latJobs+10)*time.Second)
		b.StopTimer()
		rt, n := cnt.RoundTrips(), l.runs.n.Load()
		for _, s := range ss {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = s.Stop(ctx)
			cancel()
		}
		l.report(b)
		b.ReportMetric(float64(rt)/float64(n), "round-trips/run")
	})
	b.Run(fmt.Sprintf("impl=gocron-redislock/replicas=%d", latReplicas), func(b *testing.B) {
		db := newDB(b)
		cnt := redistest.NewCounter()
		l := newLatencies(b.N)
		var ss []gocron.Scheduler
		for range latReplicas {
			c := db.NewClient(b)
			c.AddHook(cnt)
			s, err := gocron.NewScheduler(gocron.WithDistributedLocker(&redisLocker{
				c: redislock.New(c), prefix: db.Prefix, ttl: 30 * time.Second,
			}))
			if err != nil {
				b.Fatal(err)
			}
			for i := range latJobs {
				name := "job-" + strconv.Itoa(i)
				_, err := s.NewJob(gocron.CronJob("* * * * * *", true), gocron.NewTask(func() {
					now := time.Now()
					// gocron does not tell the job its tick: it is the second
					// the run was due at.
					l.record(name, now.Truncate(time.Second), now)
				}), gocron.WithName(name))
				if err != nil {
					b.Fatal(err)
				}
			}
			ss = append(ss, s)
		}
		b.ReportAllocs()
		for _, s := range ss {
			s.Start()
		}
		b.ResetTimer()
		cnt.Reset()
		l.runs.wait(b, time.Duration(b.N/latJobs+10)*time.Second)
		b.StopTimer()
		rt, n := cnt.RoundTrips(), l.runs.n.Load()
		for _, s := range ss {
			_ = s.Shutdown()
		}
		l.report(b)
		b.ReportMetric(float64(rt)/float64(n), "round-trips/run")
	})
}
