package cache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"time"

	"github.com/outrigger-dev/outrigger/internal/rediserr"
)

// FetchMany returns the values of keys, loading the missing ones with one
// call of loader. It reads the local tier, then Redis in one round trip (one
// MGET; on a Cluster one pipeline of GETs that go-redis splits per node, as
// MGET across slots fails), takes the load leases of the missing keys in one
// more round trip, calls loader once with the keys it holds leases for, and
// writes them back in one pipeline. Keys whose lease another replica holds
// are waited for (up to the lease wait); the few its holder did not deliver
// in time are loaded in a second loader call. Keys being loaded by a Fetch
// or FetchMany of this process are waited for, not loaded again.
//
// Keys the loader leaves out of its map are not found: they are cached as
// negative entries and are absent from the result, as are keys with a cached
// negative entry. On a loader error FetchMany returns the values it has and
// the error. Duplicate keys are fetched once.
func (c *Cache[V]) FetchMany(ctx context.Context, keys []string, loader func(ctx context.Context, missing []string) (map[string]V, error)) (map[string]V, error) {
	if loader == nil {
		return nil, ErrNilLoader
	}
	for _, k := range keys {
		if k == "" {
			return nil, ErrEmptyKey
		}
	}
	out := make(map[string]V, len(keys))
	seen := make(map[string]struct{}, len(keys))
	var rest []string
	now := c.nowNano()
	for _, k := range keys {
		if _, dup := seen[k]; dup {
			continue
		}
		seen[k] = struct{}{}
		if c.local != nil {
			if e, ok := c.local.get(k); ok && now < e.hard {
				c.hit(k, TierLocal, now >= e.soft)
				switch {
				case now >= e.soft:
					c.refreshAsync(ctx, k, single(k, loader), e, true, false)
				case c.due(&e, now):
					c.refreshAsync(ctx, k, single(k, loader), e, true, true)
				}
				if !e.notFound {
					out[k] = e.v
				}
				continue
			}
		}
		rest = append(rest, k)
	}
	if len(rest) == 0 {
		return out, nil
	}
	calls := make([]*call[V], len(rest))
	var mine []string
	var mineCalls []*call[V]
	for i, k := range rest {
		cl, leader := c.fl.claim(k)
		calls[i] = cl
		if leader {
			mine = append(mine, k)
			mineCalls = append(mineCalls, cl)
		} else {
			c.st.coalesced.Add(1)
		}
	}
	if len(mine) > 0 {
		if !c.spawn(func() { c.runBatch(ctx, mine, mineCalls, loader) }) {
			for i, k := range mine {
				c.fl.finish(k, mineCalls[i], entry[V]{}, ErrClosed)
			}
		}
	}
	var firstErr error
	for i, cl := range calls {
		select {
		case <-cl.done:
		case <-ctx.Done():
			return out, ctx.Err()
		}
		switch {
		case cl.err != nil:
			if firstErr == nil {
				firstErr = cl.err
			}
		case !cl.e.notFound:
			out[rest[i]] = cl.e.v
		}
	}
	return out, firstErr
}

// single adapts a batch loader to one key (for refreshes).
func single[V any](key string, loader func(context.Context, []string) (map[string]V, error)) func(context.Context) (V, error) {
	return func(ctx context.Context) (V, error) {
		m, err := loader(ctx, []string{key})
		if err != nil {
			var zero V
			return zero, err
		}
		v, ok := m[key]
		if !ok {
			return v, ErrNotFound
		}
		return v, nil
	}
}

// batch is the state of one FetchMany load: the keys this process loads and
// their flights.
type batch[V any] struct {
	c      *Cache[V]
	loader func(context.Context, []string) (map[string]V, error)
	idx    map[string]int
	keys   []string
	calls  []*call[V]
	done   []bool
}

func (b *batch[V]) finish(k string, e entry[V], err error) {
	i := b.idx[k]
	if b.done[i] {
		return
	}
	b.done[i] = true
	b.c.fl.finish(k, b.calls[i], e, err)
}

func (b *batch[V]) finishAll(keys []string, err error) {
	for _, k := range keys {
		b.finish(k, entry[V]{}, err)
	}
}

// runBatch is the flight of a FetchMany's missing keys.
func (c *Cache[V]) runBatch(ctx context.Context, keys []string, calls []*call[V], loader func(context.Context, []string) (map[string]V, error)) {
	lctx, cancel := c.loadContext(ctx)
	defer cancel()
	b := &batch[V]{c: c, loader: loader, idx: make(map[string]int, len(keys)), keys: keys, calls: calls, done: make([]bool, len(keys))}
	for i, k := range keys {
		b.idx[k] = i
	}
	defer b.finishAll(keys, errors.New("cache: batch load ended without a result")) // safety net; no-op normally
	if c.rdb == nil {
		c.miss(keys[0], len(keys))
		b.loadDirect(lctx, keys)
		return
	}
	if err := b.loadRedis(lctx); err != nil {
		var left []string
		for i, k := range keys {
			if !b.done[i] {
				left = append(left, k)
			}
		}
		if rediserr.IsInvalid(err) {
			// a bug or bad data, not an outage: no loading without Redis
			err = c.fault("fetch", left[0], err)
			b.finishAll(left, err)
			return
		}
		c.log.Warn("cache: redis failed, loading without it", "err", err)
		if c.cfg.policy == ReturnRedisErrors {
			b.finishAll(left, err)
			return
		}
		b.loadDirect(lctx, left)
	}
}

