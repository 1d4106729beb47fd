package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Errors returned by the limiters. Match them with [errors.Is].
var (
	// ErrInvalidLimit reports a Limit with a field out of range. The wrapping
	// error names the field and the value.
	ErrInvalidLimit = errors.New("ratelimit: invalid limit")
	// ErrInvalidArgument reports a bad argument to a call (an empty key, a
	// negative cost, a bad option). The wrapping error names it.
	ErrInvalidArgument = errors.New("ratelimit: invalid argument")
	// ErrExceedsBurst is returned by Wait and WaitN when the cost can never be
	// allowed because it is larger than the limit's burst. Wait returns it at
	// once instead of blocking forever.
	ErrExceedsBurst = errors.New("ratelimit: cost exceeds burst, never allowed")
)

// maxExact is the largest integer a Redis Lua number (an IEEE double) holds
// exactly: 2^53.
const maxExact = 1 << 53

// Limit is a rate limit: Rate events per Period, with bursts of up to Burst
// events. Under GCRA (the default algorithm) a key that has been idle for a
// while may spend Burst events at once, and after that one event every
// Period/Rate.
//
// A Limit is a plain value; build one with [PerSecond], [PerMinute] and
// [PerHour] or a literal, and change the burst with [Limit.WithBurst].
type Limit struct {
	// Rate is the number of events allowed per Period. Must be >= 1.
	Rate int
	// Period is the window Rate applies to. Must be >= 1µs.
	Period time.Duration
	// Burst is the largest number of events allowed at once (the bucket
	// size). Must be >= 1.
	Burst int
}

// PerSecond returns a Limit of n events per second with Burst n.
func PerSecond(n int) Limit { return Limit{Rate: n, Period: time.Second, Burst: n} }

// PerMinute returns a Limit of n events per minute with Burst n.
func PerMinute(n int) Limit { return Limit{Rate: n, Period: time.Minute, Burst: n} }

// PerHour returns a Limit of n events per hour with Burst n.
func PerHour(n int) Limit { return Limit{Rate: n, Period: time.Hour, Burst: n} }

// WithBurst returns a copy of l with Burst b.
func (l Limit) WithBurst(b int) Limit { l.Burst = b; return l }

// Interval returns the emission interval Period/Rate: the time one event's
// worth of quota takes to come back. It is 0 for an invalid Limit.
func (l Limit) Interval() time.Duration {
	if l.Rate <= 0 {
		return 0
	}
	return l.Period / time.Duration(l.Rate)
}

// String returns the limit as "100/1s burst 100".
func (l Limit) String() string {
	return strconv.Itoa(l.Rate) + "/" + l.Period.String() + " burst " + strconv.Itoa(l.Burst)
}

// Validate reports whether l is usable, with an error (wrapping
// [ErrInvalidLimit]) that names the bad field. Besides the field ranges,
// Burst × Period (in microseconds) and Rate × Period must stay below 2^53 so
// that every computation in Redis' Lua is exact: for a one-hour period that
// allows a burst of up to about 2.5 million.
func (l Limit) Validate() error {
	switch {
	case l.Rate <= 0:
		return fmt.Errorf("%w: Limit.Rate must be >= 1, got %d", ErrInvalidLimit, l.Rate)
	case l.Period < time.Microsecond:
		return fmt.Errorf("%w: Limit.Period must be >= 1µs, got %v", ErrInvalidLimit, l.Period)
	case l.Burst < 1:
		return fmt.Errorf("%w: Limit.Burst must be >= 1, got %d", ErrInvalidLimit, l.Burst)
	}
	us := l.Period.Microseconds()
	if us > maxExact/int64(l.Burst) || us > maxExact/int64(l.Rate) {
		return fmt.Errorf("%w: Limit.Burst (%d) or Limit.Rate (%d) times Limit.Period (%v) is too large for exact arithmetic", ErrInvalidLimit, l.Burst, l.Rate, l.Period)
	}
	if l.Period%time.Microsecond != 0 {
		return fmt.Errorf("%w: Limit.Period must be a whole number of microseconds, got %v", ErrInvalidLimit, l.Period)
	}
	return nil
}

