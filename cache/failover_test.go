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
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/cache"
	"github.com/outrigger-dev/outrigger/internal/redistest"
)

// Failover fault tests (issue 11). Each scenario runs a writer replica
// (cache-aside: it updates a source of truth, then Sets or Deletes the key)
// and two reader replicas (one with a local tier, one Redis-only) fetching
// the same keys through a loader that reads the source, while a fault hits
// Redis. It logs one summary line: stale reads (a Fetch older than the
// write acknowledged before it began), caller errors, acknowledged writes
// undone after recovery (a Set or Delete lost with the failover: the old
// value is back), the recovery time (from the fault to a Set on one replica
// being read by the others, through Redis and invalidation) and the reader's
// local-tier flushes. The assertions are the package's promises: Fetch never
// fails while the loader answers, and invalidation works again after the
// fault. OUTRIGGER_LONG=1 repeats every scenario and adds variants;
// RELIABILITY.md has the measured figures.

// cacheFault runs one scenario with caches on clients from mk. fault returns
// once the deployment is usable again.
//
// The writer runs through the fault (its writes to a primary about to be
// demoted show as stale reads) and is held after recovery, when the
// acknowledged writes are checked. A forced-lag fault calls w.hold just before
// it kills the primary instead, so that the writes it loses are checked
// before the writer overwrites them.
func cacheFault(t *testing.T, ctx context.Context, mk func() redis.UniversalClient, prefix string, fault func(w *workload) error) cacheSummary {
	t.Helper()
	newCache := func(local bool) *cache.Cache[int64] {
		c, err := cache.New[int64](append(faultCacheOpts(prefix, local), cache.WithRedis(mk()))...)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	writer, r1, r2 := newCache(true), newCache(true), newCache(false)
	h := &history{}
	w := startWorkload(ctx, h, writer, []*cache.Cache[int64]{r1, r2})
	stopped := false
	defer func() {
		if !stopped {
			w.stop()
		}
	}()
	w.waitReads(t, 300)
	flushes0 := r1.Stats().LocalFlushes
	start := time.Now()
	require.NoError(t, fault(w))
	// Recovered: a Set on the writer is read by both readers (r1 through
	// its local tier: the invalidation subscription works again).
	probe := int64(0)
	seen := func(n int64) bool {
		for _, c := range []*cache.Cache[int64]{r1, r2} {
			v, ok, err := c.Get(ctx, "probe")
			if err != nil || !ok || v != n {
				return false
			}
		}
		return true
	}
	require.Eventually(t, func() bool {
		probe++
		if writer.Set(ctx, "probe", probe) != nil {
			return false
		}
		return assert.Eventually(&quiet{}, func() bool { return seen(probe) }, 2*time.Second, 5*time.Millisecond)
	}, 60*time.Second, 10*time.Millisecond, "a Set is not seen by the other replicas after the fault")
	recovery := time.Since(start)
	w.hold()
	// Every invalidation published before this probe has been delivered.
	probe++
	require.NoError(t, writer.Set(ctx, "probe", probe))
	require.Eventually(t, func() bool { return seen(probe) }, 20*time.Second, 5*time.Millisecond)

	// Acknowledged writes undone: Redis (read by a fresh replica) or the
	// local reader holds a version older than the last acknowledged one.
	// The writer is held, so nothing overwrote them since.
	check, err := cache.New[int64](cache.WithRedis(mk()), cache.WithPrefix(prefix), cache.WithInvalidation(false))
	require.NoError(t, err)
	defer check.Close()
	lost, inRedis, inLocal := 0, 0, 0 // keys undone: in all, in Redis, in r1's local tier only
	for i := range historyKeys {
		a := h.acked[i].Load()
		v, ok, err := check.Get(ctx, hkey(i))
		require.NoError(t, err)
		l, err := r1.Fetch(ctx, hkey(i), h.loader(i))
		require.NoError(t, err)
		switch {
		case ok && v < a:
			lost++
			inRedis++
		case l < a:
			lost++
			inLocal++
		}
	}
	w.release()
	w.waitReads(t, 300)
	w.stop()
	stopped = true
	sum := cacheSummary{
		reads: h.reads.Load(), stale: h.stale.Load(), readErrs: h.readErrs.Load(),
		writes: h.writes.Load(), writeErrs: h.writeErrs.Load(),
		staleAfter: lost, recovery: recovery, flushes: r1.Stats().LocalFlushes - flushes0,
		extra: fmt.Sprintf("(lost in redis=%d, stale in the reader's local tier only=%d)", inRedis, inLocal),
	}
	require.Zero(t, sum.readErrs, "Fetch failed while the loader could answer (first: %v)", h.firstErr.Load())
	return sum
}

// quiet is a testing.T for an inner assert.Eventually whose failure is
// only a retry of the outer one.
type quiet struct{}

func (*quiet) Errorf(string, ...any) {}

// TestFailoverSentinel: no fault (the baseline of stale reads from
// invalidation latency and cache-aside races), a coordinated SENTINEL
// FAILOVER, a forced-lag failover and a zombie primary, on one Sentinel
// deployment.
func TestFailoverSentinel(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Sentinel deployment and fails it over")
	}
	// no leakCheck: it cannot tell this test's goroutines from those of
	// the parallel TestFailoverCluster (every cache is closed by cleanup)
	t.Parallel()
	ctx := ctxT(t, 10*time.Minute)
	s := redistest.StartSentinel(t)
	mk := func() redis.UniversalClient { return faultSentinelClient(t, s) }

	t.Run("fault=none", func(t *testing.T) {
		var tot cacheTotals
		for i := range repeats() {
			sum := cacheFault(t, ctx, mk, redistest.NewPrefix(), func(*workload) error { time.Sleep(time.Second); return nil })
			t.Logf("baseline run %d: %v", i, sum)
			tot.add(sum)
		}
		tot.log(t, "baseline")
	})
	t.Run("fault=failover", func(t *testing.T) {
		var tot cacheTotals
		for i := range repeats() {
			sum := cacheFault(t, ctx, mk, redistest.NewPrefix(), func(*workload) error { _, err := s.Failover(bounded(t, ctx)); return err })
			t.Logf("failover run %d: %v", i, sum)
			tot.add(sum)
		}
		tot.log(t, "failover")
	})
	t.Run("fault=forced-lag", func(t *testing.T) {
		var tot cacheTotals
		for i := range repeats() {
			var lagWrites int64
			sum := cacheFault(t, ctx, mk, redistest.NewPrefix(), func(w *workload) error {
				lag, err := s.BeginLag(bounded(t, ctx))
				if err != nil {
					return err
				}
				h := w.h
				w0 := h.writes.Load() - h.writeErrs.Load()
				time.Sleep(time.Second) // the writer's Sets of this second are lost
				w.hold()
				lagWrites = h.writes.Load() - h.writeErrs.Load() - w0
				_, err = lag.FailOver(bounded(t, ctx))
				return err
			})
			t.Logf("forced-lag run %d: %v acked-writes-during-lag=%d", i, sum, lagWrites)
			// The primary was killed: the subscription dropped and the
			// reader's local tier was flushed.
			assert.Positive(t, sum.flushes, "local tier not flushed after the subscription dropped")
			// Not a promise: proof that the fault was exercised (writes
			// acknowledged by the primary that is then killed).
			assert.Positive(t, lagWrites, "no write acknowledged during the lag: the fault was not exercised")
			tot.add(sum)
		}
		tot.log(t, "forced-lag")
	})
	t.Run("fault=zombie", func(t *testing.T) {
		var tot cacheTotals
		zlost := 0
		for i := range repeats() {
			sum, acked, lost := cacheZombie(t, ctx, s, mk)
			t.Logf("zombie run %d: %v zombie-acked-sets=%d zombie-sets-lost=%d", i, sum, acked, lost)
			tot.add(sum)
			zlost += lost
		}
		tot.log(t, "zombie")
		t.Logf("zombie: acknowledged Sets lost on the zombie over %d runs: %d", repeats(), zlost)
	})
}

