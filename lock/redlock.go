package lock

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/internal/rediserr"
)

// Redlock is a Locker over N independent Redis nodes (the Redlock
// algorithm): a lock is held when a majority of nodes granted it within its
// validity time, ttl − elapsed − ttl×drift − margin. It keeps working with a
// minority of nodes down and fails fast, with an error wrapping
// ErrNotAcquired and the node errors, when a majority is unreachable. It is
// safe for concurrent use.
//
// Every node runs the same scripts as RedisLocker (keys under WithPrefix).
// Calls to the nodes run in parallel, each bounded by WithNodeTimeout;
// give the clients ContextTimeoutEnabled so that the bound interrupts a hung
// connection. Waiters poll with capped, jittered backoff (there is no
// cross-node hand-off).
//
// The token of a Redlock lock is the largest of the tokens issued by the
// nodes that granted it; see the package documentation for its guarantee.
type Redlock struct {
	nodes  []redis.UniversalClient
	quorum int
	o      options
	st     stats
	f      faults  // counts and reports Redis errors (into st)
	sc     scripts // the scripts it runs
}

// NewRedlock returns a Redlock over clients, which must be independent
// deployments (not replicas of each other). It returns an error when
// clients is empty, one of them is nil, or an option is invalid.
func NewRedlock(clients []redis.UniversalClient, opts ...Option) (*Redlock, error) {
	if len(clients) == 0 {
		return nil, errors.New("lock: clients must not be empty")
	}
	for i, c := range clients {
		if isNil(c) {
			return nil, fmt.Errorf("lock: clients[%d] must not be nil", i)
		}
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	rl := &Redlock{nodes: slices.Clone(clients), quorum: len(clients)/2 + 1, o: o, sc: lockScripts}
	rl.f = faults{st: &rl.st, logger: o.logger}
	return rl, nil
}

// Stats returns the Locker's counters.
func (rl *Redlock) Stats() Stats { return rl.st.snapshot() }

// Acquire waits until a majority grants the lock, ctx is done (ctx.Err())
// or WithMaxWait passed (ErrNotAcquired), polling with backoff. When a
// majority of nodes cannot be reached it returns at once.
func (rl *Redlock) Acquire(ctx context.Context, key string, ttl time.Duration) (*Lock, error) {
	start := rl.o.acquireStart()
	lk, err := rl.acquire(ctx, key, ttl, true)
	rl.o.observeAcquire(key, start, lk, err)
	return lk, err
}

// TryAcquire makes one attempt on all nodes.
func (rl *Redlock) TryAcquire(ctx context.Context, key string, ttl time.Duration) (*Lock, error) {
	start := rl.o.acquireStart()
	lk, err := rl.acquire(ctx, key, ttl, false)
	rl.o.observeAcquire(key, start, lk, err)
	return lk, err
}

// Do is as RedisLocker.Do.
func (rl *Redlock) Do(ctx context.Context, key string, ttl time.Duration, fn func(ctx context.Context, token uint64) error) error {
	return do(ctx, rl.Acquire, &rl.o, key, ttl, fn)
}

func (rl *Redlock) keys(key string) []string { return lockKeys(rl.o.prefix, key) }

// quorumError marks an attempt that failed for lack of reachable nodes.
type quorumError struct {
	key       string
	failed, n int
	err       error
}

func (e *quorumError) Error() string {
	return fmt.Sprintf("lock: %d of %d nodes failed for %q, no majority reachable: %v", e.failed, e.n, e.key, e.err)
}
func (e *quorumError) Unwrap() []error { return []error{ErrNotAcquired, e.err} }

func (rl *Redlock) acquire(ctx context.Context, key string, ttl time.Duration, wait bool) (*Lock, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if err := checkTTL(ttl); err != nil {
		return nil, err
	}
	keys := rl.keys(key)
	var waitUntil time.Time
	if wait && rl.o.maxWait > 0 {
		waitUntil = time.Now().Add(rl.o.maxWait)
	}
	bo := rl.o.newBackoff()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		owner := newOwner()
		start := time.Now()
		token, err := rl.attempt(ctx, key, keys, owner, ttl, start)
		if err == nil {
			rl.st.acquired.Add(1)
			lk := newLock(key, owner, token, ttl, start, rl, &rl.o, &rl.st)
			lk.rkeys = keys
			if rl.o.autoRefresh {
				lk.autoRefresh(ttl, rl.o.maxHold, start, rl.o.logf())
			}
			return lk, nil
		}
		var qe *quorumError
		switch {
		case !errors.Is(err, ErrNotAcquired): // invalid: counted by attempt
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		case !wait || errors.As(err, &qe):
			rl.st.notAcquired.Add(1)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		d := bo.wait()
		if !waitUntil.IsZero() {
			rem := time.Until(waitUntil)
			if rem <= 0 {
				rl.st.notAcquired.Add(1)
				return nil, fmt.Errorf("%w: %q still held after waiting %v", ErrNotAcquired, key, rl.o.maxWait)
			}
			d = min(d, rem)
		}
		if timer == nil {
			timer = time.NewTimer(d)
		} else {
			timer.Reset(d)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
		}
	}
}

// each runs f on every node in parallel, each call bounded by the node
// timeout, and returns the per-node results.
func (rl *Redlock) each(ctx context.Context, f func(ctx context.Context, c redis.UniversalClient) (int64, error)) ([]int64, []error) {
	vals := make([]int64, len(rl.nodes))
	errs := make([]error, len(rl.nodes))
	var wg sync.WaitGroup
	for i, c := range rl.nodes {
		wg.Go(func() {
			nctx, cancel := context.WithTimeout(ctx, rl.o.nodeTimeout)
			defer cancel()
			vals[i], errs[i] = f(nctx, c)
			if errs[i] != nil {
				errs[i] = fmt.Errorf("node %d: %w", i, errs[i])
			}
		})
	}
	wg.Wait()
	return vals, errs
}

// nodeErrors sorts the per-node errors of one call made with ctx: it
// returns how many nodes were unavailable (a node's own timeout counts:
// the node did not answer in time) and the first invalid error, if any.
func nodeErrors(ctx context.Context, errs []error) (failed int, invalid error) {
	for _, err := range errs {
		if err == nil {
			continue
		}
		if rediserr.ClassifyCtx(ctx, err) == rediserr.Invalid {
			if invalid == nil {
				invalid = err
			}
			continue
		}
		failed++
	}
	return failed, invalid
}

// attempt asks every node once; on failure it releases what it got. A node
// that answered with an invalid error fails the attempt (it is not counted
// as a node that is down).
func (rl *Redlock) attempt(ctx context.Context, key string, keys []string, owner string, ttl time.Duration, start time.Time) (uint64, error) {
	ttlMs := strconv.FormatInt(ttl.Milliseconds(), 10)
	toks, errs := rl.each(ctx, func(ctx context.Context, c redis.UniversalClient) (int64, error) {
		v, err := rl.sc.acquire.Run(ctx, c, keys, owner, ttlMs, "0", "0").Slice()
		if err != nil {
			return 0, err
		}
		res, err := parseAcquire(v)
		if err != nil || !res.ok {
			return 0, err
		}
		return int64(res.token), nil
	})
	failed, invalid := nodeErrors(ctx, errs)
	granted := 0
	var token uint64
	for i := range toks {
		if errs[i] == nil && toks[i] > 0 {
			granted++
			token = max(token, uint64(toks[i]))
		}
	}
	validity := ttl - time.Since(start) - time.Duration(float64(ttl)*rl.o.drift) - rl.o.margin
	if granted >= rl.quorum && validity > 0 && invalid == nil {
		if failed > 0 {
			rl.st.errors.Add(1)
		}
		return token, nil
	}
	if granted > 0 || failed > 0 || invalid != nil { // undo partial grants (and grants hidden by a timeout)
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rl.o.nodeTimeout)
		_, uerrs := rl.each(cctx, func(ctx context.Context, c redis.UniversalClient) (int64, error) {
			return 0, rl.sc.release.Run(ctx, c, releaseKeys(keys, owner), owner, token, "0").Err()
		})
		if err := errors.Join(uerrs...); err != nil {
			rl.f.absorb(cctx, "undo", key, "lock: undoing a failed acquire failed", err)
		}
		cancel()
	}
	if invalid != nil {
		return 0, rl.f.fail(ctx, "acquire", key, invalid)
	}
	if failed > len(rl.nodes)-rl.quorum {
		return 0, &quorumError{key: key, failed: failed, n: len(rl.nodes), err: errors.Join(errs...)}
	}
	if granted >= rl.quorum {
		return 0, fmt.Errorf("%w: %q: quorum reached after its validity time (%v elapsed of %v)", ErrNotAcquired, key, time.Since(start), ttl)
	}
	return 0, fmt.Errorf("%w: %q is held by another owner (%d of %d nodes granted, %d needed)", ErrNotAcquired, key, granted, len(rl.nodes), rl.quorum)
}

