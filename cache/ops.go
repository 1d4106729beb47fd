package cache

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/internal/rediserr"
)

// Get returns the fresh value of key if a tier holds one, without loading:
// ok is false on a miss, a stale value or a cached not-found. A Redis error is
// returned (there is no loader to fall back to).
func (c *Cache[V]) Get(ctx context.Context, key string) (V, bool, error) {
	var zero V
	if key == "" {
		return zero, false, ErrEmptyKey
	}
	if c.local != nil {
		if e, ok := c.local.get(key); ok && c.nowNano() < e.soft {
			c.st.localHits.Add(1) // c.hit inlined: the hottest path
			if h := c.cfg.hooks.OnHit; h != nil {
				h(key, TierLocal, false)
			}
			if e.notFound {
				return zero, false, nil
			}
			return e.v, true, nil
		}
	}
	if c.rdb == nil {
		return zero, false, nil
	}
	s := c.stamp(key)
	cur, err := c.rdb.get(ctx, c.cfg.prefix+key)
	switch {
	case errors.Is(err, redis.Nil):
		return zero, false, nil
	case rediserr.IsInvalid(err):
		return zero, false, c.fault("get", key, err)
	case err != nil:
		return zero, false, fmt.Errorf("cache: get %q: %w", key, err)
	}
	e, _, lease, err := c.readValue("get", key, cur)
	if err != nil {
		return zero, false, err
	}
	if lease {
		return zero, false, nil
	}
	now := c.nowNano()
	if now >= e.soft {
		return zero, false, nil
	}
	c.hit(key, TierRedis, false)
	if c.local != nil {
		c.local.store(key, e, now, s)
	}
	if e.notFound {
		return zero, false, nil
	}
	return e.v, true, nil
}

// Set stores v under key with the configured TTL (and jitter) in every tier,
// overwriting the local tier, and publishes an invalidation so that other
// replicas drop their local copy. If Redis fails, the local tier still holds
// v and the error is returned.
func (c *Cache[V]) Set(ctx context.Context, key string, v V) error {
	return c.set(ctx, key, v, 0)
}

// SetWithTTL is Set with an explicit TTL (no jitter); ttl must be > 0.
func (c *Cache[V]) SetWithTTL(ctx context.Context, key string, v V, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("%w: SetWithTTL ttl must be > 0, got %v", ErrBadTTL, ttl)
	}
	return c.set(ctx, key, v, ttl)
}

func (c *Cache[V]) set(ctx context.Context, key string, v V, ttl time.Duration) error {
	if key == "" {
		return ErrEmptyKey
	}
	now := c.nowNano()
	var delta int64
	if c.local != nil {
		if old, ok := c.local.get(key); ok {
			delta = old.delta // keep the recompute cost for XFetch
		}
	}
	e, total := c.newEntry(v, false, delta, now, ttl)
	var werr error
	s := c.stamp(key)
	if c.rdb != nil {
		env, err := c.encode(&e)
		if err != nil {
			return err
		}
		if _, err := c.rdb.write(ctx, c.cfg.prefix+key, env, total, modeSet, 0, c.message(key)); err != nil {
			werr = fmt.Errorf("cache: set %q: %w", key, err)
			if rediserr.IsInvalid(err) {
				werr = c.fault("set", key, err)
			}
		} else if c.local != nil {
			s = c.local.wrote(s)
		}
	} else if c.cfg.localBytes > 0 {
		if b, err := c.cfg.codec.Marshal(v); err == nil {
			e.size = uint32(min(len(b), math.MaxUint32))
		}
	}
	if c.local != nil {
		c.local.store(key, e, now, s)
	}
	return werr
}

// Delete removes keys from every tier and publishes invalidations so that
// every replica's local tier drops them. The local tier is cleared even if
// Redis fails (the error is returned).
func (c *Cache[V]) Delete(ctx context.Context, keys ...string) error {
	for _, k := range keys {
		if k == "" {
			return ErrEmptyKey
		}
	}
	if c.local != nil {
		for _, k := range keys {
			c.local.del(k)
		}
	}
	if c.rdb == nil || len(keys) == 0 {
		return nil
	}
	rks, msgs := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		rks[i], msgs[i] = c.cfg.prefix+k, c.message(k)
	}
	err := c.rdb.del(ctx, rks, msgs)
	if c.local != nil {
		// A read answered before the delete may be storing its value now.
		for _, k := range keys {
			c.local.invalidate(k)
		}
	}
	if err != nil {
		if rediserr.IsInvalid(err) {
			return c.fault("delete", keys[0], err)
		}
		return fmt.Errorf("cache: delete: %w", err)
	}
	return nil
}
