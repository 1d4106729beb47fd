// Package lockadopt lets another package of this module take a lease of
// package lock inside one of its own Redis scripts, saving the round trip of
// a separate TryAcquire, and then hand it to package lock, which refreshes,
// watches and releases it like any Lock it granted.
//
// The script must write the lease exactly as lock's acquire.lua does for a
// TryAcquire (ARGV[3] = 0, one token reserved), on the keys Keys returns:
//
//	local t = redis.call('TIME')
//	local now = t[1] * 1000000 + t[2]
//	local tok = tonumber(redis.call('GET', fence) or '0') + 1
//	if now > tok then tok = now end
//	local mine = redis.call('SET', lock, owner, 'NX', 'PX', ttl)
//	if not mine and redis.call('GET', lock) == owner then
//	  redis.call('PEXPIRE', lock, ttl)
//	  mine = true
//	end
//	if mine then redis.call('SET', fence, string.format('%d', tok)) end
//
// Package lock fills the functions in at init (lock/adopt.go); a package
// that imports lock can rely on them being set. The lockers they take are
// *lock.RedisLocker values, passed as any (this package cannot import lock).
package lockadopt

import (
	"context"
	"time"
)

// Grant is a lease a script took on a RedisLocker's key.
type Grant struct {
	Key   string // the lock's key, without the Locker's prefix
	Owner string // the owner value written (from Owner)
	Token uint64 // the fencing token the script issued
	TTL   time.Duration
	Sent  time.Time // when the script was sent: the lease is valid from no earlier
}

// ReleaseKeys are what a script needs to release a lock as the fast path
// of lock's release.lua does (ours, nobody queued):
//
//	if redis.call('GET', lock) == owner and redis.call('EXISTS', queue) == 0 then
//	  redis.call('DEL', lock)
//	  redis.call('SET', tombstone, '1', 'PX', 10000)
//	end
type ReleaseKeys struct {
	Lock, Queue, Tombstone string
	Owner                  string
}

// The lock package's side, set by package lock at init.
var (
	// Keys returns the Redis keys of the lock on key of locker and of its
	// fencing counter. ok is false when locker is not a *lock.RedisLocker
	// whose TryAcquire is a plain acquire.lua call (for instance one that
	// waits for replicas to acknowledge): the caller then uses TryAcquire.
	Keys func(locker any, key string) (lock, fence string, ok bool)
	// Owner returns a new owner value, unique to the acquire.
	Owner func() string
	// Adopt returns the *lock.Lock of g, held (auto-refreshed when the
	// Locker auto-refreshes), and counts the acquire in the Locker's stats.
	Adopt func(locker any, g Grant) any
	// Refused counts a lease the script found held by another owner, as a
	// TryAcquire sent at sent that returned ErrNotAcquired.
	Refused func(locker any, key string, sent time.Time)
	// ReleaseWith releases lock (a *lock.Lock) as its Release would, with
	// f, which is always called once, given the chance to release it in a
	// script of the caller's: f reports whether its script released it
	// (the fast path above); when it did not (or keys is nil: the Lock is
	// not one a script can release) the Lock's own release runs. Its
	// auto-refresh is stopped before f is called. It returns Release's
	// result.
	ReleaseWith func(ctx context.Context, lock any, f func(keys *ReleaseKeys) (released bool, err error)) error
	// OnLost has f called once, with the cause (Err), when lock (a
	// *lock.Lock) is lost, unless it was released: at once when it is lost
	// already. f is called with the Lock's mutex held: it must be quick and
	// must not call the Lock's methods. It saves a goroutine waiting on
	// Lost.
	OnLost func(lock any, f func(cause error))
	// Undo releases the lock on key if owner holds it: the clean-up after
	// a script whose reply never came (as TryAcquire does after an error).
	Undo func(ctx context.Context, locker any, key, owner string)
)
