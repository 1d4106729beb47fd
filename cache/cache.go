package cache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/internal/rediserr"
)

// Cache is a typed cache-aside over an optional bounded local tier and an
// optional Redis tier. Build it with New. It is safe for simultaneous use by
// multiple goroutines; call Close when done with it to stop its goroutines.
type Cache[V any] struct {
	cfg    config
	local  *localTier[V] // nil: no local tier
	rdb    *redisTier    // nil: no Redis tier
	st     counters
	fl     flights[V] // foreground loads
	rf     flights[V] // background refreshes
	rd     flights[V] // Redis reads on callers' goroutines
	notif  notifier
	origin string // 8 random bytes naming this cache in invalidation messages
	log    *slog.Logger
	faults rediserr.Reporter // logs each kind of invalid answer once

	base       context.Context // cancelled by Close
	cancel     context.CancelFunc
	ps         *redis.PubSub // nil: no invalidation subscription
	subscribed atomic.Bool

	mu     sync.Mutex // protects closed and wg.Add against Close
	closed bool
	wg     sync.WaitGroup // loads, refreshes and the subscription
}

// New returns a cache of values of type V. Without options it is a local-only
// cache bounded to DefaultLocalMaxEntries entries with DefaultTTL; WithRedis
// alone makes a Redis-only cache, WithRedis and WithLocal a two-tier cache.
// New validates the options and returns an error naming the bad one.
func New[V any](opts ...Option) (*Cache[V], error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if err := errors.Join(cfg.errs...); err != nil {
		return nil, err
	}
	if !cfg.compressSet {
		cfg.compressor = defaultCompressor()
	}
	c := &Cache[V]{cfg: cfg, log: cfg.logger}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var o [8]byte
	binary.BigEndian.PutUint64(o[:], rand.Uint64())
	c.origin = string(o[:])
	c.base, c.cancel = context.WithCancel(context.Background())
	if cfg.clientSet {
		c.rdb = newRedisTier(&c.cfg, &c.st.redisErrors, c.log)
	}
	if !cfg.clientSet || cfg.localSet {
		l, err := newLocalTier[V](&c.cfg, cfg.clientSet)
		if err != nil {
			c.cancel()
			return nil, fmt.Errorf("%w: local tier: %w", ErrBadOption, err)
		}
		c.local = l
	}
	if c.rdb != nil && c.rdb.channel != "" {
		c.subscribe()
	}
	return c, nil
}

// Close stops the cache's goroutines: the invalidation subscription and any
// load or refresh in flight (their contexts are cancelled), and waits for
// them; loaders must honour their context for Close to return promptly.
// Loads after Close fail with ErrClosed (local hits, Get, Set and Delete keep
// working). Close does not close the Redis client. It is safe to call more
// than once.
func (c *Cache[V]) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	if c.ps != nil {
		_ = c.ps.Close()
	}
	c.wg.Wait()
	if c.local != nil {
		c.local.close()
	}
	return nil
}