// Source says which path decided a [Result].
type Source uint8

const (
	// SourceRedis: the Redis script decided.
	SourceRedis Source = iota + 1
	// SourceLocal: an in-process limiter ([NewLocal]) decided.
	SourceLocal
	// SourceDenyCache: the local deny cache answered for a key Redis denied
	// recently, without a Redis call.
	SourceDenyCache
	// SourceFallback: Redis could not answer (an error, or the circuit
	// breaker is open) and the fallback policy decided.
	SourceFallback
	// SourceBatch: the request was paid for with tokens this replica took
	// from Redis earlier (token batching), without a Redis call.
	SourceBatch
)

// String returns the source's name: "redis", "local", "deny-cache",
// "fallback" or "batch".
func (s Source) String() string {
	switch s {
	case SourceRedis:
		return "redis"
	case SourceLocal:
		return "local"
	case SourceDenyCache:
		return "deny-cache"
	case SourceFallback:
		return "fallback"
	case SourceBatch:
		return "batch"
	}
	return "unknown"
}

// Result is the outcome of one AllowN call.
type Result struct {
	// Allowed reports whether the request may proceed. In shadow mode it is
	// always true; see Shadowed.
	Allowed bool
	// Remaining is how many more events would be allowed right now (for a
	// multi-limit limiter: under the tightest limit).
	Remaining int
	// RetryAfter is how long to wait before the same cost can be allowed: 0
	// when allowed, and -1 when it never can be because the cost exceeds the
	// limit's burst.
	RetryAfter time.Duration
	// ResetAfter is how long until the key is back to its full burst if no
	// more requests arrive.
	ResetAfter time.Duration
	// Limit is the limit that decided: for a multi-limit limiter the one that
	// denied, or when allowed the one with the fewest remaining.
	Limit Limit
	// Source says which path decided.
	Source Source
	// Shadowed is set in shadow mode when the limiter would have denied the
	// request but let it through (Allowed is true).
	Shadowed bool
}

// Limiter is what the Redis and local limiters have in common and what
// [Middleware] takes. Implementations are safe for concurrent use.
type Limiter interface {
	// Allow is AllowN(ctx, key, 1).
	Allow(ctx context.Context, key string) (Result, error)
	// AllowN reports whether n events may happen now for key and, if so,
	// records them. n == 0 records nothing and reports the current state
	// (Allowed true). n larger than the burst is never allowed (RetryAfter -1).
	// A denied request consumes nothing.
	AllowN(ctx context.Context, key string, n int) (Result, error)
	// Wait blocks until one event is allowed for key or ctx is done.
	Wait(ctx context.Context, key string) error
}

// The limiters of this package also have WaitN(ctx, key, n), which blocks
// until n events are allowed and returns ErrExceedsBurst at once when n can
// never be allowed.
var (
	_ interface {
		WaitN(ctx context.Context, key string, n int) error
	} = (*RedisLimiter)(nil)
	_ interface {
		WaitN(ctx context.Context, key string, n int) error
	} = (*LocalLimiter)(nil)
)

func checkArgs(key string, n int) error {
	if key == "" {
		return fmt.Errorf("%w: key must not be empty", ErrInvalidArgument)
	}
	if n < 0 {
		return fmt.Errorf("%w: n must be >= 0, got %d", ErrInvalidArgument, n)
	}
	return nil
}

// waitN is the shared Wait loop: ask, sleep RetryAfter, ask again.
func waitN(ctx context.Context, l Limiter, key string, n int) error {
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		res, err := l.AllowN(ctx, key, n)
		if err != nil {
			return err
		}
		if res.Allowed {
			return nil
		}
		if res.RetryAfter < 0 {
			return fmt.Errorf("%w: n = %d, burst = %d", ErrExceedsBurst, n, res.Limit.Burst)
		}
		// RetryAfter is exact for this caller alone; with others competing
		// for the key the next try may be denied again and sleep again.
		d := max(res.RetryAfter, 100*time.Microsecond)
		if t == nil {
			t = time.NewTimer(d)
		} else {
			t.Reset(d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// ceilDiv returns ceil(a/b) for a >= 0, b > 0.
func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }
