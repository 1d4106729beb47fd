package lock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// DefaultLocalHandoff is how many consecutive in-process hand-offs a
// RedisLocker makes before a lock goes back through Redis (WithLocalHandoff).
const DefaultLocalHandoff = 4

// localKeys is a RedisLocker's in-process state of the keys its goroutines
// wait for or hold through Acquire. Of the goroutines acquiring one key,
// one at a time (the representative) waits in Redis's queue or holds the
// lock; the others wait here, in FIFO order. A release by the holder passes
// the lock to the first of them without a round trip, as long as:
//
//   - fewer than WithLocalHandoff hand-offs were made in a row;
//   - the lock still has at least localMinValid of its ttl left (its
//     expiry in Redis is what the successor inherits);
//   - the successor asked for the same ttl;
//   - a reserved fencing token is left (the acquire reserved one per
//     possible hand-off, so the successor's token is still strictly greater
//     than every token issued before, and smaller than every token issued
//     after, by any process).
//
// Otherwise the release goes to Redis: it grants the lock to the
// longest-waiting waiter of another process if there is one (so a busy
// process cannot starve the others), or keeps it, with a fresh expiry and
// new tokens, for the next goroutine here. When no goroutine here waits
// any more, the release deletes the lock as usual.
type localKeys struct {
	mu sync.Mutex
	m  map[string]*localKey
}

// localMinValid is the share of a fresh acquire's validity that a lock must
// have left to be handed on in-process.
const localMinValid = 0.9

type localKey struct {
	busy    bool           // a representative waits in Redis or holds the lock
	holder  *Lock          // the holder, once the representative got it
	waiters []*localWaiter // FIFO
	ttl     time.Duration  // the ttl the holder's expiry in Redis was set with
	next    uint64         // next reserved token
	last    uint64         // last reserved token
	streak  int            // in-process hand-offs since the last Redis call
	held    chan struct{}  // closed when a holder is set; made by waiters
}

// setHolder records the representative's lock and wakes waiters that
// wait to watch it. r.local.mu must be held.
func (k *localKey) setHolder(l *Lock) {
	k.holder = l
	if k.held != nil {
		close(k.held)
		k.held = nil
	}
}

// localWaiter is a goroutine waiting in-process. turn receives the lock
// (handed on) or nil (its turn to acquire through Redis).
type localWaiter struct {
	ttl  time.Duration
	turn chan *Lock
}

func (k *localKey) remove(w *localWaiter) bool {
	for i, x := range k.waiters {
		if x == w {
			k.waiters = append(k.waiters[:i], k.waiters[i+1:]...)
			return true
		}
	}
	return false
}

func (k *localKey) popWaiter() *localWaiter {
	w := k.waiters[0]
	k.waiters[0] = nil
	k.waiters = k.waiters[1:]
	return w
}

// reserve is the number of tokens an acquire reserves: its own and one per
// possible in-process hand-off.
func (r *RedisLocker) reserve() int { return r.o.localHandoff + 1 }

// localEnabled reports whether Acquire queues in-process (see localKeys).
func (r *RedisLocker) localEnabled() bool {
	return r.o.localHandoff > 0 && r.o.handoff && r.o.waitN == 0
}

// acquireLocal is Acquire with in-process queueing.
func (r *RedisLocker) acquireLocal(ctx context.Context, key string, ttl time.Duration, waitUntil time.Time) (*Lock, error) {
	lq := &r.local
	lq.mu.Lock()
	k := lq.m[key]
	if k == nil {
		k = &localKey{}
		if lq.m == nil {
			lq.m = make(map[string]*localKey)
		}
		lq.m[key] = k
	}
	if k.busy {
		w := &localWaiter{ttl: ttl, turn: make(chan *Lock, 1)}
		k.waiters = append(k.waiters, w)
		lq.mu.Unlock()
		l, err := r.waitLocal(ctx, key, k, w, waitUntil)
		if l != nil || err != nil {
			return l, err
		}
		// Our turn to go to Redis.
	} else {
		k.busy = true
		lq.mu.Unlock()
	}
	l, err := r.acquire(ctx, key, ttl, true, waitUntil, r.reserve())
	if err != nil {
		r.passTurn(key, k)
		return nil, err
	}
	lq.mu.Lock()
	k.ttl, k.streak = ttl, 0
	k.next, k.last = l.token+1, l.token+uint64(r.reserve())-1
	l.local = k
	k.setHolder(l)
	lq.mu.Unlock()
	return l, nil
}

// waitLocal waits in-process for w's turn. It returns the lock when it was
// handed on, (nil, nil) when it is w's turn to acquire through Redis, and
// an error when ctx or the maximum wait ended first.
func (r *RedisLocker) waitLocal(ctx context.Context, key string, k *localKey, w *localWaiter, waitUntil time.Time) (*Lock, error) {
	var maxWait <-chan time.Time
	if !waitUntil.IsZero() {
		t := time.NewTimer(time.Until(waitUntil))
		defer t.Stop()
		maxWait = t.C
	}
	lq := &r.local
	for {
		// Watch the holder: if it is lost without a release (it expired,
		// was taken or was abandoned), the next waiter must go to Redis.
		lq.mu.Lock()
		h := k.holder
		var held chan struct{}
		if h == nil {
			if k.held == nil {
				k.held = make(chan struct{})
			}
			held = k.held
		}
		lq.mu.Unlock()
		var lost <-chan struct{}
		if h != nil {
			lost = h.Lost()
		}
		var err error
		select {
		case l := <-w.turn:
			return l, nil
		case <-held:
			continue
		case <-lost:
			r.holderLost(key, k, h)
			continue
		case <-maxWait:
			r.st.notAcquired.Add(1)
			err = fmt.Errorf("%w: %q still held after waiting %v", ErrNotAcquired, key, r.o.maxWait)
		case <-ctx.Done():
			err = ctx.Err()
		}
		lq.mu.Lock()
		gone := k.remove(w)
		lq.mu.Unlock()
		if !gone { // a turn raced the end of the wait: pass it on
			if l := <-w.turn; l != nil {
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
				_ = l.Release(rctx)
				cancel()
			} else {
				r.passTurn(key, k)
			}
		}
		return nil, err
	}
}

