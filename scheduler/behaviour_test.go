package scheduler_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/scheduler"
)

// makers build one scheduler on each backend: every behaviour test runs on
// all of them.
var makers = []struct {
	name string
	mk   func(t *testing.T, opts ...scheduler.Option) *scheduler.Scheduler
}{
	{"local", func(t *testing.T, opts ...scheduler.Option) *scheduler.Scheduler {
		s, err := scheduler.NewLocal(opts...)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
	{"redis", func(t *testing.T, opts ...scheduler.Option) *scheduler.Scheduler {
		return replicas(t, redistest.New(t), 1, opts...)[0]
	}},
	{"cluster", func(t *testing.T, opts ...scheduler.Option) *scheduler.Scheduler {
		return replicas(t, redistest.NewCluster(t), 1, opts...)[0]
	}},
}

func forEachBackend(t *testing.T, f func(t *testing.T, mk func(t *testing.T, opts ...scheduler.Option) *scheduler.Scheduler)) {
	noLeaks(t)
	for _, m := range makers {
		t.Run("backend="+m.name, func(t *testing.T) {
			t.Parallel()
			f(t, m.mk)
		})
	}
}

func TestValidation(t *testing.T) {
	s, err := scheduler.NewLocal()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Every("taken", time.Second, nop); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		add  func() error
		want []string // substrings of the error
	}{
		{"empty name", func() error { return s.Every("", time.Second, nop) }, []string{"name must not be empty"}},
		{"nil job", func() error { return s.Every("a", time.Second, nil) }, []string{`"a"`, "nil"}},
		{"zero interval", func() error { return s.Every("b", 0, nop) }, []string{`"b"`, "interval must be > 0"}},
		{"negative interval", func() error { return s.Every("c", -time.Second, nop) }, []string{`"c"`, "interval must be > 0"}},
		{"duplicate", func() error { return s.Every("taken", time.Second, nop) }, []string{`"taken"`, "already registered"}},
		{"duplicate cron", func() error { return s.Cron("taken", "* * * * *", nop) }, []string{`"taken"`, "already registered"}},
		{"bad spec", func() error { return s.Cron("d", "not a spec", nop) }, []string{`"d"`, "not a spec"}},
		{"4 fields", func() error { return s.Cron("e", "* * * *", nop) }, []string{`"e"`, "got 4"}},
		{"7 fields", func() error { return s.Cron("e2", "* * * * * * *", nop) }, []string{`"e2"`, "got 7"}},
		{"out of range", func() error { return s.Cron("f", "61 * * * *", nop) }, []string{`"f"`, "above maximum"}},
		{"never fires", func() error { return s.Cron("g", "0 0 30 2 *", nop) }, []string{`"g"`, "never matches"}},
		{"empty spec", func() error { return s.Cron("h", "  ", nop) }, []string{`"h"`, "empty spec"}},
		{"bad descriptor", func() error { return s.Cron("i", "@fortnightly", nop) }, []string{`"i"`, "fortnightly"}},
		{"bad every", func() error { return s.Cron("j", "@every 0s", nop) }, []string{`"j"`, "> 0"}},
		{"bad zone", func() error { return s.Cron("k", "TZ=Mars/Olympus 0 * * * *", nop) }, []string{`"k"`, "time zone"}},
		{"zone only", func() error { return s.Cron("k2", "TZ=UTC", nop) }, []string{`"k2"`, "no schedule"}},
		{"bad timeout", func() error { return s.Every("l", time.Second, nop, scheduler.Timeout(0)) }, []string{`"l"`, "Timeout"}},
		{"bad jitter", func() error { return s.Every("m", time.Second, nop, scheduler.Jitter(-1)) }, []string{`"m"`, "Jitter"}},
		{"bad overlap", func() error { return s.Every("n", time.Second, nop, scheduler.Overlap(7)) }, []string{`"n"`, "Overlap"}},
		{"bad catch-up", func() error { return s.Every("o", time.Second, nop, scheduler.CatchUp(0)) }, []string{`"o"`, "CatchUp"}},
		{"bad retry", func() error { return s.Every("p", time.Second, nop, scheduler.Retry(-1, 0)) }, []string{`"p"`, "Retry"}},
		{"bad backoff", func() error { return s.Every("q", time.Second, nop, scheduler.Retry(1, -time.Second)) }, []string{`"q"`, "backoff"}},
		{"offset on cron", func() error { return s.Cron("r", "* * * * *", nop, scheduler.Offset(time.Second)) }, []string{`"r"`, "Offset"}},
		{"bad dst", func() error { return s.Cron("s", "* * * * *", nop, scheduler.DST(9)) }, []string{`"s"`, "DST"}},
	}
	for _, tc := range tests {
		err := tc.add()
		if err == nil {
			t.Errorf("%s: got nil error", tc.name)
			continue
		}
		if !errors.Is(err, scheduler.ErrInvalidJob) {
			t.Errorf("%s: got %v, want it to wrap ErrInvalidJob", tc.name, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tc.name, err, w)
			}
		}
	}
	// The failed registrations left nothing behind.
	if _, err := s.NextAfter("a", time.Now()); !errors.Is(err, scheduler.ErrUnknownJob) {
		t.Errorf("NextAfter of a rejected job: got %v, want ErrUnknownJob", err)
	}
	// Constructor options are validated too.
	for _, o := range []scheduler.Option{
		scheduler.WithNamespace(""), scheduler.WithLocation(nil), scheduler.WithLogger(nil),
		scheduler.WithNodeID(""), scheduler.WithClock(nil), scheduler.WithLeaseTTL(0),
		scheduler.WithHistory(-1), scheduler.WithDST(42),
	} {
		if _, err := scheduler.NewLocal(o); err == nil {
			t.Errorf("NewLocal with a bad option: got nil error")
		}
	}
	if _, err := scheduler.New(nil); err == nil {
		t.Errorf("New(nil): got nil error")
	}
}

