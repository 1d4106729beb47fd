package cache

import "github.com/redis/go-redis/v9"

// WithClock replaces the cache's clock in tests.
var WithClock = withClock

// SetWriteScript replaces the write script of c, for tests that need a
// broken one.
func SetWriteScript[V any](c *Cache[V], src string) { c.rdb.writeSc = redis.NewScript(src) }

// The scripts, for the tests that run each branch by hand.
var WriteScript, ReleaseScript, MarkScript = writeScript, releaseScript, markScript

// MakeEnvelope renders an envelope with the given lease flag, nonce and
// payload, and NonceArg a nonce as the scripts take it.
func MakeEnvelope(lease bool, nonce uint64, payload string) string {
	e := envelope{nonce: nonce, payload: []byte(payload)}
	if lease {
		e.flags = flagLease
	}
	return string(e.marshal())
}

// MarkedLease renders a lease with nonce that a waiting replica marked.
func MarkedLease(nonce uint64) string {
	return string((&envelope{flags: flagLease | flagWaited, nonce: nonce}).marshal())
}

// NonceArg renders a nonce as the scripts take it.
func NonceArg(n uint64) string { return nonceBytes(n) }
