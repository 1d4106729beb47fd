package cache

import "sync/atomic"

// Stats are the cache's counters since New. Every field counts events in
// this process (this replica).
type Stats struct {
	// LocalHits counts reads answered by the local tier (fresh or stale).
	LocalHits uint64
	// RedisHits counts reads answered by Redis after a local miss.
	RedisHits uint64
	// Misses counts lookups that found no usable value in any tier and so
	// loaded (or waited for another replica's load).
	Misses uint64
	// Loads counts loader calls (foreground and refreshes).
	Loads uint64
	// LoadErrors counts loader calls that failed (ErrNotFound excluded).
	LoadErrors uint64
	// NotFound counts loader calls that returned ErrNotFound.
	NotFound uint64
	// StaleServed counts reads answered with a stale value (stale-while-
	// revalidate) while it was refreshed.
	StaleServed uint64
	// CoalescedWaits counts callers that waited for a load already in
	// flight in this process instead of starting one.
	CoalescedWaits uint64
	// LeaseWaits counts loads that waited for another replica's lease.
	LeaseWaits uint64
	// EarlyRefreshes counts background refreshes started before expiry
	// (XFetch).
	EarlyRefreshes uint64
	// Refreshes counts every background refresh started (early or stale).
	Refreshes uint64
	// Invalidations counts invalidation messages from other caches.
	Invalidations uint64
	// LocalFlushes counts flushes of the local tier after the invalidation
	// subscription dropped.
	LocalFlushes uint64
	// RedisErrors counts Redis calls that failed because Redis was
	// unavailable (calls refused by the open breaker are not counted).
	RedisErrors uint64
	// Invalid counts errors returned because Redis' answer meant a bug or
	// bad data (WRONGTYPE on a cache key, a script error, NOAUTH) or a
	// stored value could not be decoded ([ErrBadValue]). Neither the loader
	// nor the local tier answers for those; a non-zero count is a bug to
	// look at.
	Invalid uint64
	// Breaker is the circuit breaker's state: "closed", "open",
	// "half-open", or "disabled" (no breaker or no Redis).
	Breaker string
	// LocalEntries is the approximate number of entries in the local tier.
	LocalEntries int
}

// counters are the atomic counters behind Stats.
type counters struct {
	localHits, redisHits, misses, loads, loadErrors, notFound     atomic.Uint64
	stale, coalesced, leaseWaits, early, refreshes, invalidations atomic.Uint64
	localFlushes, redisErrors, invalid                            atomic.Uint64
}

// Stats returns a snapshot of the cache's counters.
func (c *Cache[V]) Stats() Stats {
	s := Stats{
		LocalHits:      c.st.localHits.Load(),
		RedisHits:      c.st.redisHits.Load(),
		Misses:         c.st.misses.Load(),
		Loads:          c.st.loads.Load(),
		LoadErrors:     c.st.loadErrors.Load(),
		NotFound:       c.st.notFound.Load(),
		StaleServed:    c.st.stale.Load(),
		CoalescedWaits: c.st.coalesced.Load(),
		LeaseWaits:     c.st.leaseWaits.Load(),
		EarlyRefreshes: c.st.early.Load(),
		Refreshes:      c.st.refreshes.Load(),
		Invalidations:  c.st.invalidations.Load(),
		LocalFlushes:   c.st.localFlushes.Load(),
		RedisErrors:    c.st.redisErrors.Load(),
		Invalid:        c.st.invalid.Load(),
		Breaker:        "disabled",
	}
	if c.rdb != nil {
		s.Breaker = c.rdb.state()
	}
	if c.local != nil {
		s.LocalEntries = c.local.len()
	}
	return s
}
