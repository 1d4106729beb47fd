package cache

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"
)

// Defaults used when the corresponding option is not given.
const (
	// DefaultLocalMaxEntries bounds the local tier when no WithLocal or
	// WithLocalBytes option is given.
	DefaultLocalMaxEntries = 10_000
	// DefaultLocalTTL caps the lifetime of a local entry in front of Redis:
	// it bounds how long a replica may serve a value changed elsewhere if an
	// invalidation message is lost.
	DefaultLocalTTL = time.Minute
	// DefaultTTL is how long a value stays fresh.
	DefaultTTL = time.Hour
	// DefaultNegativeTTL is how long a not-found result is cached.
	DefaultNegativeTTL = time.Minute
	// DefaultEarlyRefreshBeta is the XFetch β (1 is the paper's choice).
	DefaultEarlyRefreshBeta = 1.0
	// DefaultLeaseTTL is how long a replica's load lease lives in Redis if
	// the holder never writes (it crashed).
	DefaultLeaseTTL = 5 * time.Second
	// DefaultLeaseWait bounds how long a replica waits for another replica's
	// load before loading itself.
	DefaultLeaseWait = 3 * time.Second
	// DefaultLoadTimeout bounds a load (the loader and the Redis calls
	// around it); the loader's context carries this deadline.
	DefaultLoadTimeout = 30 * time.Second
	// DefaultCompressionThreshold: encoded values at least this long are
	// compressed when a Compressor is configured.
	DefaultCompressionThreshold = 1024
	// DefaultPrefix is prepended to every Redis key when WithPrefix is not
	// given.
	DefaultPrefix = "cache:"
	// DefaultBreakerFailures is how many consecutive Redis failures open the
	// circuit breaker.
	DefaultBreakerFailures = 5
	// DefaultBreakerOpen is how long the breaker stays open before it lets
	// a probe through.
	DefaultBreakerOpen = 2 * time.Second
)

// RedisErrorPolicy says what Fetch and FetchMany do when Redis is
// unavailable. Answers that mean a bug or bad data are returned under either
// policy (see Stats.Invalid).
type RedisErrorPolicy int

const (
	// FallBackToLoader (the default) serves from the local tier and the
	// loader when Redis is unavailable: such an error never reaches the
	// caller of Fetch when the loader can answer.
	FallBackToLoader RedisErrorPolicy = iota
	// ReturnRedisErrors makes Fetch and FetchMany return the errors of an
	// unavailable Redis.
	ReturnRedisErrors
)

// Option configures a Cache built by New. Options are plain values that do
// not depend on the cache's value type.
type Option func(*config)

type config struct {
	client      redis.UniversalClient
	clientSet   bool
	localSet    bool
	localMax    int
	localBytes  int64
	localTTL    time.Duration
	ttl         time.Duration
	jitter      time.Duration
	negTTL      time.Duration
	beta        float64
	swr         time.Duration
	codec       Codec
	compressor  Compressor
	compressSet bool
	threshold   int
	prefix      string
	leaseTTL    time.Duration
	leaseWait   time.Duration
	loadTimeout time.Duration
	logger      *slog.Logger
	hooks       Hooks
	brFailures  uint32
	brOpen      time.Duration
	policy      RedisErrorPolicy
	invalidate  bool
	now         func() time.Time
	clockSet    bool
	errs        []error
}

func defaultConfig() config {
	return config{
		localMax:    DefaultLocalMaxEntries,
		ttl:         DefaultTTL,
		negTTL:      DefaultNegativeTTL,
		beta:        DefaultEarlyRefreshBeta,
		codec:       JSON,
		threshold:   DefaultCompressionThreshold,
		prefix:      DefaultPrefix,
		leaseTTL:    DefaultLeaseTTL,
		leaseWait:   DefaultLeaseWait,
		loadTimeout: DefaultLoadTimeout,
		brFailures:  DefaultBreakerFailures,
		brOpen:      DefaultBreakerOpen,
		invalidate:  true,
		now:         time.Now,
	}
}