func TestHistoryRetryAndPanic(t *testing.T) {
	forEachBackend(t, func(t *testing.T, mk func(t *testing.T, opts ...scheduler.Option) *scheduler.Scheduler) {
		s := mk(t, scheduler.WithNodeID("me"))
		var calls atomic.Int64
		err := s.Every("flaky", 200*time.Millisecond, func(ctx context.Context, run scheduler.Run) error {
			n := calls.Add(1)
			switch {
			case n == 1:
				panic("boom")
			case n == 2:
				return errors.New("transient")
			}
			return nil
		}, scheduler.Retry(2, 10*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		var later atomic.Int64
		if err := s.Every("panics", 200*time.Millisecond, func(ctx context.Context, run scheduler.Run) error {
			later.Add(1)
			panic("always")
		}); err != nil {
			t.Fatal(err)
		}
		startAll(t, s)
		waitFor(t, 20*time.Second, "two more runs after the panics", func() bool { return calls.Load() >= 5 && later.Load() >= 3 })
		stopAll(t, s)
		recs, err := s.History(context.Background(), "flaky", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) < 2 {
			t.Fatalf("got %d records, want >= 2", len(recs))
		}
		// Newest first: find the first run (three attempts).
		first := recs[len(recs)-1]
		if first.Attempt != 3 || first.Error != "" || first.Node != "me" || first.Job != "flaky" {
			t.Errorf("first run record %+v: want attempt 3, no error, node me", first)
		}
		if first.Start.Before(first.Tick) || first.End.Before(first.Start) || first.Kind != scheduler.KindTick {
			t.Errorf("first run record %+v: want tick <= start <= end, kind tick", first)
		}
		for i := 1; i < len(recs); i++ {
			if !recs[i].Tick.Before(recs[i-1].Tick) {
				t.Errorf("history not newest first: %v then %v", recs[i-1].Tick, recs[i].Tick)
			}
		}
		precs, err := s.History(context.Background(), "panics", 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(precs) != 2 {
			t.Fatalf("got %d records, want 2", len(precs))
		}
		for _, r := range precs {
			if !strings.Contains(r.Error, "panicked") || !strings.Contains(r.Error, "always") {
				t.Errorf("panic record error %q: want it to say the job panicked", r.Error)
			}
		}
		if st := s.Stats(); st.Panics < 3 || st.Retries < 2 || st.Failed < 2 {
			t.Errorf("stats %+v: want >= 3 panics, >= 2 retries, >= 2 failed", st)
		}
		if _, err := s.History(context.Background(), "nope", 1); !errors.Is(err, scheduler.ErrUnknownJob) {
			t.Errorf("History of unknown job: got %v", err)
		}
	})
}

func TestTimeoutCancelsJob(t *testing.T) {
	forEachBackend(t, func(t *testing.T, mk func(t *testing.T, opts ...scheduler.Option) *scheduler.Scheduler) {
		s := mk(t)
		errc := make(chan error, 10)
		if err := s.Every("slow", time.Hour, func(ctx context.Context, run scheduler.Run) error {
			<-ctx.Done()
			errc <- ctx.Err()
			return ctx.Err()
		}, scheduler.Timeout(100*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		err := s.Trigger(context.Background(), "slow")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Trigger: got %v, want DeadlineExceeded", err)
		}
		if got := <-errc; !errors.Is(got, context.DeadlineExceeded) {
			t.Errorf("job ctx: got %v, want DeadlineExceeded", got)
		}
		recs, _ := s.History(context.Background(), "slow", 1)
		if len(recs) != 1 || recs[0].Kind != scheduler.KindTrigger || !strings.Contains(recs[0].Error, "deadline") {
			t.Errorf("history %+v: want one trigger run with a deadline error", recs)
		}
		stopAll(t, s)
	})
}

func TestStopWaitsForRunningJobs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, mk func(t *testing.T, opts ...scheduler.Option) *scheduler.Scheduler) {
		s := mk(t)
		started := make(chan struct{})
		var finished atomic.Bool
		if err := s.Every("work", 100*time.Millisecond, func(ctx context.Context, run scheduler.Run) error {
			select {
			case started <- struct{}{}:
			default:
				return nil
			}
			time.Sleep(300 * time.Millisecond)
			finished.Store(true)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		startAll(t, s)
		<-started
		if err := s.Stop(context.Background()); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if !finished.Load() {
			t.Errorf("Stop returned before the running job finished")
		}
		if err := s.Stop(context.Background()); !errors.Is(err, scheduler.ErrStopped) {
			t.Errorf("second Stop: got %v, want ErrStopped", err)
		}
		if err := s.Start(context.Background()); !errors.Is(err, scheduler.ErrStopped) {
			t.Errorf("Start after Stop: got %v, want ErrStopped", err)
		}
		if err := s.Trigger(context.Background(), "work"); !errors.Is(err, scheduler.ErrStopped) {
			t.Errorf("Trigger after Stop: got %v, want ErrStopped", err)
		}
	})
}

func TestStopDeadlineCancelsJobs(t *testing.T) {
	forEachBackend(t, func(t *testing.T, mk func(t *testing.T, opts ...scheduler.Option) *scheduler.Scheduler) {
		s := mk(t)
		started := make(chan struct{}, 1)
		cancelled := make(chan error, 1)
		if err := s.Every("stubborn", time.Hour, func(ctx context.Context, run scheduler.Run) error {
			started <- struct{}{}
			<-ctx.Done()
			cancelled <- ctx.Err()
			return ctx.Err()
		}, scheduler.RunOnStart()); err != nil {
			t.Fatal(err)
		}
		startAll(t, s)
		<-started
		if err := s.Start(context.Background()); !errors.Is(err, scheduler.ErrAlreadyStarted) {
			t.Errorf("second Start: got %v, want ErrAlreadyStarted", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if err := s.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Stop: got %v, want DeadlineExceeded", err)
		}
		select {
		case err := <-cancelled:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("job ctx: got %v, want Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("job context was not cancelled")
		}
		// Let the run record itself before the leak check.
		waitFor(t, 5*time.Second, "the run to be recorded", func() bool {
			r, _ := s.History(context.Background(), "stubborn", 1)
			return len(r) == 1 && r[0].Kind == scheduler.KindStart
		})
	})
}

func TestJobsAddedAfterStartRun(t *testing.T) {
	forEachBackend(t, func(t *testing.T, mk func(t *testing.T, opts ...scheduler.Option) *scheduler.Scheduler) {
		s := mk(t)
		startAll(t, s)
		defer stopAll(t, s)
		var runs sync.WaitGroup
		runs.Add(1)
		var once sync.Once
		if err := s.Every("late", 100*time.Millisecond, func(ctx context.Context, run scheduler.Run) error {
			once.Do(runs.Done)
			if run.Tick.UnixMilli()%100 != 0 {
				t.Errorf("tick %v is not on a 100ms boundary", run.Tick)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		runs.Wait()
	})
}

func TestOffsetAndJitter(t *testing.T) {
	s, err := scheduler.NewLocal()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Every("off", time.Hour, nop, scheduler.Offset(15*time.Minute)); err != nil {
		t.Fatal(err)
	}
	got, _ := s.NextAfter("off", time.Date(2025, 1, 1, 10, 20, 0, 0, time.UTC))
	if want := time.Date(2025, 1, 1, 11, 15, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("Offset: got %v, want %v", got, want)
	}
	// Jitter moves the start, not the tick: runs still carry whole ticks and
	// start within the jitter, at the same delay on every replica.
	starts := make(chan time.Duration, 100)
	mkJ := func() *scheduler.Scheduler {
		s, err := scheduler.NewLocal()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Every("j", 200*time.Millisecond, func(ctx context.Context, run scheduler.Run) error {
			starts <- time.Since(run.Tick)
			return nil
		}, scheduler.Jitter(150*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		return s
	}
	noLeaks(t)
	j := mkJ()
	startAll(t, j)
	var delays []time.Duration
	for len(delays) < 5 {
		delays = append(delays, <-starts)
	}
	stopAll(t, j)
	spread := false
	for _, d := range delays {
		if d < 0 {
			t.Errorf("run started %v before its tick", -d)
		}
		if d > 20*time.Millisecond {
			spread = true
		}
	}
	if !spread {
		t.Errorf("jitter did not delay any start: %v", delays)
	}
}

// TestLongRunKeepsLease: a run four times longer than the lease TTL keeps
// its lease (refreshed) and context, and a Trigger meanwhile is refused
// with ErrOverlap under Overlap(Skip).
func TestLongRunKeepsLease(t *testing.T) {
	forEachBackend(t, func(t *testing.T, mk func(t *testing.T, opts ...scheduler.Option) *scheduler.Scheduler) {
		// A TTL of a second: a host stalled for a good part of it (a loaded
		// CI machine) would lose the lease, rightly, and fail the test.
		s := mk(t, scheduler.WithLeaseTTL(time.Second))
		started := make(chan struct{}, 1)
		var ctxErr atomic.Value
		if err := s.Every("long", time.Hour, func(ctx context.Context, run scheduler.Run) error {
			select {
			case started <- struct{}{}:
			default:
			}
			select {
			case <-time.After(4 * time.Second):
				return nil
			case <-ctx.Done():
				ctxErr.Store(context.Cause(ctx))
				return ctx.Err()
			}
		}, scheduler.RunOnStart()); err != nil {
			t.Fatal(err)
		}
		startAll(t, s)
		<-started
		time.Sleep(1500 * time.Millisecond) // beyond the lease TTL: refreshed
		if err := s.Trigger(context.Background(), "long"); !errors.Is(err, scheduler.ErrOverlap) {
			t.Errorf("Trigger while running: got %v, want ErrOverlap", err)
		}
		waitFor(t, 10*time.Second, "the long run to finish", func() bool {
			r, _ := s.History(context.Background(), "long", 2)
			return len(r) == 2
		})
		if v := ctxErr.Load(); v != nil {
			t.Errorf("long run cancelled: %v", v)
		}
		recs, err := s.History(context.Background(), "long", 2)
		if err != nil {
			t.Fatal(err)
		}
		// Newest finished first: the skipped trigger finished before the run.
		if len(recs) != 2 || recs[0].Skipped || recs[0].Token == 0 || recs[0].Attempt != 1 || !recs[1].Skipped || recs[1].Attempt != 0 {
			t.Errorf("history %+v: want a run with a token, and a skipped trigger that finished before it", recs)
		}
		if recs[0].Kind != scheduler.KindStart || recs[1].Kind != scheduler.KindTrigger {
			t.Errorf("history kinds %v, %v: want start, trigger", recs[0].Kind, recs[1].Kind)
		}
		stopAll(t, s)
	})
}

// TestClockJumps moves the scheduler's clock forward by an hour and back
// again: after the forward jump only the most recent tick runs (the hour's
// others are missed, not run in a burst), and after the backward jump no
// tick runs a second time.
func TestClockJumps(t *testing.T) {
	noLeaks(t)
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	s, err := scheduler.NewLocal(scheduler.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		ticks []time.Time
	)
	if err := s.Every("sec", time.Second, func(ctx context.Context, run scheduler.Run) error {
		mu.Lock()
		ticks = append(ticks, run.Tick)
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(ticks)
	}
	startAll(t, s)
	waitFor(t, 10*time.Second, "two runs", func() bool { return count() >= 2 })
	before := count()
	offset.Store(int64(time.Hour))
	jumped := clock()
	waitFor(t, 10*time.Second, "runs after the forward jump", func() bool { return count() >= before+2 })
	offset.Store(0)
	time.Sleep(1500 * time.Millisecond)
	stopAll(t, s)

	mu.Lock()
	defer mu.Unlock()
	seen := map[int64]bool{}
	for i, tk := range ticks {
		if seen[tk.Unix()] {
			t.Errorf("tick %v ran twice", tk)
		}
		seen[tk.Unix()] = true
		if i > 0 && !tk.After(ticks[i-1]) {
			t.Errorf("tick %v ran after %v", tk, ticks[i-1])
		}
	}
	after := ticks[before:]
	if len(after) > 10 {
		t.Errorf("%d runs after the jump: missed ticks were run in a burst", len(after))
	}
	if first := after[0]; first.Before(jumped.Add(-11 * time.Second)) {
		t.Errorf("first tick after the jump %v, want within 10s of %v", first, jumped)
	}
	if s.Stats().Missed == 0 {
		t.Errorf("Stats.Missed = 0 after an hour's jump")
	}
}

// TestManualClock drives a scheduler with a clock the test moves by hand
// across the spring-forward night in New York: the 02:30 job runs once, at
// 03:00 EDT, and the next day at 02:30.
func TestManualClock(t *testing.T) {
	noLeaks(t)
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	var now atomic.Int64
	now.Store(time.Date(2025, 3, 9, 1, 0, 0, 0, ny).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	s, err := scheduler.NewLocal(scheduler.WithClock(clock), scheduler.WithLocation(ny))
	if err != nil {
		t.Fatal(err)
	}
	ticks := make(chan time.Time, 10)
	if err := s.Cron("nightly", "30 2 * * *", func(ctx context.Context, run scheduler.Run) error {
		ticks <- run.Tick
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	startAll(t, s)
	defer stopAll(t, s)
	for _, step := range []struct {
		to   time.Time
		want time.Time // zero: no run
	}{
		{time.Date(2025, 3, 9, 1, 59, 59, 0, ny), time.Time{}},
		{time.Date(2025, 3, 9, 3, 0, 0, 0, ny), time.Date(2025, 3, 9, 3, 0, 0, 0, ny)},
		{time.Date(2025, 3, 9, 3, 45, 0, 0, ny), time.Time{}},
		{time.Date(2025, 3, 10, 2, 30, 0, 0, ny), time.Date(2025, 3, 10, 2, 30, 0, 0, ny)},
	} {
		now.Store(step.to.UnixNano())
		if step.want.IsZero() {
			select {
			case tk := <-ticks:
				t.Fatalf("at %v: unexpected run for %v", step.to, tk)
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		select {
		case tk := <-ticks:
			if !tk.Equal(step.want) {
				t.Fatalf("at %v: ran tick %v, want %v", step.to, tk, step.want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("at %v: no run, want %v", step.to, step.want)
		}
	}
}
