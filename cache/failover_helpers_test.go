package cache_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/cache"
	"github.com/outrigger-dev/outrigger/internal/redistest"
)

// Helpers of the failover tests (failover_test.go): a history of writes to a
// source of truth (cache-aside: the source is updated, then the cache is Set
// or Deleted) and of reads through replicas, checked for stale reads.

const (
	faultDialTimeout = 500 * time.Millisecond
	faultIOTimeout   = 300 * time.Millisecond
	historyKeys      = 16
)

func faultSentinelClient(t *testing.T, s *redistest.Sentinel) redis.UniversalClient {
	return s.Client(t, func(o *redis.FailoverOptions) {
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = faultDialTimeout, faultIOTimeout, faultIOTimeout
		o.MaxRetries = 1
	})
}

func faultClusterClient(t *testing.T, c *redistest.Cluster) redis.UniversalClient {
	return c.Client(t, func(o *redis.ClusterOptions) {
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = faultDialTimeout, faultIOTimeout, faultIOTimeout
		o.MaxRetries = 1
		// go-redis does not reload the slot map when a dead master refuses
		// connections; the default interval is a minute.
		o.ClusterStateReloadInterval = 200 * time.Millisecond
	})
}

// faultCacheOpts are the cache options of the failover tests: a breaker that
// reopens quickly, a local TTL far longer than a test (only invalidation or a
// flush can drop a local entry), a short lease wait.
func faultCacheOpts(prefix string, local bool) []cache.Option {
	opts := []cache.Option{cache.WithPrefix(prefix), cache.WithBreaker(3, 500*time.Millisecond),
		cache.WithTTL(time.Hour, 0), cache.WithLease(3*time.Second, time.Second)}
	if local {
		opts = append(opts, cache.WithLocal(1000, time.Hour))
	}
	return opts
}

// history is the source of truth and what the cache acknowledged: version
// truth[i] of key i is written to the source before the cache is told;
// acked[i] is the last version whose Set or Delete returned nil.
type history struct {
	truth [historyKeys]atomic.Int64
	acked [historyKeys]atomic.Int64

	reads, stale, readErrs atomic.Int64
	writes, writeErrs      atomic.Int64
	firstErr               atomic.Value
}

func hkey(i int) string { return "h" + strconv.Itoa(i) }

func (h *history) loader(i int) func(context.Context) (int64, error) {
	return func(context.Context) (int64, error) { return h.truth[i].Load(), nil }
}

// write updates key i in the source and then Sets it (or Deletes it, every
// third version) through c.
func (h *history) write(ctx context.Context, c *cache.Cache[int64], i int) {
	v := h.truth[i].Add(1)
	var err error
	if v%3 == 0 {
		err = c.Delete(ctx, hkey(i))
	} else {
		err = c.Set(ctx, hkey(i), v)
	}
	h.writes.Add(1)
	if err != nil {
		h.writeErrs.Add(1)
		return
	}
	for {
		a := h.acked[i].Load()
		if a >= v || h.acked[i].CompareAndSwap(a, v) {
			return
		}
	}
}

// read Fetches key i through c: stale when older than the version
// acknowledged before the read began.
func (h *history) read(ctx context.Context, c *cache.Cache[int64], i int) {
	want := h.acked[i].Load()
	v, err := c.Fetch(ctx, hkey(i), h.loader(i))
	h.reads.Add(1)
	if err != nil {
		h.readErrs.Add(1)
		h.firstErr.CompareAndSwap(nil, err)
		return
	}
	if v < want {
		h.stale.Add(1)
	}
}

// workload runs one writer replica and readers until stop.
type workload struct {
	h     *history
	stopc chan struct{}
	wg    sync.WaitGroup

	wmu  sync.Mutex // held by the writer for each write, and by hold
	held atomic.Bool
}

// hold stops the writer (after its write in flight); release lets it go on.
func (w *workload) hold() {
	if w.held.CompareAndSwap(false, true) {
		w.wmu.Lock()
	}
}

func (w *workload) release() {
	if w.held.CompareAndSwap(true, false) {
		w.wmu.Unlock()
	}
}

func startWorkload(ctx context.Context, h *history, writer *cache.Cache[int64], readers []*cache.Cache[int64]) *workload {
	w := &workload{h: h, stopc: make(chan struct{})}
	loop := func(f func(n int)) {
		w.wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-w.stopc:
					return
				case <-ctx.Done():
					return
				default:
				}
				f(n)
				time.Sleep(2 * time.Millisecond)
			}
		})
	}
	loop(func(n int) {
		w.wmu.Lock()
		defer w.wmu.Unlock()
		h.write(ctx, writer, n%historyKeys)
	})
	for _, r := range readers {
		loop(func(n int) { h.read(ctx, r, (n*7)%historyKeys) })
	}
	return w
}

func (w *workload) waitReads(t *testing.T, n int64) {
	t.Helper()
	target := w.h.reads.Load() + n
	require.Eventually(t, func() bool { return w.h.reads.Load() >= target }, 60*time.Second, 5*time.Millisecond)
}

func (w *workload) stop() {
	w.release()
	close(w.stopc)
	w.wg.Wait()
}

// cacheSummary is one scenario's counts.
type cacheSummary struct {
	reads, stale, readErrs, writes, writeErrs int64
	staleAfter                                int // keys whose acknowledged write was undone, after recovery
	recovery                                  time.Duration
	flushes                                   uint64
	extra                                     string
}

func (s cacheSummary) String() string {
	return fmt.Sprintf("reads=%d stale-reads=%d caller-errors=%d writes=%d write-errors=%d lost-writes-after-recovery=%d recovery=%v local-flushes=%d %s",
		s.reads, s.stale, s.readErrs, s.writes, s.writeErrs, s.staleAfter, s.recovery.Round(time.Millisecond), s.flushes, s.extra)
}

// cacheTotals aggregates repeated runs.
type cacheTotals struct {
	runs                                    int
	stale, readErrs, staleAfter, staleAfMax int64
	recoveryMax                             time.Duration
}

func (a *cacheTotals) add(s cacheSummary) {
	a.runs++
	a.stale += s.stale
	a.readErrs += s.readErrs
	a.staleAfter += int64(s.staleAfter)
	a.staleAfMax = max(a.staleAfMax, int64(s.staleAfter))
	a.recoveryMax = max(a.recoveryMax, s.recovery)
}

func (a *cacheTotals) log(t *testing.T, name string) {
	t.Logf("%s: TOTAL over %d runs: stale-reads=%d caller-errors=%d lost-writes-after-recovery=%d (worst run %d) max-recovery=%v",
		name, a.runs, a.stale, a.readErrs, a.staleAfter, a.staleAfMax, a.recoveryMax.Round(time.Millisecond))
}

// repeats is how many times a long fault test repeats its scenario.
func repeats() int {
	if redistest.Long() {
		return 5
	}
	return 1
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
