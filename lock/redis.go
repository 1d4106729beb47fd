package lock

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/internal/coalesce"
	"github.com/outrigger-dev/outrigger/internal/rediserr"
)

// RedisLocker is a Locker on one Redis deployment: a single node, a
// Sentinel-managed primary or a Cluster (any redis.UniversalClient). It is
// safe for concurrent use.
//
// Acquire, Release and Refresh are one round trip each. Waiters queue in
// Redis and block on a wake list of their own (one pooled connection per
// blocked waiter: size the client's PoolSize for the waiters you expect);
// by default Release hands the lock directly to the longest-waiting live
// waiter, which then holds it without another round trip (WithHandoff).
type RedisLocker struct {
	c     redis.UniversalClient
	o     options
	st    stats
	f     faults  // counts and reports Redis errors (into st)
	sc    scripts // the scripts it runs
	local localKeys
	calls *coalesce.Group[*coalesce.Script] // shares round trips among concurrent calls
	rtCap time.Duration                     // longest wake wait that stays under the client's ReadTimeout
}

// maxPipeline caps how many concurrent script calls share one pipeline.
const maxPipeline = 128

// run executes script once. Concurrent calls (of any goroutines of this
// Locker) share round trips: while pipelines are in flight, calls queue and
// go out together in the next one (see internal/coalesce). A call still
// queued when ctx ends is not sent.
func (r *RedisLocker) run(ctx context.Context, script *redis.Script, keys []string, args ...any) (any, error) {
	call := &coalesce.Script{Script: script, Keys: keys, Args: args}
	if err := r.calls.Do(ctx, call); err != nil {
		return nil, err
	}
	return call.Val, call.Err
}

// runInt is run for scripts that return an integer.
func (r *RedisLocker) runInt(ctx context.Context, script *redis.Script, keys []string, args ...any) (int64, error) {
	v, err := r.run(ctx, script, keys, args...)
	if err != nil {
		return 0, err
	}
	n, ok := v.(int64)
	if !ok {
		return 0, rediserr.BadReply("script reply %v (%T), want an integer", v, v)
	}
	return n, nil
}

// queueSlack is added to a waiter's queue-entry lifetime beyond its wait
// round, so a live waiter re-registers before its entry lapses. A waiter
// that vanished is skipped by releases after this.
const queueSlack = time.Second

// cleanupTimeout bounds clean-up calls made with a detached context.
const cleanupTimeout = 2 * time.Second