// callLoader calls the batch loader, measuring its cost and recovering a
// panic.
func (b *batch[V]) callLoader(ctx context.Context, keys []string) (m map[string]V, delta int64, err error) {
	c := b.c
	c.st.loads.Add(1)
	start := time.Now()
	if c.cfg.hooks.OnLoad != nil {
		defer func() { c.loaded(len(keys), time.Since(start), err) }()
	}
	defer func() {
		if r := recover(); r != nil {
			c.st.loadErrors.Add(1)
			c.log.Error("cache: loader panicked", "panic", r, "stack", string(debug.Stack()))
			m, err = nil, fmt.Errorf("%w: %v", ErrLoaderPanic, r)
		}
	}()
	m, err = b.loader(ctx, keys)
	delta = int64(time.Since(start))
	if err != nil {
		c.st.loadErrors.Add(1)
	}
	return m, delta, err
}

// loadDirect loads keys and stores them in the local tier only.
func (b *batch[V]) loadDirect(ctx context.Context, keys []string) {
	c := b.c
	if len(keys) == 0 {
		return
	}
	m, delta, err := b.callLoader(ctx, keys)
	if err != nil {
		b.finishAll(keys, err)
		return
	}
	now := c.nowNano()
	for _, k := range keys {
		v, ok := m[k]
		if !ok {
			c.st.notFound.Add(1)
		}
		e, ttl := c.newEntry(v, !ok, delta, now, 0)
		if c.local != nil && ttl > 0 {
			c.local.set(k, e, now)
		}
		b.finish(k, e, nil)
	}
}

// loadRedis runs the batch against Redis; an error means Redis failed and
// the keys not yet finished are still to be loaded.
func (b *batch[V]) loadRedis(ctx context.Context) error {
	c := b.c
	rks := make([]string, len(b.keys))
	for i, k := range b.keys {
		rks[i] = c.cfg.prefix + k
	}
	ss := c.stamps(b.keys)
	raws, kerr, err := c.rdb.getMany(ctx, rks)
	if err != nil {
		return err
	}
	var need []string
	for i, k := range b.keys {
		switch e, ok, err := b.value(k, raws[i], kerr[i], ss[i]); {
		case err != nil:
			b.finish(k, entry[V]{}, err)
		case ok:
			b.finish(k, e, nil)
		default:
			need = append(need, k)
		}
	}
	if len(need) == 0 {
		return nil
	}
	c.miss(need[0], len(need))
	token := nonzeroNonce()
	lease := (&envelope{flags: flagLease, nonce: token}).marshal()
	nrks := make([]string, len(need))
	for i, k := range need {
		nrks[i] = c.cfg.prefix + k
	}
	ss = c.stamps(need)
	cur, acquired, kerr, err := c.rdb.acquireMany(ctx, nrks, lease, c.cfg.leaseTTL)
	if err != nil {
		return err
	}
	var mine, theirs, unmarked []string
	var nonces []uint64
	for i, k := range need {
		if acquired[i] {
			mine = append(mine, k)
			continue
		}
		switch e, ok, err := b.value(k, cur[i], kerr[i], ss[i]); {
		case err != nil:
			b.finish(k, entry[V]{}, err)
		case ok:
			b.finish(k, e, nil)
		default: // another replica's lease
			theirs = append(theirs, k)
			if env, err := parseEnvelope(cur[i]); err == nil && env.flags&flagWaited == 0 {
				unmarked, nonces = append(unmarked, nrks[i]), append(nonces, env.nonce)
			}
		}
	}
	if c.rdb.channel != "" {
		// Their holders announce their writes only if a waiter marked them.
		if err := c.rdb.markMany(ctx, unmarked, nonces); err != nil {
			c.log.Debug("cache: marking leases failed", "err", err)
		}
	}
	b.loadAndWrite(ctx, mine, token)
	if len(theirs) == 0 {
		return nil
	}
	c.st.leaseWaits.Add(uint64(len(theirs)))
	left, err := b.wait(ctx, theirs)
	if err != nil {
		b.finishAll(theirs, err)
		return nil
	}
	b.loadAndWrite(ctx, left, 0)
	return nil
}

