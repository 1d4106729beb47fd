package ratelimit

import (
	"fmt"
	"log/slog"
	"time"
)

// Algorithm selects how the Redis limiter counts.
type Algorithm uint8

const (
	// GCRA (generic cell rate algorithm, a token bucket stored as one
	// timestamp) is the default: smooth, exact, Burst-aware, one small hash
	// per key.
	GCRA Algorithm = iota
	// SlidingWindow is the sliding-window counter (the previous window's
	// count weighted by its overlap, plus the current window's count). It
	// allows up to Rate events in any window of length Period, approximately
	// (it assumes the previous window's events were spread evenly). Burst is
	// not used. Redis only.
	SlidingWindow
)

// String returns "gcra" or "sliding-window".
func (a Algorithm) String() string {
	if a == SlidingWindow {
		return "sliding-window"
	}
	return "gcra"
}

// Option configures a limiter built by [NewRedis], [NewMulti], [NewLocal] or
// [NewLocalMulti]. Options that do not apply to a backend are ignored by it
// (each option says which backends use it).
type Option func(*config)

type config struct {
	prefix       string
	algorithm    Algorithm
	fallback     Fallback
	fallbackSet  bool
	breakerFails int
	breakerOpen  time.Duration
	denyCache    int
	shadow       bool
	batchSize    int
	batchMaxAge  time.Duration
	requestIDTTL time.Duration
	maxKeys      int
	now          func() time.Time
	clockSet     bool
	hooks        Hooks
	logger       *slog.Logger
	errs         []error
}

func defaultConfig() config {
	return config{
		prefix:       "ratelimit:",
		breakerFails: 5,
		breakerOpen:  5 * time.Second,
		denyCache:    10000,
		maxKeys:      100000,
		now:          time.Now,
	}
}

func (c *config) bad(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidArgument}, args...)...))
}

// WithPrefix sets the prefix of every Redis key; the key for "user:42" is
// "<prefix>{user:42}" (the braces make it a Redis Cluster hash tag). Default
// "ratelimit:". Redis only.
func WithPrefix(p string) Option { return func(c *config) { c.prefix = p } }

// WithAlgorithm selects [GCRA] (default) or [SlidingWindow]. Redis only; the
// local backend only implements GCRA and rejects SlidingWindow.
func WithAlgorithm(a Algorithm) Option {
	return func(c *config) {
		if a != GCRA && a != SlidingWindow {
			c.bad("unknown algorithm %d", a)
		}
		c.algorithm = a
	}
}

// WithFallback sets what answers while Redis cannot: [FailOpen],
// [FailClosed] or [FailLocal]. The default is FailLocal with the limiter's own
// limit(s), that is each replica enforces the whole limit on its own (up to
// replicas × the limit in total) until Redis is back. Redis only.
func WithFallback(f Fallback) Option {
	return func(c *config) {
		if err := f.validate(); err != nil {
			c.errs = append(c.errs, err)
		}
		c.fallback, c.fallbackSet = f, true
	}
}

// WithBreaker sets the circuit breaker: it opens after failures consecutive
// Redis errors and stays open for openFor before letting one probe through
// (half-open); a successful probe closes it. While it is open every call is
// answered by the fallback without touching Redis. Defaults: 5 and 5s. Redis
// only.
func WithBreaker(failures int, openFor time.Duration) Option {
	return func(c *config) {
		if failures < 1 {
			c.bad("WithBreaker failures must be >= 1, got %d", failures)
		}
		if openFor <= 0 {
			c.bad("WithBreaker openFor must be > 0, got %v", openFor)
		}
		c.breakerFails, c.breakerOpen = failures, openFor
	}
}

// WithDenyCache sets how many denied keys the local deny cache remembers
// (default 10000; 0 turns it off). After Redis denies a key, later requests
// for it with at least the same cost are denied locally, without a Redis
// call, until the RetryAfter Redis gave. The cache is per replica: a
// [RedisLimiter.Reset] on another replica does not clear it. Redis only.
func WithDenyCache(size int) Option {
	return func(c *config) {
		if size < 0 {
			c.bad("WithDenyCache size must be >= 0, got %d", size)
		}
		c.denyCache = size
	}
}