// runLoadOwned runs the load flight f owned by the cache (Close waits for
// it); false if closed. A caller whose ctx cannot be cancelled (ctx.Done() is
// nil) could never stop waiting for the flight, so f runs on its goroutine,
// saving a goroutine hand-off per miss; otherwise f runs on a new goroutine,
// so that the caller's cancellation abandons its wait, not the load. Either
// way the load runs under loadContext and callers sharing the flight wait on
// its call, as before.
func (c *Cache[V]) runLoadOwned(ctx context.Context, f func()) bool {
	if ctx.Done() != nil {
		return c.spawn(f)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	c.wg.Add(1)
	c.mu.Unlock()
	defer c.wg.Done()
	f()
	return true
}

// spawn runs f on a goroutine owned by the cache; false if closed.
func (c *Cache[V]) spawn(f func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
	return true
}

func (c *Cache[V]) nowNano() int64 { return c.cfg.now().UnixNano() }

// stamp is the local tier's stamp for key (see guard.go), taken before a
// Redis command whose answer may be stored there; zero without a local tier.
func (c *Cache[V]) stamp(key string) stamp {
	if c.local == nil {
		return stamp{}
	}
	return c.local.stamp(key)
}

// stamps is stamp for each of keys.
func (c *Cache[V]) stamps(keys []string) []stamp {
	ss := make([]stamp, len(keys))
	if c.local != nil {
		for i, k := range keys {
			ss[i] = c.local.stamp(k)
		}
	}
	return ss
}

// result returns what a read of e answers.
func (e *entry[V]) result() (V, error) {
	if e.notFound {
		var zero V
		return zero, ErrNotFound
	}
	return e.v, nil
}

// Fetch returns the value of key, loading it with loader on a miss
// (cache-aside). Concurrent Fetches of a missing key call the loader once in
// this process and, with Redis, once across replicas (a load lease). The
// loader's context carries ctx's values but not its cancellation: if ctx is
// cancelled, Fetch returns ctx.Err() at once while the load goes on for the
// other callers (bounded by WithLoadTimeout). A loader returning ErrNotFound
// (or wrapping it) is cached as a negative entry and Fetch returns
// ErrNotFound. Other loader errors are returned to every caller waiting for
// that load and are not cached; a panicking loader is reported as an error
// wrapping ErrLoaderPanic. With the default policy an unavailable Redis
// never fails Fetch: the loader answers instead. An answer from Redis that
// means a bug or bad data (WRONGTYPE on the key, a script error, NOAUTH)
// and a stored value the cache cannot decode ([ErrBadValue]) are returned
// as errors whatever the policy: the loader does not hide them (see
// Stats.Invalid).
func (c *Cache[V]) Fetch(ctx context.Context, key string, loader func(ctx context.Context) (V, error)) (V, error) {
	if key == "" {
		var zero V
		return zero, ErrEmptyKey
	}
	if loader == nil {
		var zero V
		return zero, ErrNilLoader
	}
	if c.local != nil {
		if e, now, ok := c.local.getNow(key); ok {
			if now < e.soft {
				c.st.localHits.Add(1) // c.hit inlined: the hottest path
				if h := c.cfg.hooks.OnHit; h != nil {
					h(key, TierLocal, false)
				}
				if c.due(&e, now) {
					c.refreshAsync(ctx, key, loader, e, true, true)
				}
				return e.result()
			}
			if now < e.hard {
				c.hit(key, TierLocal, true)
				c.refreshAsync(ctx, key, loader, e, true, false)
				return e.result()
			}
		}
	}
	return c.fetchSlow(ctx, key, loader)
}

// due reports whether a fresh entry should be refreshed early (XFetch).
func (c *Cache[V]) due(e *entry[V], now int64) bool {
	if c.cfg.beta == 0 || e.delta <= 0 || e.notFound {
		return false
	}
	gap := float64(e.soft - now)
	bd := float64(e.delta) * c.cfg.beta
	if gap <= 2*bd {
		return true
	}
	if gap > 40*bd { // -ln(rand) > 40 has probability e^-40
		return false
	}
	return -bd*math.Log(rand.Float64()) >= gap
}

func (c *Cache[V]) fetchSlow(ctx context.Context, key string, loader func(context.Context) (V, error)) (V, error) {
	var zero V
	if c.rdb != nil {
		// A Redis hit is read on the caller's goroutine: one round trip, no
		// load flight. Concurrent reads of a key share one round trip. The
		// read takes the load lease when the key is absent, so a cold miss
		// costs two round trips: this read and the write of the value.
		rc, leader := c.rd.claim(key)
		if leader {
			start := time.Now()
			e, ok, token, err := c.readRedis(ctx, key, loader)
			if token != 0 {
				// Lead the load with the lease, claimed before the readers
				// sharing this read go on, so that they wait for it.
				cl, leader := c.fl.claim(key)
				c.rd.finish(key, rc, e, errReadMiss)
				if leader {
					c.miss(key, 1)
					if !c.runLoadOwned(ctx, func() { c.runLeasedLoad(ctx, key, loader, cl, token, start) }) {
						c.releaseLease(ctx, key, token)
						c.fl.finish(key, cl, entry[V]{}, ErrClosed)
					}
				} else {
					// a load of the key is already running here
					c.releaseLease(ctx, key, token)
					c.st.coalesced.Add(1)
				}
				return c.waitLoad(ctx, cl)
			}
			if err == nil && !ok {
				err = errReadMiss
			}
			c.rd.finish(key, rc, e, err)
			switch {
			case ok:
				return e.result()
			case err != errReadMiss:
				return zero, err
			}
		} else {
			select {
			case <-rc.done:
				switch {
				case rc.err == nil:
					return rc.e.result()
				case rc.err != errReadMiss:
					return zero, rc.err
				}
			case <-ctx.Done():
				return zero, ctx.Err()
			}
		}
	}
	// A background refresh of the key is in flight (the value expired while
	// it ran): wait for it rather than load the key a second time.
	if rc := c.rf.get(key); rc != nil {
		select {
		case <-rc.done:
			if rc.err == nil && c.nowNano() < rc.e.hard {
				c.st.coalesced.Add(1)
				return rc.e.result()
			}
		case <-ctx.Done():
			return zero, ctx.Err()
		}
	}
	cl, leader := c.fl.claim(key)
	if leader {
		if !c.runLoadOwned(ctx, func() { c.runLoad(ctx, key, loader, cl) }) {
			c.fl.finish(key, cl, entry[V]{}, ErrClosed)
		}
	} else {
		c.st.coalesced.Add(1)
	}
	return c.waitLoad(ctx, cl)
}

// waitLoad waits for the load flight cl, or for ctx.
func (c *Cache[V]) waitLoad(ctx context.Context, cl *call[V]) (V, error) {
	var zero V
	select {
	case <-cl.done:
		if cl.err != nil {
			return zero, cl.err
		}
		return cl.e.result()
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// errReadMiss tells readers sharing a Redis read that it found nothing to
// serve; they go on to the load flight.
var errReadMiss = errors.New("cache: redis read found no value")

// readRedis reads key from Redis and returns its entry if it can be served
// (fresh, or stale with a refresh started). When the key is absent it takes
// the load lease in the same command (SET NX GET) and returns its token;
// ok is false then, and on another replica's lease or an unavailable Redis,
// which the load flight handles. err is an answer that means a bug or bad
// data (reported), for the caller.
func (c *Cache[V]) readRedis(ctx context.Context, key string, loader func(context.Context) (V, error)) (e entry[V], ok bool, token uint64, err error) {
	token = nonzeroNonce()
	lease := (&envelope{flags: flagLease, nonce: token}).marshal()
	s := c.stamp(key)
	cur, acquired, err := c.rdb.acquire(ctx, c.cfg.prefix+key, lease)
	switch {
	case err != nil && rediserr.IsInvalid(err):
		return e, false, 0, c.fault("fetch", key, err)
	case err != nil:
		return e, false, 0, nil
	case acquired:
		return e, false, token, nil
	}
	e, _, isLease, err := c.readValue("fetch", key, cur)
	if err != nil || isLease {
		return e, false, 0, err
	}
	now := c.nowNano()
	c.hit(key, TierRedis, now >= e.soft)
	if c.local != nil {
		c.local.store(key, e, now, s)
	}
	switch {
	case now >= e.soft:
		c.refreshAsync(ctx, key, loader, e, false, false)
	case c.due(&e, now):
		c.refreshAsync(ctx, key, loader, e, false, true)
	}
	return e, true, 0, nil
}

// runLoad is the flight of a foreground miss.
func (c *Cache[V]) runLoad(ctx context.Context, key string, loader func(context.Context) (V, error), cl *call[V]) {
	lctx, cancel := c.loadContext(ctx)
	e, refresh, err := c.load(lctx, key, loader)
	cancel()
	c.fl.finish(key, cl, e, err)
	if refresh && err == nil {
		c.refreshAsync(ctx, key, loader, e, false, c.nowNano() < e.soft)
	}
}

// runLeasedLoad is the flight of a foreground miss whose read took the load
// lease token (at start): load and write, no second lease round trip.
func (c *Cache[V]) runLeasedLoad(ctx context.Context, key string, loader func(context.Context) (V, error), cl *call[V], token uint64, start time.Time) {
	lctx, cancel := c.loadContext(ctx)
	e, err := c.loadAndWrite(lctx, key, loader, token, modeFill, 0, start)
	cancel()
	c.fl.finish(key, cl, e, err)
}

// load finds key in Redis or loads it; refresh asks for a background
// refresh of the returned (stale or due) entry.
func (c *Cache[V]) load(ctx context.Context, key string, loader func(context.Context) (V, error)) (e entry[V], refresh bool, err error) {
	if c.rdb != nil {
		var handled bool
		e, refresh, handled, err = c.loadRedis(ctx, key, loader)
		if handled {
			return e, refresh, err
		}
		c.log.Warn("cache: redis failed, loading without it", "key", key, "err", err)
		if c.cfg.policy == ReturnRedisErrors {
			return e, false, err
		}
	} else {
		c.miss(key, 1)
	}
	e, err = c.loadDirect(ctx, key, loader)
	return e, false, err
}

// loadDirect calls the loader and stores its result in the local tier only.
func (c *Cache[V]) loadDirect(ctx context.Context, key string, loader func(context.Context) (V, error)) (entry[V], error) {
	v, notFound, delta, err := c.callLoader(ctx, loader)
	if err != nil {
		return entry[V]{}, err
	}
	now := c.nowNano()
	e, ttl := c.newEntry(v, notFound, delta, now, 0)
	if c.local != nil && ttl > 0 {
		if c.cfg.localBytes > 0 && !notFound {
			if b, err := c.cfg.codec.Marshal(v); err == nil {
				e.size = uint32(min(len(b), math.MaxUint32))
			}
		}
		c.local.set(key, e, now)
	}
	return e, nil
}

// loadRedis is load with a Redis tier. handled is false when Redis was
// unavailable before the loader ran (the caller then applies the error
// policy); an answer that means a bug or bad data is handled: returned.
func (c *Cache[V]) loadRedis(ctx context.Context, key string, loader func(context.Context) (V, error)) (e entry[V], refresh, handled bool, err error) {
	rk := c.cfg.prefix + key
	token := nonzeroNonce()
	lease := (&envelope{flags: flagLease, nonce: token}).marshal()
	deadline := time.Now().Add(c.cfg.leaseWait)
	var start time.Time
	poll := 5 * time.Millisecond
	waited := false
	var marked uint64 // the lease nonce last marked
	for {
		var wake <-chan struct{}
		if c.rdb.channel != "" {
			wake = c.notif.wait(key)
		}
		start = time.Now()
		s := c.stamp(key)
		cur, acquired, rerr := c.rdb.acquire(ctx, rk, lease)
		if rerr != nil {
			if wake != nil {
				c.notif.forget(key, wake)
			}
			if ctx.Err() != nil {
				return e, false, true, ctx.Err()
			}
			if rediserr.IsInvalid(rerr) {
				return e, false, true, c.fault("fetch", key, rerr)
			}
			return e, false, false, rerr
		}
		if acquired {
			if wake != nil {
				c.notif.forget(key, wake)
			}
			c.miss(key, 1)
			e, err = c.loadAndWrite(ctx, key, loader, token, modeFill, 0, start)
			return e, false, true, err
		}
		ent, env, lease, perr := c.readValue("fetch", key, cur)
		if !lease {
			if wake != nil {
				c.notif.forget(key, wake)
			}
			if perr != nil {
				return e, false, true, perr
			}
			now := c.nowNano()
			c.hit(key, TierRedis, now >= ent.soft)
			if c.local != nil {
				c.local.store(key, ent, now, s)
			}
			if now >= ent.soft {
				refresh = true
			} else {
				refresh = c.due(&ent, now)
			}
			return ent, refresh, true, nil
		}
		// Another replica holds the lease: wait for its value, woken by its
		// invalidation message or by polling, until the wait bound. The
		// holder announces its write only if a waiter marked the lease.
		if !waited {
			waited = true
			c.st.leaseWaits.Add(1)
		}
		if wake != nil && env.flags&flagWaited == 0 && env.nonce != marked {
			marked = env.nonce
			if err := c.rdb.mark(ctx, rk, env.nonce); err != nil {
				c.log.Debug("cache: marking a lease failed", "key", key, "err", err)
			}
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			if wake != nil {
				c.notif.forget(key, wake)
			}
			break
		}
		t := time.NewTimer(min(poll+rand.N(poll/2+1), remaining))
		poll = min(poll*2, 100*time.Millisecond)
		select {
		case <-wake:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			c.notif.forget(key, wake)
			return e, false, true, ctx.Err()
		}
		t.Stop()
	}
	// The holder did not deliver within the wait bound (it may have died):
	// load ourselves, overwriting its lease but never a value.
	c.log.Debug("cache: lease wait expired, loading", "key", key)
	c.miss(key, 1)
	e, err = c.loadAndWrite(ctx, key, loader, 0, modeFill, 0, time.Now())
	return e, false, true, err
}

// loadAndWrite calls the loader and writes its result to Redis with mode
// (releasing our lease token, if any, on failure) and to the local tier.
//
// start is when this load began (before its Redis reads): the recompute cost
// δ recorded for XFetch is the time from start to the end of the loader, so
// that it covers the round trips of a refresh and not only the loader.
func (c *Cache[V]) loadAndWrite(ctx context.Context, key string, loader func(context.Context) (V, error), token uint64, mode string, expect uint64, start time.Time) (entry[V], error) {
	rk := c.cfg.prefix + key
	v, notFound, delta, err := c.callLoader(ctx, loader)
	delta = max(delta, int64(time.Since(start)))
	if err != nil {
		c.releaseLease(ctx, key, token)
		return entry[V]{}, err
	}
	now := c.nowNano()
	e, ttl := c.newEntry(v, notFound, delta, now, 0)
	if ttl <= 0 { // not-found results are not cached
		c.releaseLease(ctx, key, token)
		return e, nil
	}
	env, err := c.encode(&e)
	if err != nil {
		c.releaseLease(ctx, key, token)
		return entry[V]{}, err
	}
	s := c.stamp(key)
	written, werr := c.rdb.write(ctx, rk, env, ttl, mode, expect, c.message(key))
	switch {
	case rediserr.IsInvalid(werr):
		// the write script failed: a bug, not an outage to serve through
		c.releaseLease(ctx, key, token)
		return entry[V]{}, c.fault("fetch", key, werr)
	case werr != nil:
		c.log.Warn("cache: redis write failed", "key", key, "err", werr)
		if c.local != nil {
			c.local.store(key, e, now, s)
		}
	case written:
		if c.local != nil {
			c.local.store(key, e, now, c.local.wrote(s))
		}
	}
	// Not written: a newer value (Set, or another replica's load) is in
	// Redis; the caller gets the loaded value, the local tier stays empty.
	return e, nil
}

// releaseLease drops our load lease on key (token 0: none) after a load that
// writes nothing, waking the waiters.
func (c *Cache[V]) releaseLease(ctx context.Context, key string, token uint64) {
	if token == 0 {
		return
	}
	if err := c.rdb.release(ctx, c.cfg.prefix+key, token, true, c.message(key)); err != nil {
		if rediserr.IsInvalid(err) {
			_ = c.fault("release", key, err)
			return
		}
		c.log.Warn("cache: lease release failed", "key", key, "err", err)
	}
}

// callLoader calls loader, measuring its cost and recovering a panic.
func (c *Cache[V]) callLoader(ctx context.Context, loader func(context.Context) (V, error)) (v V, notFound bool, delta int64, err error) {
	c.st.loads.Add(1)
	start := time.Now()
	if c.cfg.hooks.OnLoad != nil {
		defer func() {
			herr := err
			if notFound {
				herr = ErrNotFound
			}
			c.loaded(1, time.Since(start), herr)
		}()
	}
	defer func() {
		if r := recover(); r != nil {
			c.st.loadErrors.Add(1)
			c.log.Error("cache: loader panicked", "panic", r, "stack", string(debug.Stack()))
			var zero V
			v, notFound, err = zero, false, fmt.Errorf("%w: %v", ErrLoaderPanic, r)
		}
	}()
	v, err = loader(ctx)
	delta = int64(time.Since(start))
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			c.st.notFound.Add(1)
			var zero V
			return zero, true, delta, nil
		}
		c.st.loadErrors.Add(1)
		return v, false, delta, err
	}
	return v, false, delta, nil
}

// newEntry builds the entry of a loaded or set value and returns the TTL to
// store it with in Redis (0: do not cache). ttl overrides the configured TTL
// when > 0.
func (c *Cache[V]) newEntry(v V, notFound bool, delta, now int64, ttl time.Duration) (entry[V], time.Duration) {
	e := entry[V]{v: v, delta: delta, nonce: nonzeroNonce(), notFound: notFound}
	var total time.Duration
	switch {
	case notFound:
		e.v = *new(V)
		total = c.cfg.negTTL
		e.soft = now + int64(total)
	default:
		if ttl <= 0 {
			ttl = c.cfg.ttl
			if j := c.cfg.jitter; j > 0 {
				ttl += time.Duration(rand.Int64N(int64(2*j)+1)) - j
			}
		}
		e.soft = now + int64(ttl)
		total = ttl + c.cfg.swr
	}
	e.hard = now + int64(total)
	return e, total
}

// encode renders e as an envelope for Redis.
func (c *Cache[V]) encode(e *entry[V]) ([]byte, error) {
	env := envelope{
		soft:  e.soft / 1e3,
		hard:  e.hard / 1e3,
		delta: uint32(min(e.delta/1e3, math.MaxUint32)),
		nonce: e.nonce,
	}
	if e.notFound {
		env.flags |= flagNotFound
	} else {
		b, err := c.cfg.codec.Marshal(e.v)
		if err != nil {
			return nil, fmt.Errorf("cache: encode: %w", err)
		}
		e.size = uint32(min(len(b), math.MaxUint32))
		if c.cfg.compressor != nil && len(b) >= c.cfg.threshold {
			z, err := c.cfg.compressor.Encode(b)
			if err != nil {
				return nil, fmt.Errorf("cache: compress: %w", err)
			}
			b = z
			env.flags |= flagCompressed
		}
		env.payload = b
	}
	return env.marshal(), nil
}

// decode turns a value envelope into an entry.
func (c *Cache[V]) decode(env *envelope) (entry[V], error) {
	e := entry[V]{
		soft:     env.soft * 1e3,
		hard:     env.hard * 1e3,
		delta:    int64(env.delta) * 1e3,
		nonce:    env.nonce,
		notFound: env.notFound(),
	}
	if e.notFound {
		return e, nil
	}
	b := env.payload
	if env.flags&flagCompressed != 0 {
		if c.cfg.compressor == nil {
			return e, errors.New("cache: compressed value but no Compressor configured")
		}
		var err error
		if b, err = c.cfg.compressor.Decode(b); err != nil {
			return e, fmt.Errorf("cache: decompress: %w", err)
		}
	}
	e.size = uint32(min(len(b), math.MaxUint32))
	if err := c.cfg.codec.Unmarshal(b, &e.v); err != nil {
		return e, fmt.Errorf("cache: decode: %w", err)
	}
	return e, nil
}

func nonzeroNonce() uint64 {
	for {
		if n := rand.Uint64(); n != 0 {
			return n
		}
	}
}