// TestFailoverSentinelZombieMinReplicas (OUTRIGGER_LONG): with
// min-replicas-to-write 1 the zombie refuses writes: a Set through a client
// still pointing at it fails (the caller is told) instead of being lost.
func TestFailoverSentinelZombieMinReplicas(t *testing.T) {
	if !redistest.Long() {
		t.Skip("OUTRIGGER_LONG: a second Sentinel deployment")
	}
	t.Parallel()
	ctx := ctxT(t, 10*time.Minute)
	s := redistest.StartSentinel(t, redistest.WithMinReplicasToWrite(1, time.Second))
	mk := func() redis.UniversalClient { return faultSentinelClient(t, s) }
	var tot cacheTotals
	for i := range repeats() {
		sum, acked, lost := cacheZombie(t, ctx, s, mk)
		t.Logf("zombie+min-replicas run %d: %v zombie-acked-sets=%d zombie-sets-lost=%d", i, sum, acked, lost)
		assert.Zero(t, lost, "acknowledged Sets lost on a zombie with min-replicas-to-write")
		tot.add(sum)
	}
	tot.log(t, "zombie+min-replicas")
}

// cacheZombie pauses the primary until the sentinels replace it and wakes
// it. Besides the history workload (Sentinel clients), a stale replica with
// a plain client to the old primary Sets keys of its own from the wake until
// the demotion; it returns how many of those Sets were acknowledged and how
// many are not in Redis after the demotion (lost with the zombie).
func cacheZombie(t *testing.T, ctx context.Context, s *redistest.Sentinel, mk func() redis.UniversalClient) (cacheSummary, int, int) {
	t.Helper()
	prefix := redistest.NewPrefix()
	var acked []int
	sum := cacheFault(t, ctx, mk, prefix, func(*workload) error {
		z, err := s.BeginZombie(bounded(t, ctx))
		if err != nil {
			return err
		}
		if err := z.Wake(); err != nil {
			return err
		}
		stale, err := cache.New[int64](cache.WithRedis(z.Old().Client(t, func(o *redis.Options) {
			o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.MaxRetries = faultDialTimeout, faultIOTimeout, faultIOTimeout, 1
		})), cache.WithPrefix(prefix))
		if err != nil {
			return err
		}
		defer stale.Close()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if stale.Set(ctx, "z"+strconv.Itoa(i), int64(i)) == nil {
					acked = append(acked, i)
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
		err = z.WaitDemoted(bounded(t, ctx))
		close(stop)
		wg.Wait()
		return err
	})
	check, err := cache.New[int64](cache.WithRedis(mk()), cache.WithPrefix(prefix), cache.WithInvalidation(false))
	require.NoError(t, err)
	defer check.Close()
	lost := 0
	for _, i := range acked {
		v, ok, err := check.Get(ctx, "z"+strconv.Itoa(i))
		require.NoError(t, err)
		if !ok || v != int64(i) {
			lost++
		}
	}
	return sum, len(acked), lost
}

// TestFailoverCluster: the master of the shard holding the keys crashes and
// its replica takes over (CLUSTER FAILOVER TAKEOVER); OUTRIGGER_LONG adds a
// coordinated CLUSTER FAILOVER and a forced-lag takeover.
func TestFailoverCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster and fails a shard over")
	}
	t.Parallel()
	ctx := ctxT(t, 10*time.Minute)
	c := redistest.StartCluster(t, redistest.WithReplicas(1))
	type fault struct {
		name string
		run  func(w *workload) error
	}
	faults := []fault{{"takeover", func(*workload) error {
		if err := c.TakeoverShard(bounded(t, ctx), 0); err != nil {
			return err
		}
		return c.RejoinNode(bounded(t, ctx), c.Replicas[0][0])
	}}}
	if redistest.Long() {
		faults = append(faults,
			fault{"failover", func(*workload) error { return c.FailoverShard(bounded(t, ctx), 0) }},
			fault{"forced-lag", func(w *workload) error {
				lag, err := c.BeginShardLag(bounded(t, ctx), 0)
				if err != nil {
					return err
				}
				time.Sleep(time.Second)
				w.hold()
				if _, err := lag.FailOver(bounded(t, ctx)); err != nil {
					return err
				}
				return c.RejoinNode(bounded(t, ctx), c.Replicas[0][0])
			}})
	}
	mk := func() redis.UniversalClient { return faultClusterClient(t, c) }
	for _, f := range faults {
		t.Run("fault="+f.name, func(t *testing.T) {
			var tot cacheTotals
			for i := range repeats() {
				// every key (and the channel) hashes to shard 0
				prefix := redistest.NewPrefix() + c.ShardTag(0) + ":"
				sum := cacheFault(t, ctx, mk, prefix, f.run)
				t.Logf("cluster %s run %d: %v", f.name, i, sum)
				tot.add(sum)
			}
			tot.log(t, "cluster "+f.name)
		})
	}
}

