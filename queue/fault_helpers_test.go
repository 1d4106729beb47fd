package queue_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/historytest"
	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/queue"
)

// faultRun drives producers and consumers of one queue through a fault and
// records a historytest.QueueHistory: every publish with the outcome its
// caller saw, every delivery. Publishes carry WithID, so a publish that
// failed or timed out still has a known ID (and an application retry would
// stay exactly once).
type faultRun struct {
	t    *testing.T
	name string
	h    historytest.QueueHistory
	seq  atomic.Int64

	// lastOK is the time of the latest acknowledged publish (unix nanos).
	lastOK atomic.Int64
	// lastDelivery is the time of the latest delivery (unix nanos).
	lastDelivery atomic.Int64

	mu       sync.Mutex
	outcomes map[historytest.Outcome]int // protected by mu
	errs     map[string]int              // first words of errors (protected by mu)
	okTimes  []time.Time                 // acknowledged publishes but the "zombie" ones (protected by mu)

	stops []func()
}

func newFaultRun(t *testing.T, name string) *faultRun {
	return &faultRun{t: t, name: name, outcomes: map[historytest.Outcome]int{}, errs: map[string]int{}}
}

// publish publishes one message and records it.
func (f *faultRun) publish(ctx context.Context, q queue.Queue, tag string) (historytest.Outcome, error) {
	id := f.name + "-" + tag + "-" + strconv.FormatInt(f.seq.Add(1), 10)
	_, err := q.Publish(ctx, []byte(id), queue.WithID(id))
	o := historytest.OutcomeOf(err)
	f.h.Enqueue(id, o)
	f.mu.Lock()
	f.outcomes[o]++
	if err != nil {
		s := err.Error()
		if len(s) > 60 {
			s = s[:60]
		}
		f.errs[s]++
	}
	if err == nil && tag != "zombie" {
		f.okTimes = append(f.okTimes, time.Now())
	}
	f.mu.Unlock()
	if err == nil {
		f.lastOK.Store(time.Now().UnixNano())
	}
	return o, err
}

// produce runs n publishing goroutines on q until the returned stop is
// called (stop waits for them). Each pauses every between publishes.
func (f *faultRun) produce(q queue.Queue, n int, every time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tag := "p" + strconv.Itoa(g)
			for ctx.Err() == nil {
				pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
				_, _ = f.publish(pctx, q, tag)
				pcancel()
				select {
				case <-ctx.Done():
				case <-time.After(every):
				}
			}
		}()
	}
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	f.stops = append(f.stops, stop)
	f.t.Cleanup(stop)
	return stop
}

// consume runs a consumer on q recording deliveries, until the returned
// stop is called (stop waits for Consume to return). Each handler call
// takes delay: a slow consumer leaves a backlog, which is what a failover
// or restart can lose.
func (f *faultRun) consume(q queue.Queue, delay time.Duration, opts ...queue.ConsumeOption) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	opts = append([]queue.ConsumeOption{
		queue.Concurrency(4), queue.VisibilityTimeout(2 * time.Second),
		queue.Backoff(func(int) time.Duration { return 20 * time.Millisecond }),
		queue.ShutdownTimeout(5 * time.Second),
	}, opts...)
	go func() {
		done <- q.Consume(ctx, func(_ context.Context, m *queue.Message) error {
			if delay > 0 {
				time.Sleep(delay)
			}
			f.h.Dequeue(m.ID)
			f.lastDelivery.Store(time.Now().UnixNano())
			return nil
		}, opts...)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					f.t.Errorf("Consume returned %v", err)
				}
			case <-time.After(60 * time.Second):
				f.t.Errorf("Consume did not return within 60s of its ctx being cancelled")
			}
		})
	}
	f.stops = append(f.stops, stop)
	f.t.Cleanup(stop)
	return stop
}

