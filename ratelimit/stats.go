package ratelimit

import "sync/atomic"

// Stats are a Redis limiter's counters since it was built.
type Stats struct {
	// Allowed and Denied count decisions (in shadow mode Denied counts the
	// requests that would have been denied).
	Allowed, Denied uint64
	// Shadowed counts denies let through by shadow mode.
	Shadowed uint64
	// Redis, DenyCache, Fallback and Batch count decisions by the path
	// that made them (see Source).
	Redis, DenyCache, Fallback, Batch uint64
	// RedisCalls counts script calls sent to Redis (retries by the client
	// are not visible here).
	RedisCalls uint64
	// Errors counts decisions the fallback made because Redis was
	// unavailable or the breaker was open.
	Errors uint64
	// Invalid counts calls that returned an error because Redis' answer
	// meant that the limiter's script, the key's data or the reply was wrong
	// (a script error, WRONGTYPE, a reply that does not parse). The fallback
	// never answers those; a non-zero count is a bug to look at.
	Invalid uint64
}

type stats struct {
	allowed, denied, shadowed, redisCalls, errors, invalid atomic.Uint64
	bySource                                               [SourceBatch + 1]atomic.Uint64
}

// Stats returns the limiter's counters.
func (l *RedisLimiter) Stats() Stats {
	s := &l.stats
	return Stats{
		Allowed:    s.allowed.Load(),
		Denied:     s.denied.Load(),
		Shadowed:   s.shadowed.Load(),
		Redis:      s.bySource[SourceRedis].Load(),
		DenyCache:  s.bySource[SourceDenyCache].Load(),
		Fallback:   s.bySource[SourceFallback].Load(),
		Batch:      s.bySource[SourceBatch].Load(),
		RedisCalls: s.redisCalls.Load(),
		Errors:     s.errors.Load(),
		Invalid:    s.invalid.Load(),
	}
}
