package lock

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Sentinel errors. Match them with errors.Is; the errors returned by this
// package wrap them with detail.
var (
	// ErrNotAcquired is returned by TryAcquire when the lock is held by
	// another owner, and by Acquire when the maximum wait passed, or when a
	// Redlock quorum could not be reached (then it wraps the node errors).
	ErrNotAcquired = errors.New("lock: not acquired")

	// ErrLockLost is returned by Refresh, Release and Do when the lock is
	// no longer ours: it expired, was taken by another owner, or its local
	// deadline passed before a refresh confirmed it.
	ErrLockLost = errors.New("lock: lock lost")

	// ErrReleased is returned when a Lock is used after Release returned. It
	// wraps ErrLockLost, so errors.Is(err, ErrLockLost) is true as well.
	ErrReleased = fmt.Errorf("lock: used after release: %w", ErrLockLost)

	errZeroLock = fmt.Errorf("lock: zero Lock, not obtained from a Locker: %w", ErrLockLost)

	// ErrStaleToken is returned by a Fence when a fencing token is older than
	// one it has already seen for the same resource.
	ErrStaleToken = errors.New("lock: stale fencing token")

	// ErrReplicas is wrapped by the error of an acquire that took the lock but
	// whose write was not acknowledged by the replicas asked for with
	// WithWaitReplicas (the lock has been released again).
	ErrReplicas = errors.New("lock: replicas did not acknowledge the acquire")
)

// Locker hands out locks. It is implemented by *RedisLocker (New),
// *Redlock (NewRedlock) and *LocalLocker (NewLocal), which all pass the same
// contract tests.
type Locker interface {
	// Acquire waits until it holds the lock on key for ttl, the context is
	// done (it returns ctx.Err()) or the maximum wait set with WithMaxWait
	// passed (it returns an error wrapping ErrNotAcquired).
	Acquire(ctx context.Context, key string, ttl time.Duration) (*Lock, error)
	// TryAcquire makes one attempt; it returns an error wrapping
	// ErrNotAcquired when another owner holds the lock.
	TryAcquire(ctx context.Context, key string, ttl time.Duration) (*Lock, error)
	// Do acquires the lock, runs fn while refreshing it every ttl/3, cancels
	// fn's context the moment the lock is lost, and releases it when fn
	// returns.
	Do(ctx context.Context, key string, ttl time.Duration, fn func(ctx context.Context, token uint64) error) error
}

// Compile-time checks that every backend satisfies Locker.
var (
	_ Locker = (*RedisLocker)(nil)
	_ Locker = (*Redlock)(nil)
	_ Locker = (*LocalLocker)(nil)
)

// backend is what a Lock needs from the store that granted it.
type backend interface {
	release(ctx context.Context, l *Lock) error
	// refresh sets the lock's remaining time to ttl if it is still ours; it
	// returns ErrLockLost (wrapped) when it is not.
	refresh(ctx context.Context, l *Lock, ttl time.Duration) error
	// pttl returns the remaining time, or ErrLockLost when it is not ours.
	pttl(ctx context.Context, l *Lock) (time.Duration, error)
}

// Lock is a held lock. All backends return this type. Its methods are safe
// for concurrent use. A Lock must not be copied; the zero Lock holds nothing
// (its methods return errors wrapping ErrLockLost).
//
// The holder's view of the lock ends at a local monotonic deadline: the time
// the acquire was sent + ttl×(1−drift) − margin, moved forward by every
// successful Refresh (from the time that refresh was sent). Lost is closed
// at that deadline, before the store can hand the lock to anyone else, and
// as soon as a refresh or release finds the lock gone.
type Lock struct {
	key    string
	owner  string
	token  uint64
	b      backend
	drift  float64
	margin time.Duration
	st     *stats
	rkeys  []string  // Redis keys (RedisLocker, Redlock)
	local  *localKey // in-process queue state (RedisLocker.Acquire)

	mu       sync.Mutex    // protects the fields below
	lost     chan struct{} // made by the first Lost call (or when lost)
	deadline time.Time     // local, monotonic
	timer    *time.Timer   // closes lost at deadline; started with lost
	isLost   bool
	cause    error // why it was lost (wraps ErrLockLost), set with isLost
	lastErr  error // the last failed auto-refresh's error
	released bool
	stopAuto func() // stops the auto-refresh, if any
	x        *lockExtra
}

// lockExtra is the part of a Lock that only some locks need, allocated
// only for those: a Lock with no hooks and no lease adopter stays small.
type lockExtra struct {
	hooks    *Hooks            // the Locker's, when OnRelease or OnLost is set
	acquired time.Time         // when it was granted, for OnRelease
	onLost   func(cause error) // called by markLostLocked unless released (lockadopt.OnLost); guarded by Lock.mu
}

