package cache

import "time"

// Tier names the tier that answered a read.
type Tier uint8

const (
	// TierLocal is the in-process tier.
	TierLocal Tier = iota
	// TierRedis is the Redis tier.
	TierRedis
)

// String returns "local" or "redis".
func (t Tier) String() string {
	if t == TierRedis {
		return "redis"
	}
	return "local"
}

// Hooks are optional callbacks for metrics and tracing, set with
// [WithHooks]. Each is called synchronously on the goroutine doing the work,
// with plain values, so it must be fast and must not block or panic; a nil
// field costs nothing (no allocation). The module
// github.com/outrigger-dev/outrigger/otel turns them into OpenTelemetry
// metrics.
type Hooks struct {
	// OnHit is called for each lookup a tier answered; stale reports a
	// value served stale while it is refreshed.
	OnHit func(key string, tier Tier, stale bool)
	// OnMiss is called for each key no tier could answer: it is loaded, or
	// waited for while another replica loads it.
	OnMiss func(key string)
	// OnLoad is called after each loader call (Fetch's loader, FetchMany's
	// batch loader, background refreshes) with the number of keys it was
	// asked for, how long it took and its error: nil, ErrNotFound (Fetch's
	// loader reported the key absent) or the loader's error.
	OnLoad func(keys int, d time.Duration, err error)
	// OnRefresh is called when a background refresh of key starts; early
	// reports an XFetch refresh of a value still fresh, else it was stale.
	OnRefresh func(key string, early bool)
	// OnError is called for each failed Redis call (not for those the open
	// breaker refused) and each stored value that cannot be decoded: op
	// names the operation ("get", "acquire", "write", "release", "delete",
	// or "fetch", "set", "refresh" for answers that mean a bug); invalid
	// reports such an answer (returned to the caller and counted in
	// Stats.Invalid), else Redis was unavailable (the loader answered, or
	// the error was returned under ReturnRedisErrors).
	OnError func(op string, err error, invalid bool)
	// OnInvalidation is called for each invalidation message received from
	// another replica, once the local tier has dropped the key, and with
	// key "" once the local tier is flushed because the invalidation
	// subscription dropped.
	OnInvalidation func(key string)
}

// hit counts a read a tier answered.
func (c *Cache[V]) hit(key string, tier Tier, stale bool) {
	if tier == TierLocal {
		c.st.localHits.Add(1)
	} else {
		c.st.redisHits.Add(1)
	}
	if stale {
		c.st.stale.Add(1)
	}
	if h := c.cfg.hooks.OnHit; h != nil {
		h(key, tier, stale)
	}
}

// miss counts n keys that no tier answered (key is the first).
func (c *Cache[V]) miss(key string, n int) {
	c.st.misses.Add(uint64(n))
	if h := c.cfg.hooks.OnMiss; h != nil {
		h(key)
	}
}

// loaded reports a loader call.
func (c *Cache[V]) loaded(keys int, d time.Duration, err error) {
	if h := c.cfg.hooks.OnLoad; h != nil {
		h(keys, d, err)
	}
}
