package ratelimit

import (
	"context"
	"fmt"
	"time"
)

// LocalLimiter is an in-process GCRA limiter with per-key state in a bounded
// key set. It enforces a limit per replica only; use [NewRedis] for a limit
// shared by all replicas. It is safe for concurrent use; the zero value is
// not usable, build one with [NewLocal] or [NewLocalMulti].
type LocalLimiter struct {
	specs  []gcra
	keys   *shards[[]tat]
	now    func() time.Time // nil: time.Since(base), one monotonic clock read
	base   time.Time
	shadow bool
	hooks  Hooks
}

var _ Limiter = (*LocalLimiter)(nil)

// NewLocal returns an in-process limiter enforcing lim per key. Options used:
// [WithMaxKeys], [WithClock], [WithShadow], [WithHooks]; [WithAlgorithm] may
// only select GCRA.
func NewLocal(lim Limit, opts ...Option) (*LocalLimiter, error) {
	return NewLocalMulti([]Limit{lim}, opts...)
}

// NewLocalMulti returns an in-process limiter enforcing every limit in
// limits per key, all-or-nothing: a request is allowed only if it fits all of
// them, and a denied request consumes nothing from any.
func NewLocalMulti(limits []Limit, opts ...Option) (*LocalLimiter, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if len(cfg.errs) > 0 {
		return nil, cfg.errs[0]
	}
	if cfg.algorithm != GCRA {
		return nil, fmt.Errorf("%w: the local limiter implements GCRA only, got %v", ErrInvalidArgument, cfg.algorithm)
	}
	specs, err := compile(limits)
	if err != nil {
		return nil, err
	}
	return newLocal(specs, cfg), nil
}

func newLocal(specs []gcra, cfg config) *LocalLimiter {
	l := &LocalLimiter{
		specs:  specs,
		keys:   newShards[[]tat](cfg.maxKeys),
		base:   cfg.now(),
		shadow: cfg.shadow,
		hooks:  cfg.hooks,
	}
	if cfg.clockSet {
		l.now = cfg.now
	}
	return l
}

// clock returns the µs since the limiter was built.
func (l *LocalLimiter) clock() int64 {
	if l.now == nil {
		return int64(time.Since(l.base) / time.Microsecond)
	}
	return int64(l.now().Sub(l.base) / time.Microsecond)
}

func compile(limits []Limit) ([]gcra, error) {
	if len(limits) == 0 {
		return nil, fmt.Errorf("%w: at least one limit is required", ErrInvalidLimit)
	}
	specs := make([]gcra, len(limits))
	for i, l := range limits {
		if err := l.Validate(); err != nil {
			if len(limits) > 1 {
				return nil, fmt.Errorf("limit %d: %w", i, err)
			}
			return nil, err
		}
		specs[i] = newGCRA(l)
	}
	return specs, nil
}

// Limits returns the limiter's limits.
func (l *LocalLimiter) Limits() []Limit {
	out := make([]Limit, len(l.specs))
	for i := range l.specs {
		out[i] = l.specs[i].lim
	}
	return out
}

// Len returns the number of keys the limiter holds state for.
func (l *LocalLimiter) Len() int { return l.keys.len() }

// Allow is AllowN(ctx, key, 1).
func (l *LocalLimiter) Allow(ctx context.Context, key string) (Result, error) {
	return l.AllowN(ctx, key, 1)
}

// AllowN reports whether n events may happen now for key and records them if
// so. See [Limiter]. It does not block and ignores ctx.
func (l *LocalLimiter) AllowN(_ context.Context, key string, n int) (Result, error) {
	if err := checkArgs(key, n); err != nil {
		return Result{}, err
	}
	d := l.take(key, int64(n), int64(n))
	res := l.result(d)
	if l.shadow && !res.Allowed {
		res.Allowed, res.Shadowed = true, true
	}
	if l.hooks.OnDecision != nil {
		l.hooks.OnDecision(key, res)
	}
	return res, nil
}

// take decides n (up to m) events for key in process.
func (l *LocalLimiter) take(key string, n, m int64) decision {
	now := l.clock()
	sh := l.keys.shard(key)
	sh.mu.Lock()
	st, ok := sh.m[key]
	var d decision
	if ok || n == 0 {
		d = decide(l.specs, st, now, n, m)
	} else {
		var buf [1]tat
		tmp := buf[:]
		if len(l.specs) > 1 {
			tmp = make([]tat, len(l.specs))
		}
		d = decide(l.specs, tmp, now, n, m)
		if d.take > 0 {
			sh.makeRoom(l.keys.per, func(s []tat) int64 { return l.used(s, now) })
			sh.m[key] = append([]tat(nil), tmp...)
		}
	}
	sh.mu.Unlock()
	return d
}

// used is the largest used quota of a key's state: 0 when it is back at full
// burst under every limit.
func (l *LocalLimiter) used(st []tat, now int64) int64 {
	var u int64
	for i := range l.specs {
		u = max(u, l.specs[i].used(st[i].q, st[i].r, now))
	}
	return u
}

func (l *LocalLimiter) result(d decision) Result {
	res := Result{
		Allowed:    d.allowed,
		Remaining:  int(d.remaining),
		ResetAfter: us(d.reset),
		Limit:      l.specs[d.tight].lim,
		Source:     SourceLocal,
	}
	if d.retry < 0 {
		res.RetryAfter = -1
	} else {
		res.RetryAfter = us(d.retry)
	}
	return res
}

// Wait is WaitN(ctx, key, 1).
func (l *LocalLimiter) Wait(ctx context.Context, key string) error { return waitN(ctx, l, key, 1) }

// WaitN blocks until n events are allowed for key, ctx is done (returning
// ctx.Err()), or at once with [ErrExceedsBurst] when n can never be allowed.
// It polls: it sleeps RetryAfter and asks again, so it does not reserve
// quota while it waits.
func (l *LocalLimiter) WaitN(ctx context.Context, key string, n int) error {
	return waitN(ctx, l, key, n)
}

// Reset forgets key's state, giving it a full burst.
func (l *LocalLimiter) Reset(key string) { forget(l.keys, key) }
