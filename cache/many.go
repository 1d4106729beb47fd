package cache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"time"
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
				c.st.localHits.Add(1)
				switch {
				case now >= e.soft:
					c.st.stale.Add(1)
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
		c.st.misses.Add(uint64(len(keys)))
		b.loadDirect(lctx, keys)
		return
	}
	if err := b.loadRedis(lctx); err != nil {
		c.log.Warn("cache: redis failed, loading without it", "err", err)
		var left []string
		for i, k := range keys {
			if !b.done[i] {
				left = append(left, k)
			}
		}
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
	raws, err := c.rdb.getMany(ctx, rks)
	if err != nil {
		return err
	}
	var need []string
	expect := map[string]uint64{}
	for i, k := range b.keys {
		if e, ok, nonce := b.value(k, raws[i]); ok {
			b.finish(k, e, nil)
		} else {
			if nonce != 0 {
				expect[k] = nonce
			}
			need = append(need, k)
		}
	}
	if len(need) == 0 {
		return nil
	}
	c.st.misses.Add(uint64(len(need)))
	token := nonzeroNonce()
	lease := (&envelope{flags: flagLease, nonce: token}).marshal()
	nrks := make([]string, len(need))
	for i, k := range need {
		nrks[i] = c.cfg.prefix + k
	}
	cur, acquired, err := c.rdb.acquireMany(ctx, nrks, lease, c.cfg.leaseTTL)
	if err != nil {
		return err
	}
	var mine, theirs []string
	for i, k := range need {
		switch {
		case acquired[i]:
			mine = append(mine, k)
		default:
			if e, ok, nonce := b.value(k, cur[i]); ok {
				b.finish(k, e, nil)
			} else if env, perr := parseEnvelope(cur[i]); perr == nil && env.lease() {
				theirs = append(theirs, k)
			} else {
				if nonce != 0 {
					expect[k] = nonce
				}
				mine = append(mine, k) // unreadable value: replace it
			}
		}
	}
	b.loadAndWrite(ctx, mine, token, expect)
	if len(theirs) == 0 {
		return nil
	}
	c.st.leaseWaits.Add(uint64(len(theirs)))
	left, err := b.wait(ctx, theirs)
	if err != nil {
		b.finishAll(theirs, err)
		return nil
	}
	b.loadAndWrite(ctx, left, 0, expect)
	return nil
}

// value decodes raw as a servable value of k (storing it in the local tier);
// nonce is that of an envelope it could not use (0 if none).
func (b *batch[V]) value(k string, raw []byte) (e entry[V], ok bool, nonce uint64) {
	c := b.c
	if raw == nil {
		return e, false, 0
	}
	env, err := parseEnvelope(raw)
	if err != nil || env.lease() {
		return e, false, 0
	}
	e, err = c.decode(&env)
	if err != nil {
		c.log.Warn("cache: undecodable value replaced", "key", k, "err", err)
		return e, false, env.nonce
	}
	now := c.nowNano()
	c.st.redisHits.Add(1)
	if c.local != nil {
		c.local.set(k, e, now)
	}
	return e, true, 0
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
		raws, err := c.rdb.getMany(ctx, rks)
		if err != nil {
			return keys, nil // load them ourselves
		}
		var still []string
		absent := false
		for i, k := range keys {
			if e, ok, _ := b.value(k, raws[i]); ok {
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
// one pipeline (fill mode, or refresh over the unreadable values in expect).
// token, if not 0, is our lease on the keys, released if the load fails.
func (b *batch[V]) loadAndWrite(ctx context.Context, keys []string, token uint64, expect map[string]uint64) {
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
		mode, exp := modeFill, uint64(0)
		if n, ok := expect[k]; ok {
			mode, exp = modeRefresh, n
		}
		reqs = append(reqs, writeReq{key: c.cfg.prefix + k, env: env, ttl: ttl, mode: mode, expect: exp, msg: c.message(k)})
		ents = append(ents, e)
		wkeys = append(wkeys, k)
	}
	release(uncached)
	written, werr := c.rdb.writeMany(ctx, reqs)
	if werr != nil {
		c.log.Warn("cache: redis write failed", "err", werr)
	}
	for i, k := range wkeys {
		if c.local != nil && (werr != nil || written[i]) {
			c.local.set(k, ents[i], now)
		}
		b.finish(k, ents[i], nil)
	}
}
