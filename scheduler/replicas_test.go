package scheduler_test

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outrigger-dev/outrigger/scheduler"
)

// TestReplicas runs the multi-replica tests concurrently (they mostly
// wait on the clock), then checks that nothing leaked goroutines.
func TestReplicas(t *testing.T) {
	noLeaks(t)
	t.Run("ExactlyOncePerTick", testExactlyOncePerTick)
	t.Run("ClockSkew", testClockSkew)
	t.Run("Overlap", testOverlap)
	t.Run("TriggerOnceAcrossReplicas", testTriggerOnceAcrossReplicas)
	t.Run("CatchUpOnStart", testCatchUpOnStart)
	t.Run("KillReplica", testKillReplicas)
	t.Run("RedisOutage", testRedisOutage)
	t.Run("AbandonedScan", testAbandonedScan)
	t.Run("RunOnStartOnce", testRunOnStartOnce)
}

// runCounter counts runs per tick (unix ms) of replicas in this process.
// It counts in memory, not in Redis: a job whose own write failed under
// load would otherwise look like a missed tick.
type runCounter struct {
	mu     sync.Mutex
	counts map[int64]int
}

func newRunCounter() *runCounter { return &runCounter{counts: map[int64]int{}} }

// job counts its run.
func (c *runCounter) job(_ context.Context, run scheduler.Run) error {
	c.mu.Lock()
	c.counts[run.Tick.UnixMilli()]++
	c.mu.Unlock()
	return nil
}

// checkOncePerTick asserts that every whole second in [from, to] ran once
// and that no tick ran more than once.
func (c *runCounter) checkOncePerTick(t *testing.T, from, to time.Time) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for tick := from.Truncate(time.Second).Add(time.Second); !tick.After(to); tick = tick.Add(time.Second) {
		if n := c.counts[tick.UnixMilli()]; n != 1 {
			t.Errorf("tick %v ran %d times, want 1", tick.Format("15:04:05"), n)
		}
	}
	ticks := make([]int64, 0, len(c.counts))
	for tk := range c.counts {
		ticks = append(ticks, tk)
	}
	slices.Sort(ticks)
	for _, tk := range ticks {
		if c.counts[tk] != 1 {
			t.Errorf("tick %v ran %d times", time.UnixMilli(tk).Format("15:04:05.000"), c.counts[tk])
		}
		if tk%1000 != 0 {
			t.Errorf("tick %d is not on a whole second", tk)
		}
	}
}

// TestExactlyOncePerTick: five replicas (separate clients) run an
// every-second job for 10s; every tick runs exactly once.
func testExactlyOncePerTick(t *testing.T) {
	t.Parallel()
	for _, b := range redisBackends {
		t.Run("redis="+b.name, func(t *testing.T) {
			t.Parallel()
			db := b.mk(t)
			ss := replicas(t, db, 5)
			counts := newRunCounter()
			for _, s := range ss {
				if err := s.Every("each-second", time.Second, counts.job); err != nil {
					t.Fatal(err)
				}
			}
			start := time.Now()
			startAll(t, ss...)
			time.Sleep(10 * time.Second)
			stopAll(t, ss...)
			end := time.Now()
			counts.checkOncePerTick(t, start.Add(time.Second), end.Add(-2*time.Second))
			var claimed, lost uint64
			for _, s := range ss {
				st := s.Stats()
				claimed += st.Claimed
				lost += st.Lost
			}
			t.Logf("claimed %d, lost %d", claimed, lost)
			if lost == 0 {
				t.Errorf("no replica ever lost a claim: the replicas did not compete")
			}
		})
	}
}

// TestClockSkew: replicas whose clocks are off by up to ±500ms still run
// each tick once, because claims are keyed by the tick, not by "now".
func testClockSkew(t *testing.T) {
	t.Parallel()
	for _, b := range redisBackends {
		t.Run("redis="+b.name, func(t *testing.T) {
			t.Parallel()
			db := b.mk(t)
			var ss []*scheduler.Scheduler
			counts := newRunCounter()
			for i, skew := range []time.Duration{-500 * time.Millisecond, -250 * time.Millisecond, 0, 250 * time.Millisecond, 500 * time.Millisecond} {
				skew := skew
				s := replicas(t, db, 1, scheduler.WithClock(func() time.Time { return time.Now().Add(skew) }),
					scheduler.WithNodeID("skew-"+strconv.Itoa(i)))[0]
				if err := s.Every("each-second", time.Second, counts.job); err != nil {
					t.Fatal(err)
				}
				ss = append(ss, s)
			}
			start := time.Now()
			startAll(t, ss...)
			time.Sleep(6 * time.Second)
			stopAll(t, ss...)
			counts.checkOncePerTick(t, start.Add(time.Second), time.Now().Add(-2*time.Second))
			// The replica half a second ahead should win most ticks.
			recs, err := ss[0].History(context.Background(), "each-second", 100)
			if err != nil {
				t.Fatal(err)
			}
			won := map[string]int{}
			for _, r := range recs {
				won[r.Node]++
			}
			t.Logf("ticks won per node: %v", won)
		})
	}
}