// tally turns per-node replies (1 = ours) into a result: nil when a
// majority confirmed, a transient error when node errors leave it open,
// ErrLockLost otherwise. A node's invalid error (see rediserr) is returned
// whatever the others answered: it means a bug or bad data, not a node
// that is down.
func (rl *Redlock) tally(ctx context.Context, l *Lock, op string, vals []int64, errs []error) error {
	failed, invalid := nodeErrors(ctx, errs)
	if invalid != nil {
		return rl.f.fail(ctx, op, l.key, invalid)
	}
	ok := 0
	for i := range vals {
		if errs[i] == nil {
			switch vals[i] {
			case 1:
				ok++
			case 0:
			default:
				return rl.f.fail(ctx, op, l.key, rediserr.BadReply("%s reply %d, want 0 or 1", op, vals[i]))
			}
		}
	}
	switch {
	case ok >= rl.quorum:
		if failed > 0 {
			rl.st.errors.Add(1)
		}
		return nil
	case ok+failed >= rl.quorum:
		return fmt.Errorf("lock: %s of %q: %d of %d nodes confirmed, %d failed: %w", op, l.key, ok, len(rl.nodes), failed, errors.Join(errs...))
	default:
		return fmt.Errorf("%w: %q: only %d of %d nodes still had it at %s", ErrLockLost, l.key, ok, len(rl.nodes), op)
	}
}