func (c *config) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%w: "+format, append([]any{ErrBadOption}, args...)...))
}

// WithRedis puts a Redis tier (single node, Sentinel or Cluster) behind the
// cache. With WithRedis alone the cache is Redis-only; add WithLocal for two
// tiers. A nil client is an error.
func WithRedis(client redis.UniversalClient) Option {
	return func(c *config) {
		if client == nil {
			c.fail("WithRedis client must not be nil")
			return
		}
		c.client, c.clientSet = client, true
	}
}

// WithLocal enables the in-process tier, bounded to maxEntries values
// (admission and eviction by otter's W-TinyLFU). ttl caps a local entry's
// lifetime; in front of Redis it bounds how long a replica may serve a value
// changed elsewhere when an invalidation message is lost (0 means
// DefaultLocalTTL in front of Redis and no extra cap without Redis). A local
// entry never outlives the value's remaining Redis TTL.
func WithLocal(maxEntries int, ttl time.Duration) Option {
	return func(c *config) {
		if maxEntries < 1 {
			c.fail("WithLocal maxEntries must be >= 1, got %d", maxEntries)
		}
		if ttl < 0 {
			c.fail("WithLocal ttl must be >= 0, got %v", ttl)
		}
		c.localSet, c.localMax, c.localBytes, c.localTTL = true, maxEntries, 0, ttl
	}
}

// WithLocalBytes is WithLocal bounded by the approximate size of the values
// (their encoded length under the cache's Codec, measured when a value is
// stored) instead of their number.
func WithLocalBytes(maxBytes int64, ttl time.Duration) Option {
	return func(c *config) {
		if maxBytes < 1 {
			c.fail("WithLocalBytes maxBytes must be >= 1, got %d", maxBytes)
		}
		if ttl < 0 {
			c.fail("WithLocalBytes ttl must be >= 0, got %v", ttl)
		}
		c.localSet, c.localMax, c.localBytes, c.localTTL = true, 0, maxBytes, ttl
	}
}

// WithTTL sets how long a value stays fresh (default DefaultTTL) and a
// jitter: each write's TTL is drawn uniformly from [ttl-jitter, ttl+jitter] so
// that keys written together do not expire together. ttl must be > 0 and
// jitter in [0, ttl). TTLs are stored with millisecond precision (PX), so
// sub-second TTLs are honoured exactly.
func WithTTL(ttl, jitter time.Duration) Option {
	return func(c *config) {
		if ttl <= 0 {
			c.fail("WithTTL ttl must be > 0, got %v", ttl)
		}
		if jitter < 0 || (ttl > 0 && jitter >= ttl) {
			c.fail("WithTTL jitter must be in [0, ttl), got %v", jitter)
		}
		c.ttl, c.jitter = ttl, jitter
	}
}

// WithNegativeTTL sets how long a not-found result (a loader returning
// ErrNotFound) is cached (default DefaultNegativeTTL); 0 disables negative
// caching.
func WithNegativeTTL(d time.Duration) Option {
	return func(c *config) {
		if d < 0 {
			c.fail("WithNegativeTTL must be >= 0, got %v", d)
		}
		c.negTTL = d
	}
}

// WithEarlyRefresh sets the XFetch β (Vattani et al., VLDB 2015): a read at
// time t refreshes a value in the background when t − δ·β·ln(rand()) ≥ expiry,
// δ being the measured cost of the last load, and always once less than
// 2·β·δ of its freshness remains. Larger β refreshes earlier. 0 disables early
// refresh; the default is DefaultEarlyRefreshBeta.
func WithEarlyRefresh(beta float64) Option {
	return func(c *config) {
		if beta < 0 || beta != beta {
			c.fail("WithEarlyRefresh beta must be >= 0, got %v", beta)
		}
		c.beta = beta
	}
}