// ownerBase starts every owner value: ownerPrefix (see inspect.go), then
// 8 random bytes drawn once per process, in hex.
var ownerBase = func() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return ownerPrefix + hex.EncodeToString(b[:]) + "-"
}()

// ownerSeq numbers the owner values of this process.
var ownerSeq atomic.Uint64

// newOwner returns a new owner value, unique across processes (host, pid
// and the process's random part) and within one (a sequence number), in
// one allocation and without a system call.
func newOwner() string {
	var buf [128]byte
	b := append(buf[:0], ownerBase...)
	b = strconv.AppendUint(b, ownerSeq.Add(1), 36)
	return string(b)
}

// newLock returns a held lock whose validity began no earlier than start.
func newLock(key, owner string, token uint64, ttl time.Duration, start time.Time, b backend, o *options, st *stats) *Lock {
	l := &Lock{
		key: key, owner: owner, token: token, b: b,
		drift: o.drift, margin: o.margin, st: st,
	}
	if o.hooks.OnRelease != nil || o.hooks.OnLost != nil {
		l.x = &lockExtra{hooks: &o.hooks, acquired: time.Now()}
	}
	l.deadline = l.deadlineFrom(start, ttl)
	return l
}

func (l *Lock) deadlineFrom(start time.Time, ttl time.Duration) time.Time {
	return start.Add(time.Duration(float64(ttl)*(1-l.drift)) - l.margin)
}

// expire runs when the local deadline timer fires.
func (l *Lock) expire() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if time.Now().Before(l.deadline) { // moved by a refresh that raced the timer
		l.timer.Reset(time.Until(l.deadline))
		return
	}
	l.markLostLocked(l.deadlineCauseLocked())
}

// deadlineCauseLocked is the cause of a lock lost at its local deadline.
// l.mu must be held.
func (l *Lock) deadlineCauseLocked() error {
	if l.lastErr != nil {
		return fmt.Errorf("%w: %q: local deadline passed, no refresh succeeded (last error: %w)", ErrLockLost, l.key, l.lastErr)
	}
	return fmt.Errorf("%w: %q: local deadline passed", ErrLockLost, l.key)
}

// checkDeadlineLocked marks the lock lost if its deadline passed (for
// locks whose Lost channel, and so its timer, was never asked for).
// l.mu must be held.
func (l *Lock) checkDeadlineLocked() {
	if !l.isLost && !time.Now().Before(l.deadline) {
		l.markLostLocked(l.deadlineCauseLocked())
	}
}

// markLostLocked closes Lost once, recording cause (an error wrapping
// ErrLockLost). l.mu must be held.
func (l *Lock) markLostLocked(cause error) {
	if l.isLost {
		return
	}
	l.isLost = true
	l.cause = cause
	if !l.released && l.st != nil {
		l.st.lost.Add(1)
	}
	if x := l.x; x != nil && !l.released {
		if x.hooks != nil && x.hooks.OnLost != nil {
			// before Lost closes: whoever waits on it sees the hook's effects
			x.hooks.OnLost(l.key, cause)
		}
		if x.onLost != nil {
			x.onLost(cause)
		}
	}
	if l.lost != nil {
		close(l.lost)
	}
	if l.timer != nil {
		l.timer.Stop()
	}
}

// closedChan is returned by Lost for locks already lost when first asked.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func (l *Lock) markLost(cause error) {
	l.mu.Lock()
	l.markLostLocked(cause)
	l.mu.Unlock()
}

// Key returns the key the lock was acquired on (without the prefix).
func (l *Lock) Key() string { return l.key }

// Token returns the lock's fencing token. Tokens are strictly increasing
// per key over all holders (see the package documentation for what they
// guarantee with each backend). Pass it to the protected resource, which
// rejects writes carrying a token older than one it has seen (see Fence).
func (l *Lock) Token() uint64 { return l.token }

// Lost returns a channel that is closed once the lock is known to be lost:
// its local deadline passed without a successful refresh, a refresh found it
// gone, Redis refused its auto-refresh as invalid, or it was released. Err
// says which.
func (l *Lock) Lost() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost != nil {
		return l.lost
	}
	if l.b == nil { // zero Lock
		return closedChan
	}
	l.checkDeadlineLocked()
	if l.isLost {
		l.lost = closedChan
		return l.lost
	}
	l.lost = make(chan struct{})
	l.timer = time.AfterFunc(time.Until(l.deadline), l.expire)
	return l.lost
}

