package scheduler

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"github.com/outrigger-dev/outrigger/internal/lockadopt"
	"github.com/outrigger-dev/outrigger/lock"
)

// Trigger runs job name now, once across all replicas, and returns its
// result: the job's error, ErrOverlap when Overlap is Skip and a run of the
// job is in progress, or ctx.Err() when ctx ends first (the run goes on).
//
// Triggers coalesce: a Trigger of the job on any replica while a triggered
// run is in progress, or within a second of its start, is the same run; the
// replica that claimed it runs it and the others return nil at once. Run.Tick
// is the time Trigger was called (scheduler clock) and Run.Kind KindTrigger.
// Trigger works before Start too, but not after Stop.
func (s *Scheduler) Trigger(ctx context.Context, name string) error {
	s.mu.Lock()
	if s.state == stateStopped {
		s.mu.Unlock()
		return ErrStopped
	}
	j, ok := s.jobs[name]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("%w %q", ErrUnknownJob, name)
	}
	res := make(chan error, 1)
	s.runs.Add(1)
	tick := s.cfg.now()
	s.spawn(func() { s.run(j, tick, triggerID, KindTrigger, false, 0, res) })
	s.mu.Unlock()
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// startRunOnStartLocked claims a start run keyed by the job's next tick, so
// replicas started between the same two ticks run it once. Caller holds
// s.mu.
func (s *Scheduler) startRunOnStartLocked(j *job, now time.Time) {
	key := now.Truncate(time.Second)
	if !j.next.IsZero() {
		key = j.next
	}
	// Remember the start run until the next tick, so replicas starting
	// later in the same period do not run it again.
	keep := max(key.Sub(now)+time.Second, 6*grace)
	s.runs.Add(1)
	s.spawn(func() { s.run(j, now, "start:"+tickID(key), KindStart, false, keep, nil) })
}

// launchLocked starts a run of j in a worker (spawn). Caller holds s.mu.
func (s *Scheduler) launchLocked(j *job, tick time.Time, id string, kind Kind, pending bool) {
	s.runs.Add(1)
	s.spawn(func() { s.run(j, tick, id, kind, pending, 0, nil) })
}

func newNonce() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// doneTTL is how long a completed claim is remembered: several periods, and
// longer than the catch-up window and the dispatch allowance, so that no
// replica can claim the same tick again.
func (j *job) doneTTL(tick time.Time) time.Duration {
	period := time.Hour
	if n, ok := j.sched.next(tick); ok {
		period = n.Sub(tick)
	}
	return max(3*period, j.cfg.catchUp+2*period, 6*grace)
}

// bg returns a context for bookkeeping that must happen even when the run's
// context was cancelled.
func (s *Scheduler) bg() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), max(s.cfg.leaseTTL, 5*time.Second))
}

