package lock

import "time"

// Hooks are optional callbacks for metrics and tracing, set with
// [WithHooks]. Each is called synchronously with plain values, so it must
// be fast and must not block or panic; a nil field costs nothing (no
// allocation). The module github.com/outrigger-dev/outrigger/otel turns
// them into OpenTelemetry metrics.
type Hooks struct {
	// OnAcquire is called after each Acquire and TryAcquire (and the
	// acquire of Do) with how long it took (the wait), the fencing token when
	// it succeeded, and its error: nil, one wrapping ErrNotAcquired, ctx's
	// error, or a Redis error.
	OnAcquire func(key string, wait time.Duration, token uint64, err error)
	// OnRelease is called when a held lock is released, with how long it
	// was held.
	OnRelease func(key string, held time.Duration)
	// OnLost is called once when a lock is lost before it was released
	// (its local deadline passed, a refresh was refused, another owner took
	// it), with the cause, which wraps ErrLockLost. It is called while the
	// lock's state changes: it must not call the Lock's methods.
	OnLost func(key string, cause error)
}

// WithHooks sets callbacks for metrics and tracing (see [Hooks]).
func WithHooks(h Hooks) Option { return func(o *options) { o.hooks = h } }

// acquireStart returns the time an acquire begins, for OnAcquire's wait;
// the zero time, without reading the clock, when OnAcquire is unset.
func (o *options) acquireStart() time.Time {
	if o.hooks.OnAcquire == nil {
		return time.Time{}
	}
	return time.Now()
}

// observeAcquire reports an acquire that began at start.
func (o *options) observeAcquire(key string, start time.Time, l *Lock, err error) {
	h := o.hooks.OnAcquire
	if h == nil {
		return
	}
	var token uint64
	if l != nil {
		token = l.token
	}
	h(key, time.Since(start), token, err)
}
