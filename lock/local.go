package lock

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// LocalLocker is an in-process Locker with the same contract as the Redis
// ones: expiring locks, fencing tokens, Lost, Do. Use it for single-replica
// deployments and tests. It is safe for concurrent use; its zero value is
// not usable, call NewLocal.
//
// Tokens are max(last+1, wall clock in µs), shared by all keys of the
// LocalLocker: strictly increasing per key.
type LocalLocker struct {
	o  options
	st stats

	mu        sync.Mutex // protects the fields below
	locks     map[string]*localEntry
	last      uint64 // last token issued
	sweepSize int    // map size that triggers the next sweep of expired entries
}

type localEntry struct {
	owner   string
	token   uint64
	expires time.Time
	changed chan struct{} // closed when the entry is released or removed
}

// NewLocal returns an in-process Locker. It takes the same options as New
// (WithPrefix, WithWaitReplicas, WithHandoff and WithNodeTimeout have no
// effect). Options that fail validation (see ValidateOptions) are ignored in
// favour of the defaults, so NewLocal never fails.
func NewLocal(opts ...Option) *LocalLocker {
	o, err := buildOptions(opts)
	if err != nil {
		o = defaultOptions()
	}
	return &LocalLocker{o: o, locks: make(map[string]*localEntry), sweepSize: 1024}
}

// ValidateOptions reports whether opts would be accepted by New.
func ValidateOptions(opts ...Option) error {
	_, err := buildOptions(opts)
	return err
}

// Stats returns the Locker's counters.
func (l *LocalLocker) Stats() Stats { return l.st.snapshot() }

// Acquire waits until it holds the lock on key for ttl, ctx is done
// (ctx.Err()) or the WithMaxWait bound passed (ErrNotAcquired). Waiters are
// woken by the release or at the holder's expiry.
func (l *LocalLocker) Acquire(ctx context.Context, key string, ttl time.Duration) (*Lock, error) {
	if l.o.hooks.OnAcquire == nil {
		return l.acquire(ctx, key, ttl, true)
	}
	start := time.Now()
	lk, err := l.acquire(ctx, key, ttl, true)
	l.o.observeAcquire(key, start, lk, err)
	return lk, err
}

// TryAcquire makes one attempt and returns an error wrapping ErrNotAcquired
// when another owner holds the lock.
func (l *LocalLocker) TryAcquire(ctx context.Context, key string, ttl time.Duration) (*Lock, error) {
	if l.o.hooks.OnAcquire == nil {
		return l.acquire(ctx, key, ttl, false)
	}
	start := time.Now()
	lk, err := l.acquire(ctx, key, ttl, false)
	l.o.observeAcquire(key, start, lk, err)
	return lk, err
}

// Do is as RedisLocker.Do.
func (l *LocalLocker) Do(ctx context.Context, key string, ttl time.Duration, fn func(ctx context.Context, token uint64) error) error {
	return do(ctx, l.Acquire, &l.o, key, ttl, fn)
}

func (l *LocalLocker) acquire(ctx context.Context, key string, ttl time.Duration, wait bool) (*Lock, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if err := checkTTL(ttl); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	owner := newOwner()
	var waitUntil time.Time
	if wait && l.o.maxWait > 0 {
		waitUntil = time.Now().Add(l.o.maxWait)
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		now := time.Now()
		l.mu.Lock()
		e := l.locks[key]
		if e == nil || !now.Before(e.expires) {
			if e == nil {
				l.sweepLocked(now)
				e = &localEntry{changed: make(chan struct{})}
				l.locks[key] = e
			}
			l.last = max(l.last+1, uint64(now.UnixMicro()))
			e.owner, e.token, e.expires = owner, l.last, now.Add(ttl)
			token := l.last
			l.mu.Unlock()
			l.st.acquired.Add(1)
			lk := newLock(key, owner, token, ttl, now, l, &l.o, &l.st)
			if l.o.autoRefresh {
				lk.autoRefresh(ttl, l.o.maxHold, now, l.o.logf())
			}
			return lk, nil
		}
		ch, until := e.changed, e.expires
		l.mu.Unlock()
		if !wait {
			l.st.notAcquired.Add(1)
			return nil, fmt.Errorf("%w: %q is held by another owner", ErrNotAcquired, key)
		}
		if !waitUntil.IsZero() {
			if !now.Before(waitUntil) {
				l.st.notAcquired.Add(1)
				return nil, fmt.Errorf("%w: %q still held after waiting %v", ErrNotAcquired, key, l.o.maxWait)
			}
			if waitUntil.Before(until) {
				until = waitUntil
			}
		}
		if timer == nil {
			timer = time.NewTimer(time.Until(until))
		} else {
			timer.Reset(time.Until(until))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ch:
		case <-timer.C:
		}
	}
}

// sweepLocked drops expired entries once the map has grown enough that the
// sweep's cost is amortised. l.mu must be held.
func (l *LocalLocker) sweepLocked(now time.Time) {
	if len(l.locks) < l.sweepSize {
		return
	}
	for k, e := range l.locks {
		if !now.Before(e.expires) {
			delete(l.locks, k)
			close(e.changed)
		}
	}
	l.sweepSize = max(1024, 2*len(l.locks))
}

// entryLocked returns the entry of lk if lk still holds it. l.mu must be
// held.
func (l *LocalLocker) entryLocked(lk *Lock, now time.Time) (*localEntry, bool) {
	e := l.locks[lk.key]
	if e == nil || e.owner != lk.owner {
		return nil, false
	}
	return e, now.Before(e.expires)
}

func (l *LocalLocker) release(_ context.Context, lk *Lock) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entryLocked(lk, time.Now())
	if e != nil { // ours, live or expired: remove it and wake the waiters
		delete(l.locks, lk.key)
		close(e.changed)
	}
	if !ok {
		return fmt.Errorf("%w: %q expired or was taken before release", ErrLockLost, lk.key)
	}
	return nil
}

func (l *LocalLocker) refresh(_ context.Context, lk *Lock, ttl time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	e, ok := l.entryLocked(lk, now)
	if !ok {
		return fmt.Errorf("%w: %q expired or was taken before refresh", ErrLockLost, lk.key)
	}
	e.expires = now.Add(ttl)
	return nil
}

func (l *LocalLocker) pttl(_ context.Context, lk *Lock) (time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	e, ok := l.entryLocked(lk, now)
	if !ok {
		return 0, fmt.Errorf("%w: %q is no longer ours", ErrLockLost, lk.key)
	}
	return e.expires.Sub(now), nil
}