// WithStaleWhileRevalidate keeps values for d after they go stale: a read
// in that window returns the stale value at once and refreshes it in the
// background (at most one refresh per key at a time). Default 0 (off).
func WithStaleWhileRevalidate(d time.Duration) Option {
	return func(c *config) {
		if d < 0 {
			c.fail("WithStaleWhileRevalidate must be >= 0, got %v", d)
		}
		c.swr = d
	}
}

// WithCodec sets the Codec of values stored in Redis (default JSON).
func WithCodec(codec Codec) Option {
	return func(c *config) {
		if codec == nil {
			c.fail("WithCodec codec must not be nil")
			return
		}
		c.codec = codec
	}
}

// WithCompression compresses encoded values of at least threshold bytes
// with comp before they are stored in Redis (threshold <= 0 compresses every
// value). A nil comp disables compression, which is otherwise on by default
// (zstd above DefaultCompressionThreshold bytes). Values carry a flag, so a
// cache reads values written with any threshold.
func WithCompression(comp Compressor, threshold int) Option {
	return func(c *config) {
		c.compressor, c.compressSet, c.threshold = comp, true, threshold
	}
}

// WithPrefix sets the prefix of every Redis key (default DefaultPrefix); the
// invalidation channel is derived from it, so caches sharing a prefix share
// invalidations. Caches of different value types must use different prefixes.
func WithPrefix(p string) Option {
	return func(c *config) { c.prefix = p }
}

// WithLease sets the cross-replica load lease: ttl is how long a lease lives
// if its holder never writes (crashed), wait how long other replicas wait for
// the holder's value before loading themselves. Defaults DefaultLeaseTTL and
// DefaultLeaseWait; both must be > 0.
func WithLease(ttl, wait time.Duration) Option {
	return func(c *config) {
		if ttl <= 0 {
			c.fail("WithLease ttl must be > 0, got %v", ttl)
		}
		if wait <= 0 {
			c.fail("WithLease wait must be > 0, got %v", wait)
		}
		c.leaseTTL, c.leaseWait = ttl, wait
	}
}

// WithLoadTimeout bounds each load: the loader's context is detached from
// the cancellation of the callers waiting for it and carries this timeout
// instead (default DefaultLoadTimeout; must be > 0).
func WithLoadTimeout(d time.Duration) Option {
	return func(c *config) {
		if d <= 0 {
			c.fail("WithLoadTimeout must be > 0, got %v", d)
		}
		c.loadTimeout = d
	}
}

// WithLogger sets a logger for Redis failures, breaker changes and
// invalidation drops. The cache is silent by default.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}

// WithHooks sets callbacks for metrics and tracing (see [Hooks]).
func WithHooks(h Hooks) Option {
	return func(c *config) { c.hooks = h }
}

// WithBreaker configures the circuit breaker in front of Redis: it opens
// after failures consecutive failures and lets a probe through after open.
// failures 0 disables the breaker.
func WithBreaker(failures uint32, open time.Duration) Option {
	return func(c *config) {
		if failures > 0 && open <= 0 {
			c.fail("WithBreaker open must be > 0, got %v", open)
		}
		c.brFailures, c.brOpen = failures, open
	}
}

// WithRedisErrorPolicy sets what Fetch and FetchMany do when Redis fails
// (default FallBackToLoader).
func WithRedisErrorPolicy(p RedisErrorPolicy) Option {
	return func(c *config) {
		if p != FallBackToLoader && p != ReturnRedisErrors {
			c.fail("WithRedisErrorPolicy unknown policy %d", p)
		}
		c.policy = p
	}
}

// WithInvalidation turns the pub/sub channel on or off (default on). When
// on, Set, Delete, refreshes and the loads other replicas wait for publish
// the key and every cache on the prefix drops it from its local tier;
// waiters for another replica's load are woken by the same messages. When off, other replicas' local tiers keep old values
// until their local TTL and waiters poll.
func WithInvalidation(enabled bool) Option {
	return func(c *config) { c.invalidate = enabled }
}

// withClock replaces the clock (tests).
func withClock(now func() time.Time) Option {
	return func(c *config) { c.now, c.clockSet = now, true }
}
