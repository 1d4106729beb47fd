package cache

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
)

// entry is a value as the local tier holds it: V itself (a local hit decodes
// nothing) and the metadata of its envelope. Times are Unix nanoseconds.
type entry[V any] struct {
	v        V
	soft     int64  // fresh before soft
	hard     int64  // served (stale) before hard; capped by the local TTL in the local tier
	delta    int64  // recompute cost, ns
	nonce    uint64 // version of the Redis envelope it mirrors (0 if none)
	size     uint32 // weight for WithLocalBytes
	notFound bool
}

// localTier is the bounded in-process tier, a thin layer over otter. It is
// safe for concurrent use.
type localTier[V any] struct {
	c   *otter.Cache[string, entry[V]]
	ttl time.Duration // cap on an entry's lifetime; 0 = none
	g   *guard
	// writing counts the stores in progress: otter's maintenance that one
	// of them triggers runs on its goroutine (see execute).
	writing atomic.Int32
}

// execute is otter's executor. Maintenance submitted while a store is in
// progress runs on the calling goroutine: after a miss's store that saves a
// goroutine start and wake-up. Other tasks (the maintenance after reads) run
// on a new goroutine, otter's default, so that a local hit stays a lookup.
// The tier uses no callback that could call back into otter (no OnDeletion,
// Compute or loader), which is what makes running maintenance inline safe.
func (l *localTier[V]) execute(fn func()) {
	if l.writing.Load() > 0 {
		fn()
		return
	}
	go fn()
}

func newLocalTier[V any](cfg *config, withRedis bool) (*localTier[V], error) {
	ttl := cfg.localTTL
	if ttl == 0 && withRedis {
		ttl = DefaultLocalTTL
	}
	l := &localTier[V]{ttl: ttl, g: newGuard()}
	var err error
	opts := &otter.Options[string, entry[V]]{
		Logger:   silentLogger{},
		Executor: l.execute,
		// Entries are stored with their remaining lifetime already capped
		// (see set); otter removes them then. Reads check expiry themselves.
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, entry[V]]) time.Duration {
			return time.Duration(e.Value.hard - time.Now().UnixNano())
		}),
	}
	if cfg.clockSet {
		opts.Clock = funcClock(cfg.now)
	}
	if cfg.localBytes > 0 {
		opts.MaximumWeight = uint64(cfg.localBytes)
		opts.Weigher = func(_ string, e entry[V]) uint32 { return e.size }
	} else {
		opts.MaximumSize = cfg.localMax
	}
	l.c, err = otter.New(opts)
	if err != nil {
		return nil, err
	}
	return l, nil
}

func (l *localTier[V]) get(key string) (entry[V], bool) { return l.c.GetIfPresent(key) }

// getNow is get that also returns the time of the read (Unix ns), taken by
// otter for its own expiry check (its start wall time plus monotonic time
// elapsed, Unix ns): a local hit reads the clock once.
func (l *localTier[V]) getNow(key string) (entry[V], int64, bool) {
	e, ok := l.c.GetEntry(key)
	return e.Value, e.SnapshotAtNano, ok
}

// set stores e, capping its lifetime to the local TTL; now is Unix ns.
func (l *localTier[V]) set(key string, e entry[V], now int64) {
	if l.ttl > 0 && e.hard > now+int64(l.ttl) {
		e.hard = now + int64(l.ttl)
	}
	if e.hard <= now {
		l.c.Invalidate(key)
		return
	}
	l.writing.Add(1)
	l.c.Set(key, e)
	l.writing.Add(-1)
}

// stamp is taken before a Redis command whose answer store may keep.
func (l *localTier[V]) stamp(key string) stamp { return l.g.stamp(key) }

// store is set for a value read from (or written to) Redis by a command
// begun at s: skipped, or undone, if an invalidation of its stripe was
// counted since (see guard.go).
func (l *localTier[V]) store(key string, e entry[V], now int64, s stamp) {
	if l.g.moved(s) {
		return
	}
	l.set(key, e, now)
	if l.g.moved(s) {
		l.c.Invalidate(key)
	}
}

// wrote counts this replica's write of key to Redis, begun at s, and returns
// the stamp to store the written value with.
func (l *localTier[V]) wrote(s stamp) stamp { return l.g.wrote(s) }

// invalidate drops key, counting the invalidation for stores in flight.
func (l *localTier[V]) invalidate(key string) {
	l.g.invalidated(key)
	l.c.Invalidate(key)
}

// clear drops every key, counting an invalidation of each.
func (l *localTier[V]) clear() {
	l.g.invalidatedAll()
	l.c.InvalidateAll()
}

func (l *localTier[V]) del(key string) { l.c.Invalidate(key) }
func (l *localTier[V]) len() int       { return l.c.EstimatedSize() }
func (l *localTier[V]) close()         { l.c.StopAllGoroutines() }

// funcClock adapts an injected clock to otter.
type funcClock func() time.Time

func (f funcClock) NowNano() int64                        { return f().UnixNano() }
func (f funcClock) Tick(d time.Duration) <-chan time.Time { return nil }

type silentLogger struct{}

func (silentLogger) Warn(context.Context, string, error)  {}
func (silentLogger) Error(context.Context, string, error) {}
