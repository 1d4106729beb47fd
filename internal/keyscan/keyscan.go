// Package keyscan walks the keys matching a pattern on every node that
// holds keys (one server, or each master of a Redis Cluster), for the
// packages' inspectors. It is plumbing, not an API: SCAN visits the whole
// keyspace, so inspectors use it for listings an operator asks for, never
// on a hot path.
package keyscan

import (
	"context"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Escape quotes the glob characters of s (* ? [ ] \) so that it matches
// itself in a SCAN MATCH pattern.
func Escape(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 4)
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Count is how many keys one SCAN call asks for.
const Count = 1000

// Each calls fn with every batch of keys matching pattern (optionally of
// one type: "string", "hash", "stream", ..., "" for any) on every node that
// holds keys. On a Cluster the masters are scanned in parallel and fn is
// called from their goroutines one at a time. A key may be reported twice
// if it moves between nodes or is rehashed during the walk (SCAN's own
// guarantee); callers deduplicate when it matters. fn returning an error
// stops the walk.
func Each(ctx context.Context, c redis.UniversalClient, pattern, typ string, fn func(keys []string) error) error {
	var mu sync.Mutex // serialises fn across the masters' goroutines
	walk := func(ctx context.Context, node redis.UniversalClient) error {
		var cursor uint64
		for {
			var keys []string
			var err error
			if typ != "" {
				keys, cursor, err = node.ScanType(ctx, cursor, pattern, Count, typ).Result()
			} else {
				keys, cursor, err = node.Scan(ctx, cursor, pattern, Count).Result()
			}
			if err != nil {
				return err
			}
			if len(keys) > 0 {
				mu.Lock()
				err = fn(keys)
				mu.Unlock()
				if err != nil {
					return err
				}
			}
			if cursor == 0 {
				return nil
			}
		}
	}
	if cc, ok := c.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return walk(ctx, n) })
	}
	return walk(ctx, c)
}

// Nodes calls fn for every node that may hold a subscriber or a client:
// each node of a Cluster (masters and replicas), or the one server.
func Nodes(ctx context.Context, c redis.UniversalClient, fn func(ctx context.Context, node redis.UniversalClient) error) error {
	if cc, ok := c.(*redis.ClusterClient); ok {
		return cc.ForEachShard(ctx, func(ctx context.Context, n *redis.Client) error { return fn(ctx, n) })
	}
	return fn(ctx, c)
}
