// Package cache is a typed cache-aside with stampede protection across
// goroutines and replicas, probabilistic early refresh and two tiers: a
// bounded in-process tier (otter, W-TinyLFU) over Redis (any
// redis.UniversalClient: single node, Sentinel, Cluster).
//
//	users, err := cache.New[User](
//		cache.WithRedis(rdb),
//		cache.WithLocal(10_000, 30*time.Second),
//		cache.WithTTL(10*time.Minute, time.Minute),
//		cache.WithPrefix("users:"),
//	)
//	...
//	defer users.Close()
//	u, err := users.Fetch(ctx, id, func(ctx context.Context) (User, error) {
//		u, err := db.User(ctx, id)
//		if errors.Is(err, sql.ErrNoRows) {
//			return User{}, cache.ErrNotFound // cached for the negative TTL
//		}
//		return u, err
//	})
//
// # Tiers
//
// Without options a Cache is local-only, bounded to DefaultLocalMaxEntries.
// WithRedis alone gives a Redis-only cache; WithRedis with WithLocal gives
// two tiers. The local tier stores V itself: a local hit decodes nothing and
// allocates nothing. Values in Redis go through a Codec (JSON by default) and,
// with WithCompression, a Compressor above a size threshold.
//
// # What it guarantees
//
//   - Stampede protection. Concurrent Fetches of a missing key call the
//     loader once per process (coalescing) and, with Redis, once across
//     replicas: the first replica stores a short load lease in the key itself
//     (SET NX PX GET) and the others mark the lease as waited for (so that
//     its holder announces the value) and wait for it, woken by that message
//     or by polling. The wait is bounded (WithLease): if the holder dies, its
//     lease expires or the wait ends and the waiters load themselves. No
//     deadlock, no unbounded wait.
//   - Round trips. A Redis hit costs one round trip (a SET NX PX GET on the
//     caller's goroutine, which reads the value and, only when the key is
//     absent, takes the load lease); a miss two: that read and, after the
//     load, one script that writes the value over the lease (publishing it
//     when a replica waits for it). The load runs on the goroutine of the
//     caller that leads it when that caller's ctx cannot be cancelled
//     (ctx.Done() is nil: it could never stop waiting), and otherwise on a
//     goroutine of the cache; either way under the load context described
//     below, with Close cancelling it and waiting for it.
//   - Early refresh. A read of a fresh value refreshes it in the background
//     with the XFetch probability (Vattani et al., VLDB 2015), using the
//     measured cost δ of its last load, so hot keys are reloaded before they
//     expire and readers do not wait. With WithStaleWhileRevalidate, a stale
//     value is served at once while one background refresh (per key, across
//     replicas thanks to a refresh lease) reloads it.
//   - One envelope per key: a single GET returns the value with its soft
//     expiry, δ, and not-found flag, serving XFetch, stale-while-revalidate
//     and negative caching. TTLs are stored in milliseconds (PX): sub-second
//     TTLs are exact.
//   - Set overwrites the local tier; a local entry never outlives the value's
//     Redis TTL.
//   - Invalidation. Set, Delete, refreshes and the loads other replicas wait
//     for publish the key on a channel derived from the prefix; every other
//     replica drops it from its local tier. The load of a key absent from
//     Redis that no replica waits for is not announced: a replica can hold a
//     local copy of such a key only if Redis lost it without an invalidation
//     (a flush, a DEL outside the cache, writes lost in a failover), which is
//     the case of a lost message below. A lost message leaves a replica
//     serving the old value for at most its local TTL (WithLocal;
//     DefaultLocalTTL in front of Redis). When the subscription drops, the
//     local tier is flushed (and again when it is restored), since messages
//     may have been missed. A value read from Redis is not stored locally if
//     an invalidation of its key arrived after the read was sent (the message
//     travels on another connection and can overtake the reply): such a read
//     returns what Redis answered, and the next read goes to Redis again.
//   - Redis failure. A circuit breaker (gobreaker) stops calling a dead
//     Redis; Fetch then serves from the local tier and the loader, and the
//     breaker lets a probe through to recover by itself. With the default
//     policy an unavailable Redis never fails a Fetch when the loader can
//     answer (WithRedisErrorPolicy). Unavailable means: network errors and
//     timeouts (refused, reset, EOF, i/o timeout, pool timeout, unreachable
//     sentinels) and the replies LOADING, BUSY, CLUSTERDOWN, TRYAGAIN,
//     MASTERDOWN, READONLY, NOREPLICAS, MISCONF, OOM and "max number of
//     clients reached".
//   - Bugs and bad data are never served through. An answer that means the
//     code or the data is wrong (WRONGTYPE on a cache key, a script error,
//     an unknown command, NOAUTH or NOPERM) and a stored value the cache
//     cannot decode (not a cache entry, or a codec or compressor that cannot
//     read it: ErrBadValue) are returned by Fetch, FetchMany and Get as
//     errors naming the key, whatever the policy: the loader does not
//     answer and does not overwrite the value. They are counted in
//     Stats.Invalid, logged once per operation and kind at Error level, and
//     do not open the breaker (Redis is up). A value type that changes
//     incompatibly needs a new prefix (WithPrefix), or the old keys deleted.
//   - Loader errors are not cached, except ErrNotFound (a negative entry for
//     WithNegativeTTL); they are shared by the callers waiting for that load.
//     A panicking loader is recovered into an error wrapping ErrLoaderPanic
//     and the key is not wedged. The loader runs with a context detached from
//     the callers' cancellation (bounded by WithLoadTimeout): a caller that
//     gives up returns ctx.Err() at once without cancelling the load for the
//     others.
//
// # What it does not guarantee
//
//   - It is a cache-aside, not a consistent store: between a write to the
//     source of truth and Set or Delete, readers see the old value; a load
//     that started before a Delete may store the old value afterwards (for
//     at most the TTL), as with any cache-aside.
//   - Expiry decisions made by readers (fresh, stale, XFetch) compare the
//     writer's clock, recorded in the envelope, with the reader's: keep the
//     replicas' clocks synchronised (NTP). Redis itself expires keys by PX.
//   - While Redis is down, replicas do not coordinate: each loads once per
//     key (coalesced in process) and their local tiers are not invalidated.
//
// Keys are used as given under the prefix (default DefaultPrefix) and need no
// hash tags: every single-key operation touches one key, so Cluster works,
// and FetchMany splits its reads by node.
//
// # Inspecting
//
// [NewInspector] looks at a prefix's Redis tier from outside the
// application: [Inspector.Stats] counts its keys and the caches subscribed
// to its invalidations, [Inspector.Key] reads a key's entry (fresh, stale,
// negative, being loaded, its expiries and size) without decoding it, and
// [Inspector.Invalidate] deletes keys and drops them from every replica's
// local tier.
package cache