// TestOverlap runs a 1.5s job every second on three replicas under each
// Overlap policy.
func testOverlap(t *testing.T) {
	t.Parallel()
	for _, b := range redisBackends {
		for _, p := range []scheduler.OverlapPolicy{scheduler.Skip, scheduler.Wait, scheduler.Allow} {
			t.Run("redis="+b.name+"/overlap="+p.String(), func(t *testing.T) {
				t.Parallel()
				db := b.mk(t)
				ss := replicas(t, db, 3, scheduler.WithLeaseTTL(3*time.Second))
				var (
					mu       sync.Mutex
					running  int
					maxConc  int
					tokens   []uint64
					lateness []time.Duration
					runs     atomic.Int64
				)
				job := func(ctx context.Context, run scheduler.Run) error {
					mu.Lock()
					running++
					maxConc = max(maxConc, running)
					tokens = append(tokens, run.Token)
					lateness = append(lateness, time.Since(run.Tick))
					mu.Unlock()
					runs.Add(1)
					defer func() {
						mu.Lock()
						running--
						mu.Unlock()
					}()
					select {
					case <-time.After(1500 * time.Millisecond):
						return nil
					case <-ctx.Done():
						return ctx.Err()
					}
				}
				for _, s := range ss {
					if err := s.Every("slow", time.Second, job, scheduler.Overlap(p)); err != nil {
						t.Fatal(err)
					}
				}
				startAll(t, ss...)
				waitFor(t, 30*time.Second, "four runs", func() bool { return runs.Load() >= 4 })
				stopAll(t, ss...)
				recs, err := ss[0].History(context.Background(), "slow", 100)
				if err != nil {
					t.Fatal(err)
				}
				skipped := 0
				seen := map[int64]int{}
				for _, r := range recs {
					if r.Skipped {
						skipped++
					}
					seen[r.Tick.UnixMilli()]++
				}
				for tk, c := range seen {
					if c != 1 {
						t.Errorf("tick %d recorded %d times", tk, c)
					}
				}
				mu.Lock()
				defer mu.Unlock()
				t.Logf("runs %d, max concurrency %d, skipped %d, tokens %v, lateness %v", runs.Load(), maxConc, skipped, tokens, lateness)
				switch p {
				case scheduler.Skip, scheduler.Wait:
					if maxConc != 1 {
						t.Errorf("max concurrency %d, want 1", maxConc)
					}
					for i := 1; i < len(tokens); i++ {
						if tokens[i] <= tokens[i-1] {
							t.Errorf("fencing tokens not increasing: %v", tokens)
							break
						}
					}
				case scheduler.Allow:
					if maxConc < 2 {
						t.Errorf("max concurrency %d, want >= 2", maxConc)
					}
				}
				switch p {
				case scheduler.Skip:
					if skipped == 0 {
						t.Errorf("no tick was skipped")
					}
				case scheduler.Wait:
					waited := false
					for _, l := range lateness {
						if l > 300*time.Millisecond {
							waited = true
						}
					}
					if !waited {
						t.Errorf("no run waited for the previous one: lateness %v", lateness)
					}
				}
			})
		}
	}
}

