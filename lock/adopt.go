package lock

import (
	"context"
	"fmt"
	"time"

	"github.com/outrigger-dev/outrigger/internal/lockadopt"
)

// The lock package's side of internal/lockadopt: leases that another
// package of this module takes in its own script, as acquire.lua does for
// TryAcquire, become Locks of the RedisLocker.
func init() {
	lockadopt.Keys = func(locker any, key string) (string, string, bool) {
		r, ok := locker.(*RedisLocker)
		if !ok || r.o.waitN > 0 || checkKey(key) != nil {
			return "", "", false
		}
		keys := r.keys(key)
		return keys[0], keys[1], true
	}
	lockadopt.Owner = newOwner
	lockadopt.Adopt = func(locker any, g lockadopt.Grant) any {
		r := locker.(*RedisLocker)
		l := r.held(g.Key, r.keys(g.Key), g.Owner, g.Token, g.TTL, g.Sent, false)
		r.o.observeAcquire(g.Key, g.Sent, l, nil)
		return l
	}
	lockadopt.Refused = func(locker any, key string, sent time.Time) {
		r := locker.(*RedisLocker)
		r.st.notAcquired.Add(1)
		r.o.observeAcquire(key, sent, nil, fmt.Errorf("%w: %q is held by another owner", ErrNotAcquired, key))
	}
	lockadopt.ReleaseWith = func(ctx context.Context, lock any, f func(*lockadopt.ReleaseKeys) (bool, error)) error {
		l := lock.(*Lock)
		r, ok := l.b.(*RedisLocker)
		if !ok || l.local != nil || len(l.rkeys) < 5 {
			_, _ = f(nil)
			return l.Release(ctx)
		}
		called := false
		err := l.releaseVia(ctx, func() error {
			called = true
			keys := &lockadopt.ReleaseKeys{Lock: l.rkeys[0], Queue: l.rkeys[2], Tombstone: l.rkeys[4] + l.owner + ":rel", Owner: l.owner}
			if released, err := f(keys); err == nil && released {
				return nil
			}
			return r.release(ctx, l)
		})
		if !called {
			_, _ = f(nil)
		}
		return err
	}
	lockadopt.OnLost = func(lock any, f func(error)) {
		l := lock.(*Lock)
		l.Lost() // starts the deadline timer
		l.mu.Lock()
		defer l.mu.Unlock()
		l.checkDeadlineLocked()
		switch {
		case l.released:
		case l.isLost:
			f(l.cause)
		case l.x == nil:
			l.x = &lockExtra{onLost: f}
		default:
			l.x.onLost = f
		}
	}
	lockadopt.Undo = func(ctx context.Context, locker any, key, owner string) {
		r := locker.(*RedisLocker)
		r.undo(ctx, r.keys(key), owner)
	}
}
