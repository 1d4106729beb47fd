package cache

import "errors"

// Sentinel errors returned by the cache. Match them with errors.Is.
var (
	// ErrNotFound is returned by Fetch and FetchMany when the loader reported
	// (by returning ErrNotFound or an error wrapping it) that the key has no
	// value, now or from a cached negative entry. Loaders return it to have
	// the absence cached for the negative TTL (see WithNegativeTTL).
	ErrNotFound = errors.New("cache: not found")
	// ErrEmptyKey is returned for an empty key.
	ErrEmptyKey = errors.New("cache: empty key")
	// ErrNilLoader is returned when Fetch or FetchMany is given a nil loader.
	ErrNilLoader = errors.New("cache: nil loader")
	// ErrBadTTL is returned for a negative or zero TTL given to SetWithTTL.
	ErrBadTTL = errors.New("cache: bad ttl")
	// ErrLoaderPanic wraps the value of a loader that panicked; the panic is
	// recovered and reported to every caller waiting for that load.
	ErrLoaderPanic = errors.New("cache: loader panicked")
	// ErrRedisUnavailable is returned (wrapped) when the circuit breaker
	// stops calls to Redis and the operation cannot fall back to a loader.
	ErrRedisUnavailable = errors.New("cache: redis unavailable")
	// ErrBadValue is returned (wrapped) when the value stored in Redis under
	// a key cannot be read by this cache: it is not a cache entry (another
	// program wrote the key) or the codec or compressor cannot decode it
	// (the value type changed under the same prefix). The cache neither
	// loads over it nor hides it behind the loader: Delete the key, or give a
	// changed value type its own prefix (WithPrefix).
	ErrBadValue = errors.New("cache: value in redis cannot be decoded")
	// ErrClosed is returned by calls on a closed cache.
	ErrClosed = errors.New("cache: closed")
	// ErrBadOption is wrapped by New when an option has an invalid value.
	ErrBadOption = errors.New("cache: bad option")
)