// TestPausePastReadTimeout: Redis is paused (SIGSTOP) past the clients'
// read timeout while replica A fetches cold keys, so that go-redis re-sends
// its lease requests and Redis runs every copy when it resumes. A's callers
// get the loader's values; afterwards replica B fetches the same keys from
// many goroutines: no error, one load per key at most (stampede protection
// holds), and it finishes: a lease left behind by a copy that ran after A
// gave up is waited out within the lease bound, never forever.
func TestPausePastReadTimeout(t *testing.T) {
	leakCheck(t)
	ctx := ctxT(t, 5*time.Minute)
	srv := redistest.StartServer(t)
	mkClient := func() *redis.Client {
		return srv.Client(t, func(o *redis.Options) {
			o.MaxRetries, o.MinRetryBackoff, o.MaxRetryBackoff = 2, time.Millisecond, 2*time.Millisecond
			o.ReadTimeout, o.WriteTimeout, o.DialTimeout, o.PoolSize = 150*time.Millisecond, 150*time.Millisecond, 500*time.Millisecond, 8
		})
	}
	const keys = 8
	// With the breaker on, it opens on the first timeouts and A stops
	// sending; with it off every Redis call of A is sent, times out and is
	// re-sent, and the copies (lease requests included) run on resume.
	for _, breaker := range []bool{true, false} {
		for run := range repeats() {
			prefix := redistest.NewPrefix()
			newCache := func() *cache.Cache[int64] {
				opts := append(faultCacheOpts(prefix, true), cache.WithRedis(mkClient()))
				if !breaker {
					opts = append(opts, cache.WithBreaker(0, 0))
				}
				c, err := cache.New[int64](opts...)
				require.NoError(t, err)
				t.Cleanup(func() { _ = c.Close() })
				return c
			}
			a := newCache()
			// open the pool's connections, so the copies go out on live ones
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Go(func() { _, _, _ = a.Get(ctx, "warm"+strconv.Itoa(i)) })
			}
			wg.Wait()

			// A takes the leases and loads; Redis is paused mid-load, so
			// A's writes (value over lease, one script each) time out and
			// are re-sent on the live connections.
			var aErrs atomic.Int64
			var loading sync.WaitGroup
			loading.Add(keys)
			paused := make(chan struct{})
			for i := range keys {
				wg.Go(func() {
					v, err := a.Fetch(ctx, "p"+strconv.Itoa(i), func(context.Context) (int64, error) {
						loading.Done()
						<-paused
						return int64(i), nil
					})
					if err != nil || v != int64(i) {
						aErrs.Add(1)
					}
				})
			}
			loading.Wait()
			require.NoError(t, srv.Pause())
			close(paused)
			wg.Wait()
			require.NoError(t, srv.Resume())
			require.Zero(t, aErrs.Load(), "Fetch failed while Redis was paused")

			// The copies A's client sent run now. Count the leases left
			// (the writes never reached Redis) and the values written.
			raw := mkClient()
			leases, values := 0, 0
			require.Eventually(t, func() bool { return raw.Ping(ctx).Err() == nil }, 20*time.Second, 10*time.Millisecond)
			for i := range keys {
				b, err := raw.Get(ctx, prefix+"p"+strconv.Itoa(i)).Bytes()
				if err == nil && len(b) >= 30 {
					if b[1]&4 != 0 {
						leases++
					} else {
						values++
					}
				}
			}

			b := newCache()
			var loads [keys]atomic.Int32
			var bErrs atomic.Int64
			start := time.Now()
			for i := range keys {
				for range 8 {
					wg.Go(func() {
						v, err := b.Fetch(ctx, "p"+strconv.Itoa(i), func(context.Context) (int64, error) {
							loads[i].Add(1)
							return int64(i), nil
						})
						if err != nil || v != int64(i) {
							bErrs.Add(1)
						}
					})
				}
			}
			wg.Wait()
			took := time.Since(start)
			maxLoads := int32(0)
			for i := range keys {
				maxLoads = max(maxLoads, loads[i].Load())
			}
			t.Logf("pause breaker=%v run %d: caller-errors=%d (during pause) + %d (after) after-resume: leases-left=%d values-written-by-replayed-copies=%d replica-B lease-waits=%d max-loads-per-key=%d B-took=%v",
				breaker, run, aErrs.Load(), bErrs.Load(), leases, values, b.Stats().LeaseWaits, maxLoads, took.Round(time.Millisecond))
			require.Zero(t, bErrs.Load(), "Fetch failed after the pause")
			require.LessOrEqual(t, maxLoads, int32(1), "more than one load of a key in one replica")
		}
	}
}

