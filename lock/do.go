package lock

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// Stats are a Locker's counters since it was created.
type Stats struct {
	// Acquired counts locks obtained by Acquire, TryAcquire and Do.
	Acquired uint64
	// HandedOff counts locks this Locker's waiters received directly from a
	// release, without another round trip (included in Acquired).
	HandedOff uint64
	// LocalHandedOff counts locks passed from one goroutine to another of
	// the same RedisLocker without any round trip (WithLocalHandoff;
	// included in Acquired).
	LocalHandedOff uint64
	// NotAcquired counts attempts that ended with ErrNotAcquired.
	NotAcquired uint64
	// Released counts successful releases.
	Released uint64
	// Refreshed counts successful refreshes.
	Refreshed uint64
	// Lost counts locks lost before they were released.
	Lost uint64
	// Errors counts Redis errors that a degrade path absorbed because Redis
	// was unavailable (a network error or timeout, LOADING, READONLY after a
	// failover, …): a waiter's wake-up read that fell back to polling, an
	// auto-refresh that was retried, a clean-up that failed (the state it
	// would have removed expires), a Redlock node that did not answer while
	// a majority did.
	Errors uint64
	// Invalid counts Redis calls whose answer meant that the lock's script,
	// the key's data or the reply was wrong (a script error, WRONGTYPE, a
	// reply of the wrong shape): never retried nor absorbed, returned to the
	// caller or, for an auto-refresh, closing Lost (see Lock.Err). A failed
	// call and the clean-up after it may count twice. A non-zero count is a
	// bug to look at.
	Invalid uint64
}

type stats struct {
	acquired, handedOff, localHandoffs, notAcquired, releases, refreshes, lost atomic.Uint64
	errors, invalid                                                            atomic.Uint64
}

func (s *stats) snapshot() Stats {
	return Stats{
		Acquired:       s.acquired.Load(),
		HandedOff:      s.handedOff.Load(),
		LocalHandedOff: s.localHandoffs.Load(),
		NotAcquired:    s.notAcquired.Load(),
		Released:       s.releases.Load(),
		Refreshed:      s.refreshes.Load(),
		Lost:           s.lost.Load(),
		Errors:         s.errors.Load(),
		Invalid:        s.invalid.Load(),
	}
}

// releaseTimeout bounds the release Do performs after fn returns, with a
// context detached from the (possibly done) parent.
const releaseTimeout = 5 * time.Second

// do is Do for every backend.
func do(ctx context.Context, acquire func(context.Context, string, time.Duration) (*Lock, error),
	o *options, key string, ttl time.Duration, fn func(context.Context, uint64) error) (err error) {
	if fn == nil {
		return errors.New("lock: fn must not be nil")
	}
	start := time.Now()
	lk, err := acquire(ctx, key, ttl)
	if err != nil {
		return err
	}
	if !lk.autoRefreshing() {
		lk.autoRefresh(ttl, o.maxHold, start, o.logf())
	}
	fctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchDone := make(chan struct{})
	watchExited := make(chan struct{})
	go func() {
		defer close(watchExited)
		select {
		case <-lk.Lost():
			cancel(lk.Err())
		case <-watchDone:
		}
	}()

	fnErr := runFn(fctx, fn, lk.Token())

	close(watchDone)
	<-watchExited
	lost := false
	select {
	case <-lk.Lost():
		lost = true
	default:
	}
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer rcancel()
	cause := lk.Err() // why it was lost, before Release makes it ErrReleased
	relErr := lk.Release(rctx)
	if errors.Is(relErr, ErrLockLost) {
		if !lost {
			cause = relErr
		}
		lost = true
		relErr = nil
	}
	var lostErr error
	if lost {
		lostErr = fmt.Errorf("lock: lost while fn ran (key %q): %w", key, cause)
	}
	return errors.Join(fnErr, lostErr, relErr)
}

// runFn calls fn, turning a panic into an error.
func runFn(ctx context.Context, fn func(context.Context, uint64) error, token uint64) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("lock: fn panicked: %v\n%s", r, debug.Stack())
		}
	}()
	return fn(ctx, token)
}

// autoRefreshing reports whether an auto-refresh goroutine runs.
func (l *Lock) autoRefreshing() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stopAuto != nil
}