// Err returns nil while the lock is held, as far as its holder knows, and
// once Lost is closed an error wrapping ErrLockLost that says why: its local
// deadline passed (with the last auto-refresh error, when refreshes kept
// failing because Redis was unavailable), a refresh or release found it
// gone, it was released (ErrReleased), or Redis refused an auto-refresh with
// an error that means a bug or bad data rather than an outage (a script
// error, WRONGTYPE, a reply of the wrong shape: that error is wrapped too,
// and auto-refresh does not retry it). Do cancels fn's context with this
// cause.
func (l *Lock) Err() error {
	if l.b == nil {
		return errZeroLock
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.checkDeadlineLocked()
	if !l.isLost {
		return nil
	}
	if l.released {
		return ErrReleased
	}
	return l.cause
}

// Deadline returns the local time until which the lock is known to be held,
// unless it is refreshed. It is the instant Lost closes.
func (l *Lock) Deadline() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.deadline
}

// validUntil returns the deadline and whether the lock is still held by
// the local view (not lost, deadline not passed).
func (l *Lock) validUntil() (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.checkDeadlineLocked()
	return l.deadline, !l.isLost && !l.released
}

// Refresh extends the lock to ttl from now, if it is still ours. It never
// re-creates an expired lock. It returns an error wrapping ErrLockLost when
// the lock is gone, was released, or its local deadline passed before the
// store confirmed the refresh (the lock is then treated as lost even if the
// store kept it: release it).
func (l *Lock) Refresh(ctx context.Context, ttl time.Duration) error {
	if err := checkTTL(ttl); err != nil {
		return err
	}
	if l.b == nil {
		return errZeroLock
	}
	l.mu.Lock()
	l.checkDeadlineLocked()
	switch {
	case l.released:
		l.mu.Unlock()
		return ErrReleased
	case l.isLost:
		l.mu.Unlock()
		return fmt.Errorf("%w: local deadline passed", ErrLockLost)
	}
	l.mu.Unlock()
	start := time.Now()
	err := l.b.refresh(ctx, l, ttl)
	if errors.Is(err, ErrLockLost) {
		l.markLost(err)
		return err
	}
	if err != nil {
		return err
	}
	if l.st != nil {
		l.st.refreshes.Add(1)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return ErrReleased
	}
	l.checkDeadlineLocked()
	if l.isLost {
		return fmt.Errorf("%w: local deadline passed before the refresh was confirmed", ErrLockLost)
	}
	// The store set the lock's expiry to ttl from a moment after start.
	l.deadline = l.deadlineFrom(start, ttl)
	if l.timer != nil {
		l.timer.Reset(time.Until(l.deadline))
	}
	return nil
}

// Release gives the lock up (handing it to the next waiter, if any). It
// returns an error wrapping ErrLockLost if the lock had already expired or
// been taken, and ErrReleased when called again after a Release that
// returned nil or ErrLockLost. After a network error the lock is still
// considered held and Release may be retried.
func (l *Lock) Release(ctx context.Context) error {
	return l.releaseVia(ctx, nil)
}

// releaseVia is Release with via, when not nil, doing the backend's part
// instead of the backend's release (called once, unless the Lock is zero
// or was released already).
func (l *Lock) releaseVia(ctx context.Context, via func() error) error {
	if l.b == nil {
		return errZeroLock
	}
	l.mu.Lock()
	if l.released {
		l.mu.Unlock()
		return ErrReleased
	}
	stop := l.stopAuto
	l.stopAuto = nil
	l.mu.Unlock()
	if stop != nil {
		stop()
	}
	var err error
	if via != nil {
		err = via()
	} else {
		err = l.b.release(ctx, l)
	}
	if err != nil && !errors.Is(err, ErrLockLost) {
		return err
	}
	l.mu.Lock()
	already := l.released
	l.released = true
	l.markLostLocked(ErrReleased)
	x := l.x
	l.mu.Unlock()
	if already {
		return ErrReleased
	}
	if l.st != nil && err == nil {
		l.st.releases.Add(1)
	}
	if err == nil && x != nil && x.hooks != nil && x.hooks.OnRelease != nil {
		x.hooks.OnRelease(l.key, time.Since(x.acquired))
	}
	return err
}

// TTL returns the lock's remaining time in the store. It returns an error
// wrapping ErrLockLost when the lock is no longer ours.
func (l *Lock) TTL(ctx context.Context) (time.Duration, error) {
	if l.b == nil {
		return 0, errZeroLock
	}
	l.mu.Lock()
	released := l.released
	l.mu.Unlock()
	if released {
		return 0, ErrReleased
	}
	d, err := l.b.pttl(ctx, l)
	if errors.Is(err, ErrLockLost) {
		l.markLost(err)
	}
	return d, err
}

// autoRefresh refreshes the lock every ttl/3, from a timer (no goroutine
// while the lock is held for a short time), until the lock is released or
// lost, or maxHold (if > 0) has passed since start; after that the lock is
// left to expire and Lost closes at its deadline. A refresh that fails
// because Redis is unavailable is retried sooner (Lost closes at the
// deadline if none succeeds); one that Redis refused with an invalid error
// (see rediserr) is not: the lock is lost at once, with that error as its
// cause (Err). Release and the returned stop function end the refreshes
// and wait for one in flight.
func (l *Lock) autoRefresh(ttl, maxHold time.Duration, start time.Time, log func(string, ...any)) func() {
	a := &autoRefresher{l: l, ttl: ttl, maxHold: maxHold, start: start, log: log, lost: l.Lost()}
	l.mu.Lock()
	l.stopAuto = a.stop
	l.mu.Unlock()
	a.mu.Lock()
	a.timer = time.AfterFunc(ttl/3, a.fire)
	a.mu.Unlock()
	return a.stop
}

// autoRefresher is the state of a Lock's auto-refresh.
type autoRefresher struct {
	l            *Lock
	ttl, maxHold time.Duration
	start        time.Time
	log          func(string, ...any)
	lost         <-chan struct{}
	mu           sync.Mutex // protects the fields below
	timer        *time.Timer
	stopped      bool
	cancel       context.CancelFunc // of the refresh in flight, if any
	inflight     sync.WaitGroup
}

// fire makes one refresh and schedules the next one, if any.
func (a *autoRefresher) fire() {
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	a.inflight.Add(1)
	a.mu.Unlock()
	defer a.inflight.Done()
	next, again := a.step(ctx)
	cancel()
	a.mu.Lock()
	a.cancel = nil
	if again && !a.stopped {
		a.timer.Reset(next)
	}
	a.mu.Unlock()
}

// step refreshes the lock and returns when to refresh it next, or false
// when the refreshes are over.
func (a *autoRefresher) step(ctx context.Context) (time.Duration, bool) {
	l, ttl, maxHold := a.l, a.ttl, a.maxHold
	select {
	case <-a.lost:
		return 0, false
	default:
	}
	interval := ttl / 3
	if maxHold > 0 && time.Since(a.start)+ttl > maxHold {
		// Extend only up to maxHold, then let the lock run out.
		if rest := maxHold - time.Since(a.start); rest >= time.Millisecond {
			if err := l.refreshBefore(ctx, rest); err != nil && !errors.Is(err, ErrLockLost) && ctx.Err() == nil {
				l.refreshFailed(err, "lock: final refresh failed", a.log)
			}
		}
		return 0, false
	}
	err := l.refreshBefore(ctx, ttl)
	switch {
	case err == nil:
		return interval, true
	case errors.Is(err, ErrLockLost), ctx.Err() != nil:
		return 0, false
	case l.refreshFailed(err, "lock: refresh failed, retrying", a.log):
		// Retry sooner; Lost closes at the deadline if none succeeds.
		return max(interval/4, time.Millisecond), true
	default:
		return 0, false
	}
}

// stop ends the refreshes and waits for one in flight. Idempotent.
func (a *autoRefresher) stop() {
	a.mu.Lock()
	a.stopped = true
	a.timer.Stop()
	if a.cancel != nil {
		a.cancel()
	}
	a.mu.Unlock()
	a.inflight.Wait()
}

// refreshFailed handles an auto-refresh's error (the backend counted and
// reported it): it reports whether the refresh may be retried (Redis was
// unavailable: counted in Stats.Errors and logged with msg), or else marks
// the lock lost with the error as its cause.
func (l *Lock) refreshFailed(err error, msg string, log func(string, ...any)) bool {
	if isInvalid(err) {
		l.markLost(lostTo(err))
		return false
	}
	if l.st != nil {
		l.st.errors.Add(1)
	}
	l.mu.Lock()
	l.lastErr = err
	l.mu.Unlock()
	if log != nil {
		log(msg, "key", l.key, "err", err)
	}
	return true
}

// refreshBefore refreshes with a context that also ends at the lock's
// local deadline: a later confirmation would not count.
func (l *Lock) refreshBefore(ctx context.Context, ttl time.Duration) error {
	ctx, cancel := context.WithDeadline(ctx, l.Deadline())
	defer cancel()
	return l.Refresh(ctx, ttl)
}

// checkKey and checkTTL validate the arguments every Locker method takes.
func checkKey(key string) error {
	if key == "" {
		return errors.New("lock: key must not be empty")
	}
	return nil
}

func checkTTL(ttl time.Duration) error {
	if ttl < time.Millisecond {
		return fmt.Errorf("lock: ttl must be >= 1ms, got %v", ttl)
	}
	return nil
}