func (rl *Redlock) release(ctx context.Context, l *Lock) error {
	keys := releaseKeys(l.rkeys, l.owner)
	vals, errs := rl.each(ctx, func(ctx context.Context, c redis.UniversalClient) (int64, error) {
		return rl.sc.release.Run(ctx, c, keys, l.owner, l.token, "0").Int64()
	})
	return rl.tally(ctx, l, "release", vals, errs)
}

func (rl *Redlock) refresh(ctx context.Context, l *Lock, ttl time.Duration) error {
	vals, errs := rl.each(ctx, func(ctx context.Context, c redis.UniversalClient) (int64, error) {
		return rl.sc.refresh.Run(ctx, c, l.rkeys, l.owner, l.token, ttl.Milliseconds()).Int64()
	})
	return rl.tally(ctx, l, "refresh", vals, errs)
}

func (rl *Redlock) pttl(ctx context.Context, l *Lock) (time.Duration, error) {
	vals, errs := rl.each(ctx, func(ctx context.Context, c redis.UniversalClient) (int64, error) {
		return rl.sc.pttl.Run(ctx, c, l.rkeys, l.owner).Int64()
	})
	failed, invalid := nodeErrors(ctx, errs)
	if invalid != nil {
		return 0, rl.f.fail(ctx, "ttl", l.key, invalid)
	}
	var live []int64
	for i, v := range vals {
		if errs[i] == nil && v >= 0 {
			live = append(live, v)
		}
	}
	if len(live) < rl.quorum {
		if len(live)+failed >= rl.quorum {
			return 0, fmt.Errorf("lock: ttl of %q: %w", l.key, errors.Join(errs...))
		}
		return 0, fmt.Errorf("%w: %q: only %d of %d nodes still have it", ErrLockLost, l.key, len(live), len(rl.nodes))
	}
	if failed > 0 {
		rl.st.errors.Add(1)
	}
	slices.Sort(live)
	slices.Reverse(live)
	// A majority holds it for at least the quorum-th longest remaining time.
	return time.Duration(live[rl.quorum-1]) * time.Millisecond, nil
}
