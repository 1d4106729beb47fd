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
}

type stats struct {
	acquired, handedOff, localHandoffs, notAcquired, releases, refreshes, lost atomic.Uint64
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
			cancel(ErrLockLost)
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
	relErr := lk.Release(rctx)
	if errors.Is(relErr, ErrLockLost) {
		lost = true
		relErr = nil
	}
	var lostErr error
	if lost {
		lostErr = fmt.Errorf("%w while fn ran (key %q)", ErrLockLost, key)
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
