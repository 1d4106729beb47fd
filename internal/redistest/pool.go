package redistest

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// FillPool makes c hold at least n idle open connections to the node that
// serves key: rounds of n concurrent calls each block their connection for
// 40 ms (BLPOP on an empty list in key's slot; keep the client's read
// timeout above that) until the pool holds them, for at most 50 rounds (on
// a loaded machine the goroutines of one round may not overlap). Fault
// tests that pause a server past the read timeout need it: go-redis re-sends
// a timed-out command only on a connection that is already open, not while
// dialling a new one, whose handshake the paused server does not answer.
// For clients other than *redis.Client and *redis.ClusterClient it runs one
// round.
func FillPool(ctx context.Context, c redis.UniversalClient, key string, n int) error {
	list := "{" + hashTag(key) + "}:redistest:fill"
	var stats func() *redis.PoolStats
	switch v := c.(type) {
	case *redis.Client:
		stats = v.PoolStats
	case *redis.ClusterClient:
		node, err := v.MasterForKey(ctx, list)
		if err != nil {
			return err
		}
		stats = node.PoolStats
	}
	for range 50 {
		if err := blockAll(ctx, c, list, n); err != nil {
			return err
		}
		if stats == nil || int(stats().IdleConns) >= n {
			return nil
		}
	}
	return fmt.Errorf("redistest: the pool holds %d idle connections, want %d", stats().IdleConns, n)
}

// blockAll runs n concurrent 40 ms BLPOPs on list.
func blockAll(ctx context.Context, c redis.UniversalClient, list string, n int) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			// Do, not BLPop: go-redis rounds BLPop timeouts up to 1s.
			if err := c.Do(ctx, "BLPOP", list, "0.04").Err(); err != redis.Nil {
				errs[i] = err
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// hashTag returns the part of key that Redis Cluster hashes: the text of
// its first non-empty {…}, else the whole key.
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}