// WithShadow turns shadow mode on or off (default off). In shadow mode the
// limiter decides and records as usual but always returns Allowed = true;
// Result.Shadowed marks the requests it would have denied, and hooks see
// them. Use it to roll out a new limit. All backends.
func WithShadow(on bool) Option { return func(c *config) { c.shadow = on } }

// WithBatch turns on token batching (default off): when a key's local tokens
// run out, the limiter takes up to size events' worth of quota from Redis in
// its one call and spends the rest locally, for at most maxAge; unspent
// tokens are then dropped (they were already counted in Redis, so dropping
// them only makes the limit stricter).
//
// Cost: the allowed count in any window of length w can exceed the exact
// bound burst + rate×w by at most replicas × (size − 1) (tokens taken before
// the window and spent in it), and also by at most rate × maxAge. Remaining
// in results served from the batch is approximate. Redis only.
func WithBatch(size int, maxAge time.Duration) Option {
	return func(c *config) {
		if size < 1 {
			c.bad("WithBatch size must be >= 1, got %d", size)
		}
		if maxAge <= 0 {
			c.bad("WithBatch maxAge must be > 0, got %v", maxAge)
		}
		c.batchSize, c.batchMaxAge = size, maxAge
	}
}

// WithRequestIDTTL chooses how a Redis limiter keeps a re-sent command from
// counting a request twice. go-redis re-sends a command after a read
// timeout or a broken connection, and the first copy may already have run.
//
// With d = 0 (the default) every call carries a mark that tells the script
// a re-sent copy from the first; a re-sent copy is refused, so the call
// fails with an error wrapping ErrResent and the fallback decides (like any
// Redis failure). This costs nothing on the normal path. A copy sent after
// Redis refused the previous one without running it (MOVED, ASK, TRYAGAIN,
// LOADING, CLUSTERDOWN, READONLY, MASTERDOWN) is not a re-send.
//
// With d > 0 every call carries a random request ID and the script stores
// the reply of an allowed request under it for d; a re-sent copy returns
// that reply instead of counting again, so the call succeeds with the first
// decision. d must cover the client's whole retry window (RequestIDTTLFor
// computes one from the client's options). Each allowed request then costs
// one small key for d, about 10% more per call sequentially.
//
// A client that never re-sends (MaxRetries: -1) needs neither. Redis only.
func WithRequestIDTTL(d time.Duration) Option {
	return func(c *config) {
		if d < 0 {
			c.bad("WithRequestIDTTL must be >= 0, got %v", d)
		}
		c.requestIDTTL = d
	}
}

// WithMaxKeys bounds the number of keys an in-process limiter keeps (default
// 100000); it also bounds the fallback limiter and the batching state of the
// Redis limiter. Keys back at their full burst are dropped first, as dropping
// them changes nothing; when every key is active, a sampled key closest to
// full is dropped, which gives that key a fresh burst.
func WithMaxKeys(n int) Option {
	return func(c *config) {
		if n < 1 {
			c.bad("WithMaxKeys must be >= 1, got %d", n)
		}
		c.maxKeys = n
	}
}

// WithClock sets the clock of in-process decisions (local limiter, fallback,
// deny cache, batching); default time.Now. For tests.
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now == nil {
			c.bad("WithClock must not be nil")
			return
		}
		c.now, c.clockSet = now, true
	}
}

// WithHooks sets callbacks for decisions and errors; see [Hooks].
func WithHooks(h Hooks) Option { return func(c *config) { c.hooks = h } }

// WithLogger sets a logger for Redis errors and breaker changes (default:
// silent).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// Hooks are optional callbacks. They run synchronously on the caller's
// goroutine, so they must be fast and safe for concurrent use.
type Hooks struct {
	// OnDecision is called with every result returned without error.
	OnDecision func(key string, res Result)
	// OnError is called when a Redis call fails: when Redis is unavailable
	// and the fallback answers, and when Redis' answer means a bug or bad
	// data and the call returns err (see [RedisLimiter.AllowN]).
	OnError func(key string, err error)
	// OnBreakerChange is called when the circuit breaker changes state
	// ("closed", "half-open", "open").
	OnBreakerChange func(from, to string)
}
