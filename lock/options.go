package lock

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Defaults used when no option overrides them.
const (
	// DefaultPrefix is prepended to every Redis key.
	DefaultPrefix = "outrigger:lock:"
	// DefaultDrift is the clock drift factor: the holder's local deadline is
	// acquire time + ttl×(1−DefaultDrift) − DefaultMargin.
	DefaultDrift = 0.01
	// DefaultMargin is subtracted from every local deadline on top of drift.
	DefaultMargin = 2 * time.Millisecond
	// DefaultBackoffMin and DefaultBackoffMax bound the fallback polling of
	// waiters (they are normally woken by the release).
	DefaultBackoffMin = 20 * time.Millisecond
	// DefaultBackoffMax is the cap of the polling interval.
	DefaultBackoffMax = 500 * time.Millisecond
	// DefaultNodeTimeout bounds each node's call in Redlock mode.
	DefaultNodeTimeout = 250 * time.Millisecond
)

// Option configures a Locker. Options are validated by the constructor.
type Option func(*options)

type options struct {
	prefix       string
	backoffMin   time.Duration
	backoffMax   time.Duration
	maxWait      time.Duration
	autoRefresh  bool
	maxHold      time.Duration
	drift        float64
	margin       time.Duration
	waitN        int
	waitTimeout  time.Duration
	handoff      bool
	localHandoff int
	nodeTimeout  time.Duration
	logger       *slog.Logger
	hooks        Hooks
}

func defaultOptions() options {
	return options{
		prefix:       DefaultPrefix,
		backoffMin:   DefaultBackoffMin,
		backoffMax:   DefaultBackoffMax,
		drift:        DefaultDrift,
		margin:       DefaultMargin,
		handoff:      true,
		localHandoff: DefaultLocalHandoff,
		nodeTimeout:  DefaultNodeTimeout,
	}
}

func buildOptions(opts []Option) (options, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	var errs []error
	if o.backoffMin < time.Millisecond {
		errs = append(errs, fmt.Errorf("lock: WithBackoff min must be >= 1ms, got %v", o.backoffMin))
	}
	if o.backoffMax < o.backoffMin {
		errs = append(errs, fmt.Errorf("lock: WithBackoff max must be >= min (%v), got %v", o.backoffMin, o.backoffMax))
	}
	if o.maxWait < 0 {
		errs = append(errs, fmt.Errorf("lock: WithMaxWait must be >= 0, got %v", o.maxWait))
	}
	if o.maxHold < 0 {
		errs = append(errs, fmt.Errorf("lock: WithMaxHold must be >= 0, got %v", o.maxHold))
	}
	if !(o.drift >= 0 && o.drift < 0.5) {
		errs = append(errs, fmt.Errorf("lock: WithDrift factor must be in [0, 0.5), got %v", o.drift))
	}
	if o.margin < 0 {
		errs = append(errs, fmt.Errorf("lock: WithMargin must be >= 0, got %v", o.margin))
	}
	if o.waitN < 0 {
		errs = append(errs, fmt.Errorf("lock: WithWaitReplicas n must be >= 0, got %d", o.waitN))
	}
	if o.waitN > 0 && o.waitTimeout <= 0 {
		errs = append(errs, fmt.Errorf("lock: WithWaitReplicas timeout must be > 0, got %v", o.waitTimeout))
	}
	if o.localHandoff < 0 {
		errs = append(errs, fmt.Errorf("lock: WithLocalHandoff n must be >= 0, got %d", o.localHandoff))
	}
	if o.nodeTimeout <= 0 {
		errs = append(errs, fmt.Errorf("lock: WithNodeTimeout must be > 0, got %v", o.nodeTimeout))
	}
	return o, errors.Join(errs...)
}

// WithPrefix sets the prefix of every Redis key (default DefaultPrefix).
// A lock on key k uses the keys <prefix>{k}, <prefix>{k}:fence (the
// fencing counter, which has no expiry), <prefix>{k}:q and <prefix>{k}:qi
// (the wait queue), <prefix>{k}:w:<owner> (a waiter's wake list) and
// <prefix>{k}:w:<owner>:rel (for 10s after a release, so that a release
// re-sent after a timeout still reports success). The
// hash tag keeps them in one Cluster slot. Ignored by NewLocal.
func WithPrefix(prefix string) Option { return func(o *options) { o.prefix = prefix } }

// WithBackoff bounds the fallback polling of a waiting Acquire: waiters are
// woken by the release, and poll only in case a wake-up is missed or the
// holder vanished (its lock then expires). The interval starts at min and
// doubles up to max, each wait randomised to between half and all of it
// (jitter). Defaults: DefaultBackoffMin, DefaultBackoffMax.
func WithBackoff(min, max time.Duration) Option {
	return func(o *options) { o.backoffMin, o.backoffMax = min, max }
}

// WithMaxWait bounds how long Acquire waits before it returns an error
// wrapping ErrNotAcquired. 0 (the default) waits until the context is done.
func WithMaxWait(d time.Duration) Option { return func(o *options) { o.maxWait = d } }

// WithAutoRefresh makes locks returned by Acquire and TryAcquire refresh
// themselves every ttl/3 until released, lost, or the WithMaxHold cap is
// reached (default false; Do always refreshes).
func WithAutoRefresh(on bool) Option { return func(o *options) { o.autoRefresh = on } }

// WithMaxHold caps how long auto-refresh (and Do) keep a lock: after d from
// the acquire, refreshing stops, the lock expires and Lost closes (Do then
// cancels fn's context). 0 (the default) means no cap.
func WithMaxHold(d time.Duration) Option { return func(o *options) { o.maxHold = d } }

// WithDrift sets the clock drift factor (default DefaultDrift): the local
// deadline is acquire time + ttl×(1−factor) − margin, and Redlock's
// validity is ttl − elapsed − ttl×factor − margin.
func WithDrift(factor float64) Option { return func(o *options) { o.drift = factor } }

// WithMargin sets the fixed safety margin subtracted from local deadlines
// (default DefaultMargin).
func WithMargin(d time.Duration) Option { return func(o *options) { o.margin = d } }

// WithWaitReplicas makes every acquire wait (Redis WAIT) until n replicas
// acknowledged the write, at most timeout; if fewer do, the lock is released
// again and the acquire fails with an error wrapping ErrNotAcquired and
// ErrReplicas. It narrows the window in which a failover to a replica loses
// the lock; it does not close it (WAIT does not make Redis strongly
// consistent: an acknowledged write can still be lost, e.g. when the
// promoted replica is not one that acknowledged). With n > 0 the release
// wakes the next waiter instead of granting the lock to it directly, so
// that the waiter's own acquire is acknowledged. n = 0 (default) is off.
// Ignored by NewLocal and NewRedlock.
func WithWaitReplicas(n int, timeout time.Duration) Option {
	return func(o *options) { o.waitN, o.waitTimeout = n, timeout }
}

// WithHandoff chooses what Release does when others wait (default true):
// true grants the lock directly to the longest-waiting live waiter, which
// then holds it without another round trip (FIFO fairness); false deletes
// the lock and wakes that waiter, which competes with new arrivals.
// Ignored by NewRedlock, whose waiters poll.
func WithHandoff(on bool) Option { return func(o *options) { o.handoff = on } }

// WithLocalHandoff sets how many times in a row a RedisLocker passes a
// released lock straight to another goroutine of its own that waits in
// Acquire (or Do) for the same key with the same ttl, without a round trip
// (default DefaultLocalHandoff; 0 turns it off).
//
// Goroutines of one Locker that wait for a key queue in-process behind one
// of them, which alone waits in Redis. The successor gets the next of the
// fencing tokens its Locker reserved when the lock was acquired from Redis
// (one per possible hand-off), so tokens stay strictly increasing across
// all holders, and inherits the lock's expiry in Redis (its Deadline is the
// predecessor's; a hand-off happens only while at least 90% of a fresh
// acquire's validity is left). After n hand-offs in a row, or when the
// lock is too close to its expiry, Release goes to Redis: it grants the
// lock to the longest-waiting waiter of another process if there is one,
// so that a busy replica cannot starve the others, or else keeps it for
// the next local waiter with a fresh expiry and new tokens.
//
// Ignored by NewRedlock and NewLocal, and off with WithHandoff(false) or
// WithWaitReplicas.
func WithLocalHandoff(n int) Option { return func(o *options) { o.localHandoff = n } }

// WithNodeTimeout bounds each node's call in Redlock mode (default
// DefaultNodeTimeout). For the bound to interrupt a hung connection, the
// clients need ContextTimeoutEnabled; otherwise their ReadTimeout applies.
func WithNodeTimeout(d time.Duration) Option { return func(o *options) { o.nodeTimeout = d } }

// WithLogger sets a logger for the errors the Locker absorbs (auto-refresh
// retries, wake-ups that fell back to polling, failed clean-ups: Warn
// level) and, once per operation and kind, for answers that mean a bug or
// bad data (Error level; see "When Redis fails" in the package
// documentation). Silent by default.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

func (o *options) logf() func(string, ...any) {
	if o.logger == nil {
		return nil
	}
	return o.logger.Warn
}

// backoff yields the capped, jittered polling intervals of one Acquire.
type backoff struct {
	next, max time.Duration
}

func (o *options) newBackoff() backoff { return backoff{next: o.backoffMin, max: o.backoffMax} }

// wait returns the next interval: uniformly in [d/2, d], d doubling to max.
func (b *backoff) wait() time.Duration {
	d := b.next
	b.next = min(b.next*2, b.max)
	return d/2 + rand.N(d/2+1)
}

func (b *backoff) reset(o *options) { b.next = o.backoffMin }