// TestTriggerOnceAcrossReplicas: five replicas trigger the same job at once;
// it runs once.
func testTriggerOnceAcrossReplicas(t *testing.T) {
	t.Parallel()
	for _, b := range redisBackends {
		t.Run("redis="+b.name, func(t *testing.T) {
			t.Parallel()
			db := b.mk(t)
			ss := replicas(t, db, 5)
			var runs atomic.Int64
			var gotKind atomic.Value
			var mu sync.Mutex
			var began []time.Time // when each run started
			for _, s := range ss {
				err := s.Cron("yearly", "0 0 1 1 *", func(ctx context.Context, run scheduler.Run) error {
					mu.Lock()
					began = append(began, time.Now())
					mu.Unlock()
					runs.Add(1)
					gotKind.Store(run.Kind)
					time.Sleep(100 * time.Millisecond)
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			startAll(t, ss...)
			defer stopAll(t, ss...)
			var wg sync.WaitGroup
			for _, s := range ss {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := s.Trigger(context.Background(), "yearly"); err != nil {
						t.Errorf("Trigger: %v", err)
					}
				}()
			}
			wg.Wait()
			waitFor(t, 5*time.Second, "the triggered run", func() bool { return runs.Load() >= 1 })
			time.Sleep(300 * time.Millisecond)
			n := runs.Load()
			if n != 1 {
				// Triggers coalesce until a second after the run began: a
				// Trigger delayed past that (a stalled host) runs again, as
				// documented. Two runs within the window are a bug.
				mu.Lock()
				slices.SortFunc(began, func(a, b time.Time) int { return a.Compare(b) })
				for i := 1; i < len(began); i++ {
					if gap := began[i].Sub(began[i-1]); gap < 900*time.Millisecond {
						t.Fatalf("triggered job ran %d times, two of them %v apart: want 1 within a second", n, gap)
					}
				}
				mu.Unlock()
				t.Logf("triggered job ran %d times, each over a second after the one before (Trigger calls delayed by load)", n)
			}
			if k := gotKind.Load(); k != scheduler.KindTrigger {
				t.Errorf("run kind %v, want %v", k, scheduler.KindTrigger)
			}
			// Once the window has passed, a new Trigger runs again.
			time.Sleep(time.Second)
			if err := ss[1].Trigger(context.Background(), "yearly"); err != nil {
				t.Fatalf("second Trigger: %v", err)
			}
			if got := runs.Load(); got != n+1 {
				t.Errorf("after a second Trigger the job ran %d times, want %d", got, n+1)
			}
			if err := ss[0].Trigger(context.Background(), "nope"); err == nil {
				t.Errorf("Trigger of an unknown job: got nil error")
			}
		})
	}
}

// TestCatchUpOnStart: the last hourly tick was missed because no replica
// was up; the first replica to start runs it once with CatchUp, the next
// does not, and a job without CatchUp does not run it.
func testCatchUpOnStart(t *testing.T) {
	t.Parallel()
	for _, b := range redisBackends {
		t.Run("redis="+b.name, func(t *testing.T) {
			t.Parallel()
			db := b.mk(t)
			var (
				mu    sync.Mutex
				ticks = map[string][]scheduler.Run{}
			)
			rec := func(ctx context.Context, run scheduler.Run) error {
				mu.Lock()
				ticks[run.Job] = append(ticks[run.Job], run)
				mu.Unlock()
				return nil
			}
			mk := func() *scheduler.Scheduler {
				s := replicas(t, db, 1)[0]
				if err := s.Every("hourly-catch-up", time.Hour, rec, scheduler.CatchUp(time.Hour)); err != nil {
					t.Fatal(err)
				}
				if err := s.Every("hourly-plain", time.Hour, rec); err != nil {
					t.Fatal(err)
				}
				return s
			}
			s1 := mk()
			startAll(t, s1)
			waitFor(t, 10*time.Second, "the catch-up run", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(ticks["hourly-catch-up"]) == 1
			})
			s2 := mk()
			startAll(t, s2)
			time.Sleep(500 * time.Millisecond)
			stopAll(t, s1, s2)
			mu.Lock()
			defer mu.Unlock()
			if n := len(ticks["hourly-catch-up"]); n != 1 {
				t.Errorf("catch-up job ran %d times, want 1", n)
			}
			if r := ticks["hourly-catch-up"][0]; !r.Tick.Equal(time.Now().Truncate(time.Hour)) && time.Since(time.Now().Truncate(time.Hour)) > 2*time.Second {
				t.Errorf("caught-up tick %v, want %v", r.Tick, time.Now().Truncate(time.Hour))
			}
			if n := len(ticks["hourly-plain"]); n != 0 && time.Since(time.Now().Truncate(time.Hour)) > 5*time.Second {
				t.Errorf("job without CatchUp ran %d times, want 0", n)
			}
		})
	}
}

// testRunOnStartOnce: three replicas started one after another, within the
// same period of an hourly job with RunOnStart, run the start run once.
func testRunOnStartOnce(t *testing.T) {
	t.Parallel()
	for _, b := range redisBackends {
		t.Run("redis="+b.name, func(t *testing.T) {
			t.Parallel()
			db := b.mk(t)
			var runs atomic.Int64
			var kinds sync.Map
			ss := replicas(t, db, 3)
			for _, s := range ss {
				if err := s.Every("warm-cache", time.Hour, func(ctx context.Context, run scheduler.Run) error {
					runs.Add(1)
					kinds.Store(run.Kind, true)
					return nil
				}, scheduler.RunOnStart()); err != nil {
					t.Fatal(err)
				}
			}
			for _, s := range ss {
				startAll(t, s)
				time.Sleep(300 * time.Millisecond)
			}
			waitFor(t, 5*time.Second, "the start run", func() bool { return runs.Load() >= 1 })
			time.Sleep(300 * time.Millisecond)
			stopAll(t, ss...)
			if n := runs.Load(); n != 1 && time.Until(time.Now().Truncate(time.Hour).Add(time.Hour)) > 5*time.Second {
				t.Errorf("start run ran %d times, want 1", n)
			}
			if _, ok := kinds.Load(scheduler.KindStart); !ok {
				t.Errorf("no run of kind %v", scheduler.KindStart)
			}
		})
	}
}