// run claims and runs one tick (or trigger, start, catch-up) of j. keep, if
// not 0, is how long the completed claim is remembered; res, if not nil,
// receives the run's result.
func (s *Scheduler) run(j *job, tick time.Time, id string, kind Kind, pending bool, keep time.Duration, res chan<- error) {
	defer s.runs.Done()
	result := func(err error) {
		if res != nil {
			res <- err
		}
	}
	owner := s.cfg.nodeID + ":" + newNonce()
	ttl := s.cfg.leaseTTL
	doneTTL := j.doneTTL(tick)
	if keep > 0 {
		doneTTL = keep
	}
	claimed := time.Now()
	ask := s.leaseAsk(j, kind)
	cr, err := s.claim(j, claimArgs{
		job: j.name, id: id, owner: owner, ttl: ttl,
		pending: pending, tick: tick, pendingTTL: doneTTL, fence: j.cfg.overlap == Allow,
		oldest: s.cfg.now().Add(-j.cfg.catchUp), lease: ask,
	}, kind)
	ok, token, abandoned := cr.ok, cr.token, cr.abandoned
	if err != nil {
		if ask != nil {
			// The claim (and the lease) may have been taken with the reply
			// lost: give the lease back, or it would block the job's next
			// ticks until it expires. The claim expires on its own.
			s.undoLease(j, ask)
		}
		if s.stopCtx.Err() != nil {
			result(ErrStopped)
			return
		}
		s.missed(j.name, tick)
		if isInvalid(err) {
			s.invalid("claim", j.name, err)
		} else {
			s.st.errors.Add(1)
			s.cfg.logger.Error("scheduler: claim failed", "job", j.name, "tick", tick, "err", err)
		}
		result(fmt.Errorf("scheduler: claim %q at %v: %w", j.name, tick, err))
		return
	}
	if h := s.cfg.hooks.OnClaim; h != nil {
		h(j.name, tick, kind, ok)
	}
	if !ok {
		s.st.lost.Add(1)
		result(nil)
		return
	}
	s.st.claimed.Add(1)
	if kind == KindCatchUp {
		s.st.catchUps.Add(1)
	}
	if len(abandoned) > 0 {
		// Runs of earlier ticks whose replicas died: catch them up now
		// rather than at the next scan.
		s.mu.Lock()
		if s.state != stateStopped {
			for _, p := range abandoned {
				s.launchLocked(j, p.tick, p.id, KindCatchUp, true)
			}
		}
		s.mu.Unlock()
	}

	// runCtx is the parent of the job's contexts: cancelled (cause
	// ErrLeaseLost) when the claim or the lease is lost, and when Stop
	// gives up waiting.
	runCtx, cancelRun := context.WithCancelCause(s.runCtx)
	defer cancelRun(nil)

	// Keep the claim alive while we wait for the lease and run.
	live := newLiveness(s, j.name, id, owner, cancelRun)
	defer live.stop()

	var lk *lock.Lock
	rec := RunRecord{Job: j.name, Tick: tick, Node: s.cfg.nodeID, Kind: kind, Token: token}
	// finish records the run and releases the lease. It returns the error
	// of a record Redis refused as invalid (not retried), for the caller.
	finish := func(runErr error) (recErr error) {
		rec.End = s.cfg.now()
		if runErr != nil {
			rec.Error = runErr.Error()
		}
		live.stop()
		cancelRun(nil) // the run is over: releasing the lease below is no loss
		if kind == KindTrigger {
			// Coalesce triggers until a second after the run began.
			doneTTL = max(time.Second-time.Since(claimed), time.Millisecond)
		}
		b := rec.appendJSON(make([]byte, 0, 256))
		ctx, cancel := s.bg()
		defer cancel()
		attempt := func(rel *lockadopt.ReleaseKeys) (bool, error) {
			return s.b.complete(ctx, completeArgs{
				job: j.name, id: id, owner: owner, doneTTL: doneTTL, rec: b, keep: s.cfg.history, lease: rel,
			})
		}
		var released chan struct{}
		var first error // of the first attempt, when made with the release
		tried := false
		switch {
		case lk != nil && j.leaseKeys != nil:
			// One round trip: the first attempt releases the lease too
			// (unless someone waits for it, or it failed: then the lock
			// package releases it, before the retries).
			_ = lockadopt.ReleaseWith(ctx, lk, func(rel *lockadopt.ReleaseKeys) (bool, error) {
				ok, err := attempt(rel)
				first, tried = err, true
				return ok, err
			})
		case lk != nil: // release the lease while the run is recorded
			released = make(chan struct{})
			go func() {
				defer close(released)
				_ = lk.Release(ctx)
			}()
		}
		// Retry briefly while Redis is unavailable: an unrecorded tick
		// would be caught up (run again) once its claim expires.
		for i := 0; ; i++ {
			err := first
			if i > 0 || !tried {
				_, err = attempt(nil)
			}
			if err == nil {
				break
			}
			if isInvalid(err) {
				s.invalid("complete", j.name, err)
				recErr = fmt.Errorf("scheduler: recording the run of %q at %v: %w", j.name, tick, err)
				break
			}
			if i == 3 || ctx.Err() != nil {
				s.st.errors.Add(1)
				s.cfg.logger.Error("scheduler: recording run failed", "job", j.name, "tick", tick, "err", err)
				break
			}
			time.Sleep(time.Duration(100<<i) * time.Millisecond)
		}
		if released != nil {
			<-released
		}
		return recErr
	}

	if ask != nil && cr.lease != leaseRefused {
		lk, err = s.adoptLease(j, ask, cr)
	} else {
		lk, err = s.leaseRetry(j, tick, kind)
	}
	if err != nil {
		lk = nil
		rec.Start = s.cfg.now()
		if errors.Is(err, lock.ErrNotAcquired) || errors.Is(err, errWaitedTooLong) {
			s.st.skipped.Add(1)
			if h := s.cfg.hooks.OnSkip; h != nil {
				h(j.name, tick)
			}
			rec.Skipped = true
			s.cfg.logger.Info("scheduler: tick skipped, previous run still running", "job", j.name, "tick", tick)
			recErr := finish(nil)
			result(errors.Join(fmt.Errorf("%w: job %q", ErrOverlap, j.name), recErr))
			return
		}
		if s.stopCtx.Err() != nil {
			// Stopping before the job started: leave the claim to expire, so
			// that a live replica catches the tick up (with CatchUp).
			result(ErrStopped)
			return
		}
		err = fmt.Errorf("scheduler: lease for %q: %w", j.name, err)
		if isInvalid(err) {
			// Not retried, nor left to be caught up: recorded as failed.
			s.invalid("lease", j.name, err)
			result(errors.Join(err, finish(err)))
			return
		}
		s.st.errors.Add(1)
		s.cfg.logger.Error("scheduler: lease failed", "job", j.name, "tick", tick, "err", err)
		if pending {
			// Leave the claim to expire: the tick is caught up later.
			result(err)
			return
		}
		result(errors.Join(err, finish(err)))
		return
	}
	if lk != nil {
		rec.Token = lk.Token()
		lockadopt.OnLost(lk, func(cause error) {
			if runCtx.Err() != nil {
				return // the run ended, or lost its claim first
			}
			if isInvalid(cause) { // Redis refused the lease's refresh
				s.invalid("lease", j.name, cause)
			}
			cancelRun(leaseLost(cause))
		})
	}

	s.st.runs.Add(1)
	rec.Start = s.cfg.now()
	if h := s.cfg.hooks.OnRunStart; h != nil {
		h(j.name, tick, kind, rec.Start.Sub(tick))
	}
	run := Run{Job: j.name, Tick: tick, Token: rec.Token, Node: s.cfg.nodeID, Kind: kind}
	var runErr error
	for attempt := 1; ; attempt++ {
		run.Attempt = attempt
		rec.Attempt = attempt
		runErr = s.attempt(runCtx, j, run)
		if runErr == nil || attempt > j.cfg.retries || s.stopCtx.Err() != nil || runCtx.Err() != nil {
			break
		}
		s.st.retries.Add(1)
		wait := min(j.cfg.backoff<<(attempt-1), time.Minute)
		if j.cfg.backoff<<(attempt-1) <= 0 && j.cfg.backoff > 0 { // overflow
			wait = time.Minute
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-s.stopCtx.Done():
		case <-runCtx.Done():
		}
		t.Stop()
	}
	if cause := context.Cause(runCtx); isInvalid(cause) {
		// Its claim or lease was lost to an error that means a bug: the run
		// fails with it, whatever the job returned.
		runErr = errors.Join(runErr, cause)
	}
	if runErr != nil {
		s.st.failed.Add(1)
		s.cfg.logger.Warn("scheduler: run failed", "job", j.name, "tick", tick, "attempt", rec.Attempt, "err", runErr)
	} else {
		s.st.succeeded.Add(1)
	}
	if h := s.cfg.hooks.OnRunEnd; h != nil {
		h(j.name, tick, kind, s.cfg.now().Sub(rec.Start), rec.Attempt, runErr)
	}
	result(errors.Join(runErr, finish(runErr)))
}