// New returns a Locker on client. It returns an error when client is nil or
// an option is invalid.
func New(client redis.UniversalClient, opts ...Option) (*RedisLocker, error) {
	if isNil(client) {
		return nil, errors.New("lock: client must not be nil")
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	r := &RedisLocker{c: client, o: o, sc: lockScripts}
	r.f = faults{st: &r.st, logger: o.logger}
	r.calls = coalesce.NewScripts(client, max(2, runtime.GOMAXPROCS(0)), maxPipeline)
	if rt := readTimeout(client); rt > 0 {
		r.rtCap = rt / 2
	}
	return r, nil
}

func isNil(c any) bool {
	if c == nil {
		return true
	}
	v := reflect.ValueOf(c)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

func readTimeout(c redis.UniversalClient) time.Duration {
	switch v := c.(type) {
	case *redis.Client:
		return v.Options().ReadTimeout
	case *redis.ClusterClient:
		return v.Options().ReadTimeout
	}
	return 3 * time.Second
}

// Stats returns the Locker's counters.
func (r *RedisLocker) Stats() Stats { return r.st.snapshot() }

// keys returns the keys of a lock; see WithPrefix.
func (r *RedisLocker) keys(key string) []string { return lockKeys(r.o.prefix, key) }

// lockKeys returns the lock, fence, queue and queue-info keys and the
// wake-list prefix of key. They are substrings of one allocation.
func lockKeys(prefix, key string) []string {
	suffixes := [...]string{"", ":fence", ":q", ":qi", ":w:"}
	n := len(prefix) + len(key) + 2
	var sb strings.Builder
	sb.Grow(5*n + len(":fence:q:qi:w:"))
	for _, suf := range suffixes {
		sb.WriteString(prefix)
		sb.WriteByte('{')
		sb.WriteString(key)
		sb.WriteByte('}')
		sb.WriteString(suf)
	}
	all := sb.String()
	keys := make([]string, len(suffixes))
	at := 0
	for i, suf := range suffixes {
		keys[i] = all[at : at+n+len(suf)]
		at += n + len(suf)
	}
	return keys
}

// releaseKeys returns a lock's keys (see lockKeys) followed by owner's
// release tombstone, as release.lua takes them.
func releaseKeys(keys []string, owner string) []string {
	rk := make([]string, len(keys)+1)
	copy(rk, keys)
	rk[len(keys)] = keys[len(keys)-1] + owner + ":rel"
	return rk
}

func (r *RedisLocker) grantArg() string {
	if r.o.handoff && r.o.waitN == 0 {
		return "1"
	}
	return "0"
}

// Acquire waits until it holds the lock on key for ttl. It returns ctx.Err()
// when ctx is done first, and an error wrapping ErrNotAcquired when the
// WithMaxWait bound passed. The waiter is woken (or handed the lock) by the
// release; it polls with capped, jittered backoff only as a fallback.
func (r *RedisLocker) Acquire(ctx context.Context, key string, ttl time.Duration) (*Lock, error) {
	if err := checkArgs(ctx, key, ttl); err != nil {
		return nil, err
	}
	start := time.Now()
	var waitUntil time.Time
	if r.o.maxWait > 0 {
		waitUntil = start.Add(r.o.maxWait)
	}
	var l *Lock
	var err error
	if r.localEnabled() {
		l, err = r.acquireLocal(ctx, key, ttl, waitUntil)
	} else {
		l, err = r.acquire(ctx, key, ttl, true, waitUntil, 1)
	}
	r.o.observeAcquire(key, start, l, err)
	return l, err
}

// TryAcquire makes one attempt (one round trip) and returns an error
// wrapping ErrNotAcquired when another owner holds the lock.
func (r *RedisLocker) TryAcquire(ctx context.Context, key string, ttl time.Duration) (*Lock, error) {
	if err := checkArgs(ctx, key, ttl); err != nil {
		return nil, err
	}
	start := r.o.acquireStart()
	l, err := r.acquire(ctx, key, ttl, false, time.Time{}, 1)
	r.o.observeAcquire(key, start, l, err)
	return l, err
}

func checkArgs(ctx context.Context, key string, ttl time.Duration) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if err := checkTTL(ttl); err != nil {
		return err
	}
	return ctx.Err()
}

// Do acquires the lock (waiting as Acquire does), runs fn with the fencing
// token while refreshing the lock every ttl/3, cancels fn's context (cause
// ErrLockLost) the moment the lock is lost or cannot be confirmed before its
// local deadline, and releases the lock when fn returns, even if ctx is
// done by then. A panic in fn is returned as an error. The result joins fn's
// error, ErrLockLost if the lock was lost while fn ran, and a release error.
func (r *RedisLocker) Do(ctx context.Context, key string, ttl time.Duration, fn func(ctx context.Context, token uint64) error) error {
	return do(ctx, r.Acquire, &r.o, key, ttl, fn)
}

type acqResult struct {
	ok    bool
	token uint64        // when ok
	pttl  time.Duration // of the holder, when !ok
	nowUs int64         // Redis TIME of the attempt
}

// acquire takes the lock through Redis: once, or (wait) until waitUntil
// (zero: no bound) or ctx ends. It reserves reserve tokens (see
// WithLocalHandoff).
func (r *RedisLocker) acquire(ctx context.Context, key string, ttl time.Duration, wait bool, waitUntil time.Time, reserve int) (*Lock, error) {
	keys := r.keys(key)
	owner := newOwner()
	ttlMs := strconv.FormatInt(ttl.Milliseconds(), 10)
	res1 := strconv.Itoa(reserve)
	bo := r.o.newBackoff()
	queued := "0"
	for {
		var round time.Duration
		life := "0"
		if wait {
			round = bo.wait()
			if r.rtCap > 0 {
				round = min(round, r.rtCap)
			}
			if !waitUntil.IsZero() {
				round = max(min(round, time.Until(waitUntil)), time.Millisecond)
			}
			life = strconv.FormatInt((round + queueSlack).Milliseconds(), 10)
		}
		sent := time.Now()
		res, err := r.runAcquire(ctx, key, keys, owner, ttlMs, life, queued, res1)
		if err != nil {
			// The script may have run with its reply lost (go-redis gave up
			// re-sending, or ctx ended), or failed half-way: we may be
			// queued, or even hold the lock. Undo both, so our own failed
			// call does not leave the lock held until its ttl.
			if wait {
				r.cancel(ctx, keys, owner)
			} else {
				r.undo(ctx, keys, owner)
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if errors.Is(err, ErrNotAcquired) { // WithWaitReplicas
				return nil, err
			}
			return nil, r.f.fail(ctx, "acquire", key, err)
		}
		if res.ok {
			return r.held(key, keys, owner, res.token, ttl, sent, false), nil
		}
		if !wait {
			r.st.notAcquired.Add(1)
			return nil, fmt.Errorf("%w: %q is held by another owner", ErrNotAcquired, key)
		}
		queued = "1"
		if !waitUntil.IsZero() && !time.Now().Before(waitUntil) {
			r.cancel(ctx, keys, owner)
			r.st.notAcquired.Add(1)
			return nil, fmt.Errorf("%w: %q still held after waiting %v", ErrNotAcquired, key, r.o.maxWait)
		}
		if res.pttl >= 0 && res.pttl+time.Millisecond < round {
			round = res.pttl + time.Millisecond // retry right when it would expire
		}
		msg, err := r.waitWake(ctx, keys, owner, round)
		if ctx.Err() != nil {
			if !errors.Is(err, ctx.Err()) {
				// The round ended (a wake-up, a grant or the BLPOP timeout)
				// as ctx ended: leave the queue, passing on what we got.
				r.cancel(ctx, keys, owner)
			}
			return nil, ctx.Err()
		}
		if err != nil {
			// Redis unavailable: poll (the next round asks again). A wake
			// list Redis cannot read (WRONGTYPE, a reply of the wrong shape)
			// is a bug or bad data: leave the queue and fail.
			if r.f.absorb(ctx, "wait", key, "lock: waiting for a wake-up failed, polling", err) {
				continue
			}
			r.cancel(ctx, keys, owner)
			return nil, fmt.Errorf("lock: acquire %q: wake-up: %w", key, err)
		}
		switch {
		case strings.HasPrefix(msg, "g|"): // handed to us by a release
			tok, grantUs, ok := parseGrant(msg)
			if !ok {
				// Not what a release pushes: leave the queue (releasing the
				// lock if it was granted to us) and fail.
				r.cancel(ctx, keys, owner)
				return nil, r.f.fail(ctx, "acquire", key, rediserr.BadReply("wake-up message %q, want g|<token>|<µs>", msg))
			}
			// The grant happened (grantUs − res.nowUs) of server time after our
			// registration, which ran after sent: a lower bound of its local time.
			start := sent.Add(time.Duration(float64(grantUs-res.nowUs)*(1-r.o.drift)) * time.Microsecond)
			if now := time.Now(); start.After(now) {
				start = now
			}
			r.st.handedOff.Add(1)
			return r.held(key, keys, owner, tok, ttl, start, true), nil
		case msg == "n": // our turn: try at once
			bo.reset(&r.o)
		case msg == "", msg == "c": // the round's end (or our own cancel's marker)
		default:
			r.cancel(ctx, keys, owner)
			return nil, r.f.fail(ctx, "acquire", key, rediserr.BadReply("wake-up message %q, want g|…, n or c", msg))
		}
	}
}

func parseGrant(msg string) (token uint64, grantUs int64, ok bool) {
	parts := strings.Split(msg, "|")
	if len(parts) != 3 {
		return 0, 0, false
	}
	t, err1 := strconv.ParseUint(parts[1], 10, 64)
	g, err2 := strconv.ParseInt(parts[2], 10, 64)
	return t, g, err1 == nil && err2 == nil
}

func (r *RedisLocker) held(key string, keys []string, owner string, token uint64, ttl time.Duration, start time.Time, _ bool) *Lock {
	r.st.acquired.Add(1)
	l := newLock(key, owner, token, ttl, start, r, &r.o, &r.st)
	l.rkeys = keys
	if r.o.autoRefresh {
		l.autoRefresh(ttl, r.o.maxHold, start, r.o.logf())
	}
	return l
}

func (r *RedisLocker) runAcquire(ctx context.Context, key string, keys []string, owner, ttlMs, life, queued, reserve string) (acqResult, error) {
	if r.o.waitN == 0 {
		v, err := r.run(ctx, r.sc.acquire, keys, owner, ttlMs, life, queued, reserve)
		if err != nil {
			return acqResult{}, err
		}
		s, ok := v.([]any)
		if !ok {
			return acqResult{}, rediserr.BadReply("acquire reply %v (%T), want an array", v, v)
		}
		return parseAcquire(s)
	}
	// WAIT counts the writes of its own connection: pipeline both on the
	// key's primary.
	var node redis.Cmdable = r.c
	if cc, ok := r.c.(*redis.ClusterClient); ok {
		n, err := cc.MasterForKey(ctx, keys[0])
		if err != nil {
			return acqResult{}, err
		}
		node = n
	}
	var ev *redis.Cmd
	var w *redis.Cmd
	run := func(eval bool) error {
		pipe := node.Pipeline()
		if eval {
			ev = r.sc.acquire.Eval(ctx, pipe, keys, owner, ttlMs, life, queued)
		} else {
			ev = r.sc.acquire.EvalSha(ctx, pipe, keys, owner, ttlMs, life, queued)
		}
		w = pipe.Do(ctx, "WAIT", r.o.waitN, r.o.waitTimeout.Milliseconds())
		_, err := pipe.Exec(ctx)
		return err
	}
	err := run(false)
	if err != nil && redis.HasErrorPrefix(ev.Err(), "NOSCRIPT") {
		err = run(true)
	}
	if err != nil {
		return acqResult{}, err
	}
	v, err := ev.Slice()
	if err != nil {
		return acqResult{}, err
	}
	res, err := parseAcquire(v)
	if err != nil || !res.ok {
		return res, err
	}
	acks, err := w.Int64()
	if err != nil {
		return res, rediserr.BadReply("WAIT reply: %v", err) // Exec returned WAIT's own errors
	}
	if acks < int64(r.o.waitN) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		_ = r.sc.release.Run(rctx, r.c, releaseKeys(keys, owner), owner, 0, "0").Err()
		return acqResult{}, fmt.Errorf("%w: %w: %d of %d replicas acknowledged %q within %v",
			ErrNotAcquired, ErrReplicas, acks, r.o.waitN, key, r.o.waitTimeout)
	}
	return res, nil
}

func parseAcquire(v []any) (acqResult, error) {
	if len(v) != 3 {
		return acqResult{}, rediserr.BadReply("acquire reply %v, want {held, token or pttl, now}", v)
	}
	a, ok1 := v[0].(int64)
	b, ok2 := v[1].(int64)
	now, ok3 := v[2].(int64)
	if !ok1 || !ok2 || !ok3 || a != 0 && a != 1 || a == 1 && b <= 0 {
		return acqResult{}, rediserr.BadReply("acquire reply %v, want {0|1, integer, integer}", v)
	}
	if a == 1 {
		return acqResult{ok: true, token: uint64(b), nowUs: now}, nil
	}
	return acqResult{pttl: time.Duration(b) * time.Millisecond, nowUs: now}, nil
}

// waitWake blocks on the waiter's wake list for at most round. When ctx is
// done it runs the cancel script, which leaves the queue, passes on a lock
// granted meanwhile and pushes a marker that ends the blocked BLPOP.
func (r *RedisLocker) waitWake(ctx context.Context, keys []string, owner string, round time.Duration) (string, error) {
	wk := keys[4] + owner
	secs := strconv.FormatFloat(max(round, time.Millisecond).Seconds(), 'f', 3, 64)
	if ctx.Done() == nil {
		return r.blpop(ctx, wk, secs)
	}
	type result struct {
		v   string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := r.blpop(context.WithoutCancel(ctx), wk, secs)
		ch <- result{v, err}
	}()
	select {
	case x := <-ch:
		if ctx.Err() != nil {
			// The caller has gone: leave the queue (passing on a grant or a
			// wake-up we got), or the next release hands the lock to us.
			r.cancel(ctx, keys, owner)
			return "", ctx.Err()
		}
		return x.v, x.err
	case <-ctx.Done():
		r.cancel(ctx, keys, owner)
		<-ch
		return "", ctx.Err()
	}
}

func (r *RedisLocker) blpop(ctx context.Context, key, secs string) (string, error) {
	v, err := r.c.Do(ctx, "BLPOP", key, secs).StringSlice()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if len(v) != 2 {
		return "", rediserr.BadReply("BLPOP reply %v, want {key, value}", v)
	}
	return v[1], nil
}

// cancel removes a waiter that gives up (see cancel.lua), with a context
// detached from ctx so that it runs when ctx is done.
func (r *RedisLocker) cancel(ctx context.Context, keys []string, owner string) {
	cctx, stop := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer stop()
	if err := r.sc.cancel.Run(cctx, r.c, keys, owner, r.grantArg()).Err(); err != nil {
		r.f.absorb(cctx, "cancel", keys[0], "lock: leaving the wait queue failed", err)
	}
}

// undo releases the lock if it holds owner: the clean-up after a
// TryAcquire whose reply never came. It never queued, so it has nothing to
// leave.
func (r *RedisLocker) undo(ctx context.Context, keys []string, owner string) {
	cctx, stop := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer stop()
	if err := r.sc.release.Run(cctx, r.c, releaseKeys(keys, owner), owner, 0, r.grantArg()).Err(); err != nil {
		r.f.absorb(cctx, "undo", keys[0], "lock: undoing a failed try-acquire failed", err)
	}
}

func (r *RedisLocker) release(ctx context.Context, l *Lock) error {
	if l.local != nil {
		return r.releaseLocal(ctx, l)
	}
	_, err := r.releaseRedis(ctx, l, 0, 0)
	return err
}

// releaseRedis runs the release script. With keep > 0 and no live waiter
// queued in Redis, the lock is kept for an in-process successor: it then
// returns the new token (keep tokens reserved) and the lock's ttl in Redis
// is keepTTL.
func (r *RedisLocker) releaseRedis(ctx context.Context, l *Lock, keep int, keepTTL time.Duration) (kept uint64, err error) {
	var v any
	keys := releaseKeys(l.rkeys, l.owner)
	if keep > 0 {
		v, err = r.run(ctx, r.sc.release, keys, l.owner, 0, "1", keep, keepTTL.Milliseconds())
	} else {
		v, err = r.run(ctx, r.sc.release, keys, l.owner, 0, r.grantArg())
	}
	if err != nil {
		return 0, r.f.fail(ctx, "release", l.key, err)
	}
	switch x := v.(type) {
	case int64:
		if x == 0 {
			return 0, fmt.Errorf("%w: %q expired or was taken before release", ErrLockLost, l.key)
		}
		return 0, nil
	case []any:
		if len(x) == 2 {
			if tok, ok := x[1].(int64); ok && tok > 0 {
				return uint64(tok), nil
			}
		}
	}
	return 0, r.f.fail(ctx, "release", l.key, rediserr.BadReply("release reply %v (%T), want 0, 1 or {2, token}", v, v))
}

func (r *RedisLocker) refresh(ctx context.Context, l *Lock, ttl time.Duration) error {
	n, err := r.runInt(ctx, r.sc.refresh, l.rkeys, l.owner, 0, ttl.Milliseconds())
	if err == nil && n != 0 && n != 1 {
		err = rediserr.BadReply("refresh reply %d, want 0 or 1", n)
	}
	if err != nil {
		return r.f.fail(ctx, "refresh", l.key, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %q expired or was taken before refresh", ErrLockLost, l.key)
	}
	return nil
}

func (r *RedisLocker) pttl(ctx context.Context, l *Lock) (time.Duration, error) {
	n, err := r.runInt(ctx, r.sc.pttl, l.rkeys, l.owner)
	if err != nil {
		return 0, r.f.fail(ctx, "ttl", l.key, err)
	}
	if n < 0 {
		return 0, fmt.Errorf("%w: %q is no longer ours", ErrLockLost, l.key)
	}
	return time.Duration(n) * time.Millisecond, nil
}
