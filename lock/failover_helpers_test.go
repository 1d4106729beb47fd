package lock_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/internal/historytest"
	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/lock"
)

// runs returns how many times a fault test repeats its fault: short by
// default (CI), more under OUTRIGGER_LONG=1 to get counts.
func runs(short, longN int) int {
	if long() {
		return longN
	}
	return short
}

// noInvalid makes t fail at its end if l counted an invalid reply: every
// error a fault provokes (a failover, a pause, a restart) must be taken for
// Redis being unavailable, never for a bug.
func noInvalid(t *testing.T, l *lock.RedisLocker) *lock.RedisLocker {
	t.Helper()
	t.Cleanup(func() {
		if st := l.Stats(); st.Invalid != 0 {
			t.Errorf("a fault gave %d invalid replies, want 0 (stats %+v)", st.Invalid, st)
		}
	})
	return l
}

// ctxFor returns a context bounded by d, cancelled when the test ends.
func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// fastSentinel makes a Sentinel client notice a dead or paused primary
// within half a second instead of 3s.
func fastSentinel(o *redis.FailoverOptions) {
	o.DialTimeout = 500 * time.Millisecond
	o.ReadTimeout = 500 * time.Millisecond
	o.WriteTimeout = 500 * time.Millisecond
}

// resourceFence returns a Fence on a Redis server of its own: the protected
// resource, which the faults under test do not touch.
func resourceFence(t *testing.T) *lock.Fence {
	t.Helper()
	f, err := lock.NewFence(redistest.StartServer(t).Client(t), "res:")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// tally is the counts a fault test reports in its one-line summary.
type tally struct {
	doubleGrants  atomic.Int64 // a second holder got a lock its previous holder still believed held
	nonMonotonic  atomic.Int64 // a later holder's token was not larger than the earlier holder's
	staleRejected atomic.Int64 // fenced writes of a superseded holder, rejected
	refused       atomic.Int64 // acquires (or refreshes) that failed during the fault window
	ackedLost     atomic.Int64 // acknowledged acquires whose lock did not survive
	recoveries    []time.Duration
	mu            sync.Mutex // protects recoveries
}

func (c *tally) recovered(d time.Duration) {
	c.mu.Lock()
	c.recoveries = append(c.recoveries, d)
	c.mu.Unlock()
}

func (c *tally) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var maxR time.Duration
	for _, d := range c.recoveries {
		maxR = max(maxR, d)
	}
	return fmt.Sprintf("double grants %d, non-monotonic tokens %d, stale writes rejected %d, refused in window %d, acknowledged acquires lost %d, recovery max %v (%v)",
		c.doubleGrants.Load(), c.nonMonotonic.Load(), c.staleRejected.Load(), c.refused.Load(), c.ackedLost.Load(),
		maxR.Round(time.Millisecond), roundAll(c.recoveries))
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(10 * time.Millisecond)
	}
	return out
}

// histories keeps one LockHistory per resource (lock key): the checker
// compares the tenures of one lock only.
type histories struct {
	mu sync.Mutex // protects m
	m  map[string]*historytest.LockHistory
}

func (h *histories) record(resource string, g historytest.Grant) {
	h.mu.Lock()
	if h.m == nil {
		h.m = map[string]*historytest.LockHistory{}
	}
	lh := h.m[resource]
	if lh == nil {
		lh = &historytest.LockHistory{}
		h.m[resource] = lh
	}
	h.mu.Unlock()
	lh.Record(g)
}

// historyReport sums the per-resource reports.
type historyReport struct {
	resources, grants, accepted                          int
	overlaps, nonMonotonic, duplicates, invalid, doubles int
	errs                                                 []error
}

func (h *histories) check() historyReport {
	h.mu.Lock()
	defer h.mu.Unlock()
	var r historyReport
	for res, lh := range h.m {
		rep := lh.Check()
		r.resources++
		r.grants += rep.Grants
		r.accepted += rep.Accepted
		r.overlaps += len(rep.Overlaps)
		r.nonMonotonic += len(rep.NonMonotonic)
		r.duplicates += len(rep.DuplicateTokens)
		r.invalid += len(rep.Invalid)
		r.doubles += len(rep.GrantOverlaps)
		if err := rep.Err(); err != nil {
			r.errs = append(r.errs, fmt.Errorf("%s: %w", res, err))
		}
	}
	return r
}

func (r historyReport) Err() error { return errors.Join(r.errs...) }