// drain waits (up to limit) until q reports nothing ready, in flight or
// delayed twice in a row and no delivery happened for a moment. It returns
// false when the limit passed first (the report then shows what is left).
func (f *faultRun) drain(q queue.Queue, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	quiet := 0
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, err := q.Stats(ctx)
		cancel()
		idle := time.Since(time.Unix(0, f.lastDelivery.Load())) > 300*time.Millisecond
		if err == nil && st.Ready == 0 && st.InFlight == 0 && st.Delayed == 0 && idle {
			quiet++
			if quiet >= 2 {
				return true
			}
		} else {
			quiet = 0
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// check stops producers and consumers (in the order they started),
// compares the history and logs one
// summary line. It asserts what the queue always promises: nothing
// delivered that was not published.
func (f *faultRun) check(extra string) historytest.QueueReport {
	f.t.Helper()
	for _, stop := range f.stops {
		stop()
	}
	rep := f.h.Check()
	f.mu.Lock()
	errs := fmt.Sprint(f.errs)
	f.mu.Unlock()
	f.t.Logf("%s: lost=%d duplicated=%d unexpected=%d recovered=%d ok=%d failed=%d unknown=%d delivered=%d deliveries=%d %s; errors %s",
		f.name, len(rep.Lost), len(rep.Duplicated), len(rep.Unexpected), len(rep.Recovered),
		rep.Acknowledged, rep.Failed, rep.Unknown, rep.Delivered, rep.Deliveries, extra, errs)
	require.Empty(f.t, rep.Unexpected, "delivered but never published: %s", rep)
	return rep
}

// waitOK waits until a publish through q (or the producers; not the
// "zombie" ones) is acknowledged after since, publishing as needed, and
// returns how long after since the first such publish was acknowledged.
func (f *faultRun) waitOK(q queue.Queue, since time.Time, limit time.Duration) time.Duration {
	f.t.Helper()
	first := func() (time.Duration, bool) {
		f.mu.Lock()
		defer f.mu.Unlock()
		i, _ := slices.BinarySearchFunc(f.okTimes, since, func(a, b time.Time) int { return a.Compare(b) })
		if i == len(f.okTimes) {
			return 0, false
		}
		return f.okTimes[i].Sub(since), true
	}
	require.Eventually(f.t, func() bool {
		if _, ok := first(); ok {
			return true
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		o, _ := f.publish(ctx, q, "probe")
		return o == historytest.OK
	}, limit, 20*time.Millisecond, "no publish acknowledged after the fault")
	d, _ := first()
	return d
}

// outage returns the longest time without an acknowledged publish (not
// counting the "zombie" ones) from the last one before since to the last
// one: how long producers could not publish because of a fault at since.
func (f *faultRun) outage(since time.Time) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, _ := slices.BinarySearchFunc(f.okTimes, since, func(a, b time.Time) int { return a.Compare(b) })
	prev := since
	if i > 0 {
		prev = f.okTimes[i-1]
	}
	var gap time.Duration
	for _, t := range f.okTimes[i:] {
		gap = max(gap, t.Sub(prev))
		prev = t
	}
	return gap
}

// rounds is how many times a fault test repeats its fault: short by
// default, more with OUTRIGGER_LONG=1.
func rounds(short, long int) int {
	if redistest.Long() {
		return long
	}
	return short
}

// faultTotals sums the counts of several rounds for the summary line.
type faultTotals struct {
	rounds, lost, dup, recovered, ok, failed, unknown int
	recovery                                          []time.Duration
}

func (s *faultTotals) add(rep historytest.QueueReport, recovery time.Duration) {
	s.rounds++
	s.lost += len(rep.Lost)
	s.dup += len(rep.Duplicated)
	s.recovered += len(rep.Recovered)
	s.ok += rep.Acknowledged
	s.failed += rep.Failed
	s.unknown += rep.Unknown
	if recovery > 0 {
		s.recovery = append(s.recovery, recovery)
	}
}

func (s *faultTotals) String() string {
	var worst time.Duration
	for _, d := range s.recovery {
		worst = max(worst, d)
	}
	return fmt.Sprintf("rounds=%d lost=%d duplicated=%d recovered=%d ok=%d failed=%d unknown=%d outage(max)=%v",
		s.rounds, s.lost, s.dup, s.recovered, s.ok, s.failed, s.unknown, worst.Round(10*time.Millisecond))
}