// TestLeaseHolderPartitioned: replica A takes the load lease of a key and,
// mid-load, loses Redis (its connections are blackholed by a proxy) so it
// can neither write its value nor release the lease. Replica B's callers
// finish anyway, within the lease wait, loading once; A's caller gets its
// loader's value without an error.
func TestLeaseHolderPartitioned(t *testing.T) {
	leakCheck(t)
	ctx := ctxT(t, 5*time.Minute)
	srv := redistest.StartServer(t)
	const wait = 500 * time.Millisecond
	for run := range repeats() {
		prefix := redistest.NewPrefix()
		proxy := redistest.StartProxy(t, srv.Addr())
		ca := redis.NewClient(&redis.Options{Addr: proxy.Addr(), MaxRetries: -1,
			DialTimeout: faultDialTimeout, ReadTimeout: faultIOTimeout, WriteTimeout: faultIOTimeout})
		t.Cleanup(func() { _ = ca.Close() })
		a, err := cache.New[int64](cache.WithRedis(ca), cache.WithPrefix(prefix), cache.WithLease(time.Minute, wait),
			cache.WithBreaker(3, 500*time.Millisecond))
		require.NoError(t, err)
		b, err := cache.New[int64](cache.WithRedis(srv.Client(t)), cache.WithPrefix(prefix), cache.WithLease(time.Minute, wait))
		require.NoError(t, err)

		started, release := make(chan struct{}), make(chan struct{})
		aDone := make(chan error, 1)
		go func() {
			v, err := a.Fetch(ctx, "k", func(context.Context) (int64, error) {
				close(started)
				<-release
				return 1, nil
			})
			if err == nil && v != 1 {
				err = fmt.Errorf("A got %d", v)
			}
			aDone <- err
		}()
		<-started
		proxy.Blackhole(true) // A's Redis vanishes mid-load

		var bLoads atomic.Int32
		var bErrs atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range 10 {
			wg.Go(func() {
				v, err := b.Fetch(ctx, "k", func(context.Context) (int64, error) { bLoads.Add(1); return 2, nil })
				if err != nil || v != 2 {
					bErrs.Add(1)
				}
			})
		}
		wg.Wait()
		took := time.Since(start)
		close(release)
		aErr := <-aDone
		t.Logf("partitioned-holder run %d: B-caller-errors=%d B-loads=%d B-took=%v (lease wait %v) B-lease-waits=%d A-error=%v",
			run, bErrs.Load(), bLoads.Load(), took.Round(time.Millisecond), wait, b.Stats().LeaseWaits, aErr)
		require.Zero(t, bErrs.Load())
		require.Equal(t, int32(1), bLoads.Load(), "B loads once after the holder vanished")
		require.Equal(t, uint64(1), b.Stats().LeaseWaits, "B did not wait for A's lease")
		require.NoError(t, aErr, "the partitioned holder's caller must get its value")
		// B's value replaced the orphaned lease.
		v, ok, err := b.Get(ctx, "k")
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, int64(2), v)
		require.NoError(t, a.Close())
		require.NoError(t, b.Close())
		require.NoError(t, proxy.Close())
	}
}

// bounded returns ctx limited to two minutes: every step of a fault is
// bounded, so a harness step that never converges fails the test instead
// of hanging it.
func bounded(t *testing.T, ctx context.Context) context.Context {
	c, cancel := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancel)
	return c
}
