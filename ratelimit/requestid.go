package ratelimit

import (
	"time"

	"github.com/redis/go-redis/v9"
)

// autoRequestIDTTL is the default request-ID TTL for client: long enough to
// cover every copy go-redis may send of one command, or 0 when the client
// never re-sends (MaxRetries disabled), in which case request IDs are not
// needed and cost nothing.
func autoRequestIDTTL(client redis.UniversalClient) time.Duration {
	var attempts int
	var read, write, backoff time.Duration
	switch c := client.(type) {
	case interface{ Options() *redis.Options }:
		o := c.Options()
		attempts = max(o.MaxRetries, 0) + 1
		read, write, backoff = o.ReadTimeout, o.WriteTimeout, o.MaxRetryBackoff
	case interface{ Options() *redis.ClusterOptions }:
		o := c.Options()
		// the cluster client retries (MaxRedirects) around node clients
		// that may retry themselves (MaxRetries)
		attempts = (max(o.MaxRedirects, 0) + 1) * (max(o.MaxRetries, 0) + 1)
		read, write, backoff = o.ReadTimeout, o.WriteTimeout, o.MaxRetryBackoff
	default:
		return 30 * time.Second
	}
	if attempts <= 1 {
		return 0
	}
	per := max(read, 0) + max(write, 0) + max(backoff, 0)
	ttl := time.Duration(attempts)*per + time.Second
	return min(max(ttl, time.Second), 5*time.Minute)
}