// holderLost runs when a waiter sees holder h lost: unless h was released
// (and the lock passed on) meanwhile, the first waiter goes to Redis.
func (r *RedisLocker) holderLost(key string, k *localKey, h *Lock) {
	lq := &r.local
	lq.mu.Lock()
	defer lq.mu.Unlock()
	if k.holder != h {
		return
	}
	k.holder = nil
	r.passTurnLocked(key, k)
}

// passTurn ends a representative's turn: the first waiter becomes the
// representative, or the key's state is dropped.
func (r *RedisLocker) passTurn(key string, k *localKey) {
	r.local.mu.Lock()
	defer r.local.mu.Unlock()
	r.passTurnLocked(key, k)
}

func (r *RedisLocker) passTurnLocked(key string, k *localKey) {
	k.holder = nil
	if len(k.waiters) > 0 {
		k.popWaiter().turn <- nil
		return
	}
	k.busy = false
	if r.local.m[key] == k {
		delete(r.local.m, key)
	}
}

// releaseLocal releases l, a lock obtained through acquireLocal.
func (r *RedisLocker) releaseLocal(ctx context.Context, l *Lock) error {
	lq := &r.local
	k := l.local
	lq.mu.Lock()
	if k.holder != l { // lost and already replaced: release in Redis only
		lq.mu.Unlock()
		_, err := r.releaseRedis(ctx, l, 0, 0)
		return err
	}
	if w, dl, ok := r.nextLocal(k, l); ok {
		r.handOn(k, l, w, k.next, dl, true)
		k.next++
		k.streak++
		lq.mu.Unlock()
		return nil
	}
	keep := 0 // tokens to reserve if Redis keeps the lock for a waiter here
	if len(k.waiters) > 0 && k.waiters[0].ttl == k.ttl {
		keep = r.reserve()
	}
	keepTTL := k.ttl
	lq.mu.Unlock()

	start := time.Now()
	kept, err := r.releaseRedis(ctx, l, keep, keepTTL)
	if err != nil && !errors.Is(err, ErrLockLost) {
		return err // still held: Release may be retried
	}
	lq.mu.Lock()
	if k.holder != l {
		// Our lock was seen lost meanwhile and the turn passed on: the new
		// representative waits in Redis. If we kept the lock, give it up.
		lq.mu.Unlock()
		if kept != 0 {
			_, err = r.releaseRedis(ctx, l, 0, 0)
		}
		return err
	}
	if kept != 0 && len(k.waiters) > 0 && k.waiters[0].ttl == keepTTL {
		// Kept for the next waiter here.
		k.ttl, k.streak = keepTTL, 0
		k.next, k.last = kept+1, kept+uint64(r.reserve())-1
		r.handOn(k, l, k.popWaiter(), kept, l.deadlineFrom(start, keepTTL), false)
		lq.mu.Unlock()
		return nil
	}
	if kept != 0 {
		// The waiter left meanwhile (rare): release for real, same owner.
		lq.mu.Unlock()
		_, err = r.releaseRedis(ctx, l, 0, 0)
		if err != nil && !errors.Is(err, ErrLockLost) {
			// Leave it to expire; waiters watch our Lost.
			return err
		}
		lq.mu.Lock()
		if k.holder != l {
			lq.mu.Unlock()
			return err
		}
	}
	r.passTurnLocked(l.key, k)
	lq.mu.Unlock()
	return err
}

// nextLocal returns the waiter l can be handed to without a round trip,
// taken off the queue, and l's deadline, which it inherits.
// r.local.mu must be held.
func (r *RedisLocker) nextLocal(k *localKey, l *Lock) (*localWaiter, time.Time, bool) {
	if len(k.waiters) == 0 || k.streak >= r.o.localHandoff || k.next > k.last {
		return nil, time.Time{}, false
	}
	w := k.waiters[0]
	if w.ttl != k.ttl {
		return nil, time.Time{}, false
	}
	dl, ok := l.validUntil()
	full := time.Duration(float64(k.ttl)*(1-r.o.drift)) - r.o.margin
	if !ok || time.Until(dl) < time.Duration(float64(full)*localMinValid) {
		return nil, time.Time{}, false
	}
	k.popWaiter()
	return w, dl, true
}

// handOn gives the lock held by l (same owner value in Redis) to w with
// the given token and deadline. r.local.mu must be held.
// local says whether it was passed without a round trip (else a release
// in Redis kept it for w).
func (r *RedisLocker) handOn(k *localKey, l *Lock, w *localWaiter, token uint64, deadline time.Time, local bool) {
	nl := &Lock{
		key: l.key, owner: l.owner, token: token, b: r,
		drift: r.o.drift, margin: r.o.margin, st: &r.st,
		rkeys: l.rkeys, local: k, deadline: deadline,
	}
	k.setHolder(nl)
	r.st.acquired.Add(1)
	if local {
		r.st.localHandoffs.Add(1)
	} else {
		r.st.handedOff.Add(1)
	}
	if r.o.autoRefresh {
		nl.autoRefresh(k.ttl, r.o.maxHold, time.Now(), r.o.logf())
	}
	w.turn <- nl
}
