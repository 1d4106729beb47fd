package cache

import "github.com/redis/go-redis/v9"

// WithClock replaces the cache's clock in tests.
var WithClock = withClock

// SetWriteScript replaces the write script of c, for tests that need a
// broken one.
func SetWriteScript[V any](c *Cache[V], src string) { c.rdb.writeSc = redis.NewScript(src) }

// The scripts, for the tests that run each branch by hand.
var WriteScript, ReleaseScript, WatchScript = writeScript, releaseScript, watchScript

// MakeWatchedLease renders a lease envelope marked watched (watch.lua).
func MakeWatchedLease(nonce uint64) string {
	e := envelope{flags: flagLease | flagWatched, nonce: nonce}
	return string(e.marshal())
}

// MakeEnvelope renders an envelope with the given lease flag, nonce and
// payload, and NonceArg a nonce as the scripts take it.
func MakeEnvelope(lease bool, nonce uint64, payload string) string {
	e := envelope{nonce: nonce, payload: []byte(payload)}
	if lease {
		e.flags = flagLease
	}
	return string(e.marshal())
}

// NonceArg renders a nonce as the scripts take it.
func NonceArg(n uint64) string { return nonceBytes(n) }