func (r historyReport) String() string {
	return fmt.Sprintf("%d tenures on %d resources, %d accepted; accepted overlaps %d, non-monotonic %d, duplicate tokens %d, invalid %d, overlapping grants %d",
		r.grants, r.resources, r.accepted, r.overlaps, r.nonMonotonic, r.duplicates, r.invalid, r.doubles)
}

// writer makes fenced writes on behalf of holders and records each write
// as a tenure of the resource (accepted or rejected by the fence). Writes
// are made one at a time, as by a single-threaded resource: two concurrent
// writes would have overlapping intervals although the store ordered them,
// which the checker would report as an overlap.
type writer struct {
	f  *lock.Fence
	h  *histories
	mu *sync.Mutex
}

func newWriter(t *testing.T) writer {
	return writer{f: resourceFence(t), h: &histories{}, mu: &sync.Mutex{}}
}

// write stores value for resource with token; it returns the fence's error.
func (w writer) write(ctx context.Context, holder, resource string, token uint64, value string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	start := time.Now()
	err := w.f.Set(ctx, resource, token, value)
	w.h.record(resource, historytest.Grant{Token: token, Holder: holder, Start: start, End: time.Now(), Accepted: err == nil})
	return err
}

// believesHeld reports whether the holder of l still thinks it holds the
// lock at instant at: its Lost channel is open and its local deadline is
// after at.
func believesHeld(l *lock.Lock, at time.Time) bool {
	select {
	case <-l.Lost():
		return false
	default:
	}
	return l.Deadline().After(at)
}

// prober acquires and releases a fresh lock every 20ms until stopped, to
// measure how long a fault leaves the deployment unusable.
type prober struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex // protects events
	events []probe
}

type probe struct {
	start, end time.Time
	ok         bool
}

func startProber(t *testing.T, l lock.Locker) *prober {
	return startKeyProber(t, l, func(n int) string { return "probe-" + strconv.Itoa(n) })
}

// startKeyProber probes the keys key(0), key(1), ... until stop, or the
// end of the test.
func startKeyProber(t *testing.T, l lock.Locker, key func(n int) string) *prober {
	ctx, cancel := context.WithCancel(context.Background())
	p := &prober{cancel: cancel, done: make(chan struct{})}
	t.Cleanup(func() {
		cancel()
		<-p.done
	})
	go func() {
		defer close(p.done)
		for n := 0; ctx.Err() == nil; n++ {
			start := time.Now()
			octx, ocancel := context.WithTimeout(ctx, time.Second)
			lk, err := l.TryAcquire(octx, key(n), time.Second)
			if err == nil {
				err = lk.Release(octx)
			}
			ocancel()
			if ctx.Err() != nil {
				return
			}
			p.mu.Lock()
			p.events = append(p.events, probe{start, time.Now(), err == nil})
			p.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return p
}

// stop waits (at most 30s) until a probe succeeded after the first
// failure since `from` (the fault), ends the probes, and returns the
// recovery time: from `from` to the end of that probe. When no probe
// failed, it returns the longest probe (the fault only slowed them down),
// and an error when none succeeded after the failure.
func (p *prober) stop(from time.Time) (time.Duration, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, failed := p.recovery(from)
		if !failed || d > 0 || time.Now().After(deadline) {
			p.cancel()
			<-p.done
			if d == 0 && failed {
				return 0, errors.New("no successful probe after the first failure")
			}
			return d, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *prober) recovery(from time.Time) (d time.Duration, failed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var first *probe
	var slowest time.Duration // without a failure: the longest probe
	for i := range p.events {
		e := &p.events[i]
		if e.start.Before(from) {
			continue
		}
		if !e.ok && first == nil {
			first = e
		}
		if e.ok {
			slowest = max(slowest, e.end.Sub(e.start))
		}
		if e.ok && first != nil && e.start.After(first.start) {
			return e.end.Sub(from), true
		}
	}
	if first != nil {
		return 0, true
	}
	return slowest, false
}

// retryNet retries op while it fails with something other than a lock
// verdict (a network error while the clients follow the failover), for at
// most d.
func retryNet(ctx context.Context, d time.Duration, op func(ctx context.Context) error) error {
	deadline := time.Now().Add(d)
	for {
		octx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := op(octx)
		cancel()
		if err == nil || errors.Is(err, lock.ErrNotAcquired) || errors.Is(err, lock.ErrLockLost) ||
			errors.Is(err, lock.ErrStaleToken) || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