// claim calls the backend, retrying errors of an unavailable Redis: a few
// times within a second, and for jobs with CatchUp for as long as the tick
// is inside the window (Redis may be restarting or failing over). An
// invalid error (see rediserr) is returned at once.
func (s *Scheduler) claim(j *job, a claimArgs, kind Kind) (claimResult, error) {
	var err error
	wait := 100 * time.Millisecond
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(s.stopCtx, max(s.cfg.leaseTTL/2, time.Second))
		cr, cerr := s.b.claim(ctx, a)
		cancel()
		if err = cerr; err == nil {
			return cr, nil
		}
		if s.stopCtx.Err() != nil || isInvalid(err) { // an invalid reply is not retried
			return claimResult{}, err
		}
		keepTrying := i < 3 ||
			j.cfg.catchUp > 0 && (kind == KindTick || kind == KindCatchUp) && s.cfg.now().Sub(a.tick) < j.cfg.catchUp
		if !keepTrying {
			return claimResult{}, err
		}
		s.cfg.logger.Warn("scheduler: claim failed, retrying", "job", j.name, "tick", a.tick, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-s.stopCtx.Done():
			t.Stop()
			return claimResult{}, err
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// leaseRetry calls lease, retrying errors of an unavailable store (not
// "held by another run", nor an invalid error) a few times over about a
// second and a half.
func (s *Scheduler) leaseRetry(j *job, tick time.Time, kind Kind) (*lock.Lock, error) {
	for i := 0; ; i++ {
		lk, err := s.lease(j, tick, kind)
		if err == nil || errors.Is(err, lock.ErrNotAcquired) || errors.Is(err, errWaitedTooLong) ||
			isInvalid(err) || s.stopCtx.Err() != nil || i == 4 {
			return lk, err
		}
		t := time.NewTimer(time.Duration(100<<i) * time.Millisecond)
		select {
		case <-t.C:
		case <-s.stopCtx.Done():
			t.Stop()
		}
	}
}

// leaseAsk returns what claim needs to take the job's lease in the same
// round trip, or nil when the lease is taken on its own (leaseRetry): for
// the lease a TryAcquire would take (Overlap Skip, outside a catch-up
// wait) when the backend and the locker can share a script (j.leaseKeys).
func (s *Scheduler) leaseAsk(j *job, kind Kind) *leaseAsk {
	if j.leaseKeys == nil || j.cfg.overlap != Skip || kind == KindCatchUp && j.cfg.catchUp > 0 {
		return nil
	}
	return &leaseAsk{owner: lockadopt.Owner(), key: j.leaseKeys[0], fence: j.leaseKeys[1]}
}

// adoptLease turns the lease the claim cr took (or found held) into what
// leaseRetry returns: the held Lock, or an error wrapping
// lock.ErrNotAcquired. Stopping before the job started is ErrStopped, as
// when the lease is taken on its own.
func (s *Scheduler) adoptLease(j *job, ask *leaseAsk, cr claimResult) (*lock.Lock, error) {
	if cr.lease != leaseTaken {
		lockadopt.Refused(s.locker, j.leaseKey, cr.sent)
		return nil, fmt.Errorf("%w: %q is held by another owner", lock.ErrNotAcquired, j.leaseKey)
	}
	lk := lockadopt.Adopt(s.locker, lockadopt.Grant{
		Key: j.leaseKey, Owner: ask.owner, Token: cr.token, TTL: s.cfg.leaseTTL, Sent: cr.sent,
	}).(*lock.Lock)
	if err := s.stopCtx.Err(); err != nil {
		ctx, cancel := s.bg()
		defer cancel()
		_ = lk.Release(ctx)
		return nil, err
	}
	return lk, nil
}

// undoLease gives back the lease ask may have taken with a claim whose
// reply never came.
func (s *Scheduler) undoLease(j *job, ask *leaseAsk) {
	ctx, cancel := s.bg()
	defer cancel()
	lockadopt.Undo(ctx, s.locker, j.leaseKey, ask.owner)
}

// errWaitedTooLong means a Wait (or catch-up) run gave up waiting for the
// lease: the tick is recorded as skipped.
var errWaitedTooLong = errors.New("scheduler: waited too long for the lease")

// lease takes the job's lease according to its Overlap policy: nil for
// Allow. Skip makes one attempt. Wait waits until the job's next tick is
// due (the next tick then takes over waiting), and a catch-up run of a Skip
// job waits until the end of its catch-up window: a caught-up tick must not
// be lost to a run of a later tick.
func (s *Scheduler) lease(j *job, tick time.Time, kind Kind) (*lock.Lock, error) {
	var until time.Time
	switch {
	case j.cfg.overlap == Allow:
		return nil, nil
	case kind == KindCatchUp && j.cfg.catchUp > 0:
		until = tick.Add(j.cfg.catchUp)
	case j.cfg.overlap == Wait:
		if n, ok := j.sched.next(s.cfg.now()); ok {
			until = n.Add(jitterFor(j, n))
		}
	default:
		ctx, cancel := context.WithTimeout(s.stopCtx, max(s.cfg.leaseTTL/2, time.Second))
		defer cancel()
		return s.locker.TryAcquire(ctx, j.leaseKey, s.cfg.leaseTTL)
	}
	ctx, cancel := context.WithCancel(s.stopCtx)
	defer cancel()
	if !until.IsZero() {
		// until is in the scheduler's clock; wait for the difference.
		var c2 context.CancelFunc
		ctx, c2 = context.WithTimeout(ctx, until.Sub(s.cfg.now()))
		defer c2()
	}
	lk, err := s.locker.Acquire(ctx, j.leaseKey, s.cfg.leaseTTL)
	if err != nil && ctx.Err() != nil && s.stopCtx.Err() == nil && !isInvalid(err) {
		return nil, errWaitedTooLong
	}
	return lk, err
}

// attempt runs the job once with its timeout, turning a panic into an
// error.
func (s *Scheduler) attempt(parent context.Context, j *job, run Run) (err error) {
	ctx := parent
	if j.cfg.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(parent, j.cfg.timeout)
		defer cancel()
	}
	defer func() {
		if r := recover(); r != nil {
			s.st.panics.Add(1)
			err = fmt.Errorf("%w: %v\n%s", ErrPanic, r, debug.Stack())
		}
	}()
	return j.fn(ctx, run)
}

// liveness refreshes a claim every ttl/3 until stopped, from a timer
// callback (no goroutine while a run is short). lost is called once, with
// the cause, when the claim is no longer ours, no refresh succeeded for a
// whole ttl (Redis unavailable: refreshes are retried until then), or Redis
// refused a refresh with an invalid error (not retried).
type liveness struct {
	s              *Scheduler
	job, id, owner string
	lost           func(cause error)
	mu             sync.Mutex // protects the fields below
	timer          *time.Timer
	stopped, gone  bool
	lastOK         time.Time
	inflight       sync.WaitGroup
}

func newLiveness(s *Scheduler, job, id, owner string, lost func(cause error)) *liveness {
	l := &liveness{s: s, job: job, id: id, owner: owner, lost: lost, lastOK: time.Now()}
	l.mu.Lock()
	l.timer = time.AfterFunc(s.cfg.leaseTTL/3, l.refresh)
	l.mu.Unlock()
	return l
}

func (l *liveness) refresh() {
	l.mu.Lock()
	if l.stopped || l.gone {
		l.mu.Unlock()
		return
	}
	l.inflight.Add(1)
	l.mu.Unlock()
	defer l.inflight.Done()

	ttl := l.s.cfg.leaseTTL
	ctx, cancel := context.WithTimeout(context.Background(), ttl/3)
	ok, err := l.s.b.refresh(ctx, l.job, l.id, l.owner, ttl)
	cancel()
	l.mu.Lock()
	defer l.mu.Unlock()
	var cause error
	switch {
	case err == nil && ok:
		l.lastOK = time.Now()
	case err == nil && !ok:
		l.s.cfg.logger.Warn("scheduler: claim lost while running", "job", l.job, "id", l.id)
		l.gone = true
	case isInvalid(err):
		l.s.invalid("refresh", l.job, err)
		l.gone = true
		cause = fmt.Errorf("scheduler: refreshing the claim of %q: %w", l.job, err)
	case time.Since(l.lastOK) >= ttl:
		l.s.cfg.logger.Warn("scheduler: claim expired while running", "job", l.job, "id", l.id, "err", err)
		l.gone = true
	}
	if l.gone {
		l.lost(leaseLost(cause))
		return
	}
	if !l.stopped {
		l.timer.Reset(ttl / 3)
	}
}

// stop ends the refreshes and waits for one in flight. Idempotent.
func (l *liveness) stop() {
	l.mu.Lock()
	l.stopped = true
	l.timer.Stop()
	l.mu.Unlock()
	l.inflight.Wait()
}
