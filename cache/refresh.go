package cache

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/internal/rediserr"
)

// refreshAsync starts a background refresh of key unless a refresh of it
// is already in flight in this process (at most one per key at a time;
// readers never wait for it). basis is the entry being served meanwhile; fromLocal says it came
// from the local tier (so Redis may already hold a newer value); early says
// it is still fresh (an XFetch refresh).
func (c *Cache[V]) refreshAsync(ctx context.Context, key string, loader func(context.Context) (V, error), basis entry[V], fromLocal, early bool) {
	cl, leader := c.rf.claim(key)
	if !leader {
		return
	}
	c.st.refreshes.Add(1)
	if early {
		c.st.early.Add(1)
	}
	if h := c.cfg.hooks.OnRefresh; h != nil {
		h(key, early)
	}
	if !c.spawn(func() {
		lctx, cancel := c.loadContext(ctx)
		e, err := c.refresh(lctx, key, loader, basis, fromLocal)
		cancel()
		c.rf.finish(key, cl, e, err)
	}) {
		c.rf.finish(key, cl, basis, nil)
	}
}

// refresh reloads key in the background. Across replicas a refresh lease
// (a separate key, so the value stays readable meanwhile) lets one replica
// refresh; the others keep serving what they have and pick the new value up
// through its invalidation message. A failed refresh keeps the old value
// while it may still be served.
func (c *Cache[V]) refresh(ctx context.Context, key string, loader func(context.Context) (V, error), basis entry[V], fromLocal bool) (entry[V], error) {
	keep := func(e entry[V], err error) (entry[V], error) {
		if err != nil {
			if !errors.Is(err, ErrBadValue) && !rediserr.IsInvalid(err) {
				// (invalid answers are reported by Cache.fault)
				c.log.Warn("cache: refresh failed", "key", key, "err", err)
			}
			if c.nowNano() < basis.hard {
				return basis, nil
			}
		}
		return e, err
	}
	// unavailable: an unavailable Redis, which a load without it answers;
	// an invalid answer is reported and kept from the loader
	unavailable := func(err error) bool {
		if rediserr.IsInvalid(err) {
			_ = c.fault("refresh", key, err)
			return false
		}
		return true
	}
	if c.rdb == nil {
		return keep(c.loadDirect(ctx, key, loader))
	}
	start := time.Now()
	rk := c.cfg.prefix + key
	expect := basis.nonce
	if fromLocal {
		s := c.stamp(key)
		cur, err := c.rdb.get(ctx, rk)
		switch {
		case errors.Is(err, redis.Nil):
			// Gone from Redis (expired or deleted): load it as a miss.
			e, _, handled, err := c.loadRedis(ctx, key, loader)
			if !handled {
				return keep(c.loadDirect(ctx, key, loader))
			}
			return keep(e, err)
		case err != nil:
			if !unavailable(err) {
				return keep(entry[V]{}, err)
			}
			return keep(c.loadDirect(ctx, key, loader))
		}
		ent, env, lease, err := c.readValue("refresh", key, cur)
		switch {
		case err != nil:
			return keep(entry[V]{}, err)
		case lease:
			return basis, nil // another replica is loading it
		}
		now := c.nowNano()
		if env.nonce != basis.nonce && now < ent.soft && !c.due(&ent, now) {
			// Another replica refreshed it already.
			if c.local != nil {
				c.local.store(key, ent, now, s)
			}
			return ent, nil
		}
		expect = env.nonce
	}
	lk := rk + refreshLeaseSuffix
	token := nonzeroNonce()
	lease := (&envelope{flags: flagLease, nonce: token}).marshal()
	ok, err := c.rdb.setNX(ctx, lk, lease, min(c.cfg.leaseTTL, c.cfg.ttl))
	if err != nil {
		if !unavailable(err) {
			return keep(entry[V]{}, err)
		}
		return keep(c.loadDirect(ctx, key, loader))
	}
	if !ok {
		return basis, nil // another replica is refreshing it
	}
	e, err := c.loadAndWrite(ctx, key, loader, 0, modeRefresh, expect, start)
	if rerr := c.rdb.release(ctx, lk, token, false, ""); rerr != nil {
		c.log.Debug("cache: refresh lease release failed", "key", key, "err", rerr)
	}
	return keep(e, err)
}

// refreshLeaseSuffix names a key's refresh lease: <prefix><key>\x00refresh.
const refreshLeaseSuffix = "\x00refresh"