// value reads raw, the bytes stored at k, as a servable value (storing it
// in the local tier): ok is false for an absent key or a lease; err is
// kerr, k's own Invalid error, or a value this cache cannot read, reported
// (see Cache.fault). s is k's stamp from before the read.
func (b *batch[V]) value(k string, raw []byte, kerr error, s stamp) (e entry[V], ok bool, err error) {
	c := b.c
	if kerr != nil {
		return e, false, c.fault("fetch", k, kerr)
	}
	if raw == nil {
		return e, false, nil
	}
	e, _, lease, err := c.readValue("fetch", k, raw)
	if err != nil || lease {
		return e, false, err
	}
	now := c.nowNano()
	c.hit(k, TierRedis, now >= e.soft)
	if c.local != nil {
		c.local.store(k, e, now, s)
	}
	return e, true, nil
}

// wait waits for other replicas' loads of keys, up to the lease wait; it
// returns the keys still missing then.
func (b *batch[V]) wait(ctx context.Context, keys []string) ([]string, error) {
	c := b.c
	deadline := time.Now().Add(c.cfg.leaseWait)
	poll := 5 * time.Millisecond
	for len(keys) > 0 {
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return keys, nil
		}
		var wake <-chan struct{}
		if c.rdb.channel != "" {
			wake = c.notif.wait(keys[0])
		}
		t := time.NewTimer(min(poll+rand.N(poll/2+1), remaining))
		poll = min(poll*2, 100*time.Millisecond)
		select {
		case <-wake:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
		if wake != nil {
			c.notif.forget(keys[0], wake)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		rks := make([]string, len(keys))
		for i, k := range keys {
			rks[i] = c.cfg.prefix + k
		}
		ss := c.stamps(keys)
		raws, kerr, err := c.rdb.getMany(ctx, rks)
		if err != nil {
			return keys, nil // load them ourselves
		}
		var still []string
		absent := false
		for i, k := range keys {
			e, ok, err := b.value(k, raws[i], kerr[i], ss[i])
			switch {
			case err != nil:
				b.finish(k, entry[V]{}, err)
				continue
			case ok:
				b.finish(k, e, nil)
				continue
			}
			// raws[i] == nil: the holder released its lease (its load
			// failed) or the lease expired: load ourselves now.
			absent = absent || raws[i] == nil
			still = append(still, k)
		}
		if absent {
			return still, nil
		}
		keys = still
	}
	return nil, nil
}

// loadAndWrite loads keys with one loader call and writes them to Redis in
// one pipeline (fill mode). token, if not 0, is our lease on the keys,
// released if the load fails.
func (b *batch[V]) loadAndWrite(ctx context.Context, keys []string, token uint64) {
	c := b.c
	if len(keys) == 0 {
		return
	}
	release := func(keys []string) {
		if token == 0 || len(keys) == 0 {
			return
		}
		rks, msgs := make([]string, len(keys)), make([]string, len(keys))
		for i, k := range keys {
			rks[i], msgs[i] = c.cfg.prefix+k, c.message(k)
		}
		if err := c.rdb.releaseMany(ctx, rks, token, msgs); err != nil {
			if rediserr.IsInvalid(err) {
				_ = c.fault("release", keys[0], err)
				return
			}
			c.log.Warn("cache: lease release failed", "err", err)
		}
	}
	m, delta, err := b.callLoader(ctx, keys)
	if err != nil {
		release(keys)
		b.finishAll(keys, err)
		return
	}
	now := c.nowNano()
	var reqs []writeReq
	var ents []entry[V]
	var wkeys, uncached []string
	for _, k := range keys {
		v, ok := m[k]
		if !ok {
			c.st.notFound.Add(1)
		}
		e, ttl := c.newEntry(v, !ok, delta, now, 0)
		if ttl <= 0 {
			uncached = append(uncached, k)
			b.finish(k, e, nil)
			continue
		}
		env, err := c.encode(&e)
		if err != nil {
			uncached = append(uncached, k)
			b.finish(k, entry[V]{}, err)
			continue
		}
		reqs = append(reqs, writeReq{key: c.cfg.prefix + k, env: env, ttl: ttl, mode: modeFill, msg: c.message(k)})
		ents = append(ents, e)
		wkeys = append(wkeys, k)
	}
	release(uncached)
	ss := c.stamps(wkeys)
	written, kerr, werr := c.rdb.writeMany(ctx, reqs)
	if werr != nil {
		c.log.Warn("cache: redis write failed", "err", werr)
	}
	var failed []string
	for i, k := range wkeys {
		if kerr[i] != nil {
			// the write script failed: a bug, not an outage to serve through
			failed = append(failed, k)
			b.finish(k, entry[V]{}, c.fault("fetch", k, kerr[i]))
			continue
		}
		switch {
		case c.local == nil:
		case werr != nil:
			c.local.store(k, ents[i], now, ss[i])
		case written[i]:
			c.local.store(k, ents[i], now, c.local.wrote(ss[i]))
		}
		b.finish(k, ents[i], nil)
	}
	release(failed)
}
