package lock_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/historytest"
	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/lock"
)

// TestFailover runs the lock's failover, pause and restart fault tests
// concurrently (they mostly wait on Redis), then checks for leaks. Each
// logs a one-line summary of its counts ("summary: ..."), quoted in
// RELIABILITY.md. OUTRIGGER_LONG=1 repeats each fault more often.
func TestFailover(t *testing.T) {
	leakCheck(t)
	t.Run("SentinelForcedLag", testSentinelForcedLag)
	t.Run("SentinelZombie", testSentinelZombie)
	t.Run("ClusterShard", testClusterShard)
	t.Run("PauseRetries", testPauseRetries)
	t.Run("RestartEmpty", testRestartEmpty)
	t.Run("HolderPause", testHolderPause)
}

var waitModes = []struct {
	name string
	opts []lock.Option
}{
	{"wait=0", nil},
	{"wait=1", []lock.Option{lock.WithWaitReplicas(1, 300*time.Millisecond)}},
}

// testSentinelForcedLag: a holder acquires locks while the replica lags,
// then the primary dies and the lagging replica is promoted, so those
// locks are gone. Without WAIT a second client acquires them while the
// first still believes it holds them (double grants), but its tokens are
// larger (TIME-derived) and the fence rejects the old holder's writes. With
// WithWaitReplicas(1) the acquires during the lag fail instead, and an
// acquire acknowledged before the lag survives.
func testSentinelForcedLag(t *testing.T) {
	t.Parallel()
	for _, mode := range waitModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			n := runs(1, 5)
			ctx := ctxFor(t, time.Duration(n)*40*time.Second+30*time.Second)
			s := redistest.StartSentinel(t)
			newLocker := func() *lock.RedisLocker {
				l, err := lock.New(s.Client(t, fastSentinel), append([]lock.Option{lock.WithPrefix("lag:")}, mode.opts...)...)
				require.NoError(t, err)
				return noInvalid(t, l)
			}
			a, b, probe := newLocker(), newLocker(), newLocker()
			w := newWriter(t)
			var c tally
			const keys = 5
			for round := range n {
				key := func(j int) string { return fmt.Sprintf("r%d-k%d", round, j) }
				durable, err := a.Acquire(ctx, fmt.Sprintf("r%d-durable", round), time.Minute)
				require.NoError(t, err, "acquire before the lag")

				lag, err := s.BeginLag(ctx)
				require.NoError(t, err)
				held := map[int]*lock.Lock{}
				for j := range keys {
					lk, err := a.TryAcquire(ctx, key(j), time.Minute)
					if err != nil {
						require.ErrorIs(t, err, lock.ErrReplicas, "only WAIT makes an acquire fail while the primary is up")
						c.refused.Add(1)
						continue
					}
					held[j] = lk
					require.NoError(t, w.write(ctx, "a", key(j), lk.Token(), "a-1"))
				}
				if mode.opts != nil {
					require.Empty(t, held, "WAIT acknowledged an acquire the paused replica never saw")
				} else {
					require.Len(t, held, keys)
				}

				p := startProber(t, probe)
				killed := time.Now()
				_, err = lag.FailOver(ctx)
				require.NoError(t, err)
				rec, err := p.stop(killed)
				require.NoError(t, err)
				c.recovered(rec)

				// The acquire acknowledged before the lag (replicated) survives.
				err = retryNet(ctx, 20*time.Second, func(ctx context.Context) error {
					_, err := b.TryAcquire(ctx, durable.Key(), time.Minute)
					return err
				})
				if !errors.Is(err, lock.ErrNotAcquired) {
					c.ackedLost.Add(1)
					t.Errorf("round %d: lock acquired before the lag: second TryAcquire got %v, want ErrNotAcquired", round, err)
				}
				require.NoError(t, retryNet(ctx, 20*time.Second, func(ctx context.Context) error { return durable.Refresh(ctx, time.Minute) }))

				for j, old := range held {
					var nw *lock.Lock
					err := retryNet(ctx, 20*time.Second, func(ctx context.Context) (err error) {
						nw, err = b.TryAcquire(ctx, key(j), time.Minute)
						return err
					})
					if errors.Is(err, lock.ErrNotAcquired) {
						continue // the lock survived (cannot happen after a forced lag, but is not a fault)
					}
					require.NoError(t, err)
					if believesHeld(old, time.Now()) {
						c.doubleGrants.Add(1)
					}
					if nw.Token() <= old.Token() {
						c.nonMonotonic.Add(1)
					}
					require.NoError(t, w.write(ctx, "b", key(j), nw.Token(), "b-1"), "the new holder's write")
					err = w.write(ctx, "a", key(j), old.Token(), "a-2")
					require.ErrorIs(t, err, lock.ErrStaleToken, "the old holder's write after the new holder's")
					c.staleRejected.Add(1)
					require.ErrorIs(t, retryNet(ctx, 10*time.Second, func(ctx context.Context) error { return old.Refresh(ctx, time.Minute) }),
						lock.ErrLockLost, "the old holder's refresh must not re-create its lock")
					_ = nw.Release(ctx)
				}
				_ = durable.Release(ctx)
			}
			rep := w.h.check()
			require.NoError(t, rep.Err())
			require.Zero(t, c.nonMonotonic.Load(), "tokens after the failover must be larger")
			if mode.opts != nil {
				require.Zero(t, c.doubleGrants.Load())
			}
			t.Logf("summary: sentinel forced-lag %s, %d rounds × %d locks: %v; fenced writes: %s", mode.name, n, keys, &c, rep)
		})
	}
}

// testSentinelZombie: the primary is paused past down-after, the sentinels
// promote the replica, and the old primary wakes up still answering as a
// primary to a client that points at it (a holder with a stale view). The
// holder's refresh and a new acquire on the zombie succeed there, and are
// lost: a client of the new primary gets both locks while the holder still
// believes it holds them. With min-replicas-to-write the zombie refuses
// them, the holder's lock runs out at its local deadline, and no double
// grant happens. The fence rejects stale writes either way.
func testSentinelZombie(t *testing.T) {
	t.Parallel()
	modes := []struct {
		name string
		opts []redistest.SentinelOption
	}{
		{"min-replicas=0", nil},
		{"min-replicas=1", []redistest.SentinelOption{redistest.WithMinReplicasToWrite(1, time.Second)}},
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			n := runs(1, 4)
			ctx := ctxFor(t, time.Duration(n)*50*time.Second+30*time.Second)
			s := redistest.StartSentinel(t, mode.opts...)
			b, err := lock.New(s.Client(t, fastSentinel), lock.WithPrefix("z:"))
			require.NoError(t, err)
			noInvalid(t, b)
			probe, err := lock.New(s.Client(t, fastSentinel), lock.WithPrefix("z:"))
			require.NoError(t, err)
			noInvalid(t, probe)
			w := newWriter(t)
			var c tally
			var zombieOK, rounds int
			const ttl = 10 * time.Second
			for round := range n {
				require.NoError(t, s.WaitSettled(ctx))
				old := s.Primary()
				stale := old.Client(t, func(o *redis.Options) {
					o.ReadTimeout = 500 * time.Millisecond
					o.MaxRetries = -1
				})
				a, err := lock.New(stale, lock.WithPrefix("z:"))
				require.NoError(t, err)
				noInvalid(t, a)
				kKey, zKey := fmt.Sprintf("r%d-k", round), fmt.Sprintf("r%d-z", round)
				held, err := a.Acquire(ctx, kKey, ttl)
				require.NoError(t, err)
				require.NoError(t, redistest.WaitInSync(ctx, old, s.Replicas()...))
				require.NoError(t, w.write(ctx, "a", kKey, held.Token(), "a-1"))

				p := startProber(t, probe)
				paused := time.Now()
				z, err := s.BeginZombie(ctx)
				require.NoError(t, err)
				require.NoError(t, z.Wake())
				if z.Old() != old { // a spurious failover moved the primary before the pause
					t.Logf("round %d: the sentinels failed over on their own before the pause; round not counted", round)
					_, _ = p.stop(paused)
					require.NoError(t, z.WaitDemoted(ctx))
					_ = held.Release(ctx)
					continue
				}
				rounds++
				// The zombie window: the holder's client still writes to the old primary.
				refreshErr := held.Refresh(ctx, ttl)
				zl, zerr := a.TryAcquire(ctx, zKey, ttl)
				if refreshErr == nil {
					zombieOK++
				} else {
					c.refused.Add(1)
				}
				if zerr == nil {
					zombieOK++
					require.NoError(t, w.write(ctx, "a", zKey, zl.Token(), "a-1"))
				} else {
					c.refused.Add(1)
				}
				var re redis.Error
				if zerr != nil && !(errors.As(zerr, &re) && strings.HasPrefix(re.Error(), "NOREPLICAS")) {
					t.Errorf("acquire on the zombie: got %v, want success or NOREPLICAS", zerr)
				}

				// The new primary: z is free (if the zombie granted it, that is
				// a double grant); k frees when its replicated TTL runs out.
				var bz *lock.Lock
				require.NoError(t, retryNet(ctx, 30*time.Second, func(ctx context.Context) (err error) {
					bz, err = b.TryAcquire(ctx, zKey, ttl)
					return err
				}))
				rec, err := p.stop(paused)
				require.NoError(t, err)
				c.recovered(rec)
				if zerr == nil {
					if believesHeld(zl, time.Now()) {
						c.doubleGrants.Add(1)
					}
					if bz.Token() <= zl.Token() {
						c.nonMonotonic.Add(1)
					}
				}
				require.NoError(t, w.write(ctx, "b", zKey, bz.Token(), "b-1"))
				if zerr == nil {
					require.ErrorIs(t, w.write(ctx, "a", zKey, zl.Token(), "a-2"), lock.ErrStaleToken)
					c.staleRejected.Add(1)
				}

				actx, cancel := context.WithTimeout(ctx, ttl+20*time.Second)
				bk, err := b.Acquire(actx, kKey, ttl)
				cancel()
				require.NoError(t, err, "k frees on the new primary when its TTL runs out")
				if believesHeld(held, time.Now()) {
					c.doubleGrants.Add(1)
				}
				if bk.Token() <= held.Token() {
					c.nonMonotonic.Add(1)
				}
				require.NoError(t, w.write(ctx, "b", kKey, bk.Token(), "b-1"))
				require.ErrorIs(t, w.write(ctx, "a", kKey, held.Token(), "a-2"), lock.ErrStaleToken)
				c.staleRejected.Add(1)
				require.NoError(t, z.WaitDemoted(ctx))
				_ = bz.Release(ctx)
				_ = bk.Release(ctx)
			}
			rep := w.h.check()
			require.NoError(t, rep.Err())
			require.Zero(t, c.nonMonotonic.Load())
			// min-replicas-to-write is Redis guidance, not a promise of the
			// package: the counts are reported, the fence is asserted.
			t.Logf("summary: sentinel zombie %s, %d rounds: zombie accepted %d of %d lock writes (refresh, acquire); %v; fenced writes: %s",
				mode.name, rounds, zombieOK, 2*rounds, &c, rep)
		})
	}
}

// testClusterShard: locks (with and without WAIT) on the shard that fails
// over. A CLUSTER FAILOVER (replica in sync) and a TAKEOVER after the
// master's crash keep replicated locks; a forced-lag takeover loses the
// locks acquired during the lag without WAIT, and makes those acquires
// fail with it.
func testClusterShard(t *testing.T) {
	t.Parallel()
	n := runs(1, 3)
	ctx := ctxFor(t, time.Duration(n)*100*time.Second+30*time.Second)
	cl := redistest.StartCluster(t, redistest.WithReplicas(1))
	client := func() *redis.ClusterClient {
		return cl.Client(t, func(o *redis.ClusterOptions) {
			o.ClusterStateReloadInterval = 200 * time.Millisecond
			o.DialTimeout = 500 * time.Millisecond
			o.ReadTimeout = 500 * time.Millisecond
		})
	}
	lockers := map[string][2]*lock.RedisLocker{} // mode -> holder, other
	for _, m := range waitModes {
		var pair [2]*lock.RedisLocker
		for i := range pair {
			l, err := lock.New(client(), append([]lock.Option{lock.WithPrefix("cl:")}, m.opts...)...)
			require.NoError(t, err)
			pair[i] = noInvalid(t, l)
		}
		lockers[m.name] = pair
	}
	probe, err := lock.New(client(), lock.WithPrefix("cl:"))
	require.NoError(t, err)
	noInvalid(t, probe)
	w := newWriter(t)
	counts := map[string]*tally{}
	faults := []struct {
		name string
		do   func(shard int) error
	}{
		{"failover", func(i int) error { return cl.FailoverShard(ctx, i) }},
		{"takeover", func(i int) error {
			old := cl.Masters[i]
			if err := cl.TakeoverShard(ctx, i); err != nil {
				return err
			}
			return cl.RejoinNode(ctx, old)
		}},
		{"lag", nil},
	}
	for _, f := range faults {
		for _, m := range waitModes {
			counts[f.name+"/"+m.name] = &tally{}
		}
	}
	for round := range n {
		for fi, f := range faults {
			shard := (round + fi) % len(cl.Masters)
			held := map[string]*lock.Lock{}
			keyOf := map[string]string{} // mode -> a key on the shard
			for _, m := range waitModes {
				keyOf[m.name] = shardKey(cl, shard, fmt.Sprintf("%s-r%d-%s", f.name, round, m.name))
			}
			var lag *redistest.Lag
			if f.do == nil {
				lag, err = cl.BeginShardLag(ctx, shard)
				require.NoError(t, err)
			}
			for _, m := range waitModes {
				lk, err := lockers[m.name][0].TryAcquire(ctx, keyOf[m.name], time.Minute)
				if err != nil {
					require.ErrorIs(t, err, lock.ErrReplicas, "%s %s", f.name, m.name)
					require.NotNil(t, lag, "WAIT failed with the replica in sync")
					counts[f.name+"/"+m.name].refused.Add(1)
					continue
				}
				held[m.name] = lk
				require.NoError(t, w.write(ctx, "a-"+m.name, keyOf[m.name], lk.Token(), "a-1"))
			}
			p := startKeyProber(t, probe, func(n int) string { return shardKey(cl, shard, fmt.Sprint("probe-", n)) })
			at := time.Now()
			if lag != nil {
				old := lag.Primary()
				_, err = lag.FailOver(ctx)
				require.NoError(t, err)
				require.NoError(t, cl.RejoinNode(ctx, old))
			} else {
				require.NoError(t, f.do(shard))
			}
			rec, err := p.stop(at)
			require.NoError(t, err)
			for _, m := range waitModes {
				c := counts[f.name+"/"+m.name]
				c.recovered(rec)
				old, ok := held[m.name]
				if !ok {
					continue
				}
				var nw *lock.Lock
				err := retryNet(ctx, 30*time.Second, func(ctx context.Context) (err error) {
					nw, err = lockers[m.name][1].TryAcquire(ctx, keyOf[m.name], time.Minute)
					return err
				})
				if errors.Is(err, lock.ErrNotAcquired) { // the lock survived
					require.NoError(t, retryNet(ctx, 20*time.Second, func(ctx context.Context) error { return old.Refresh(ctx, time.Minute) }))
					require.NoError(t, old.Release(ctx))
					nw, err = lockers[m.name][1].TryAcquire(ctx, keyOf[m.name], time.Minute)
					require.NoError(t, err)
					require.Greater(t, nw.Token(), old.Token())
					require.NoError(t, w.write(ctx, "b-"+m.name, keyOf[m.name], nw.Token(), "b-1"))
					_ = nw.Release(ctx)
					continue
				}
				require.NoError(t, err)
				if m.opts != nil {
					c.ackedLost.Add(1)
				}
				if believesHeld(old, time.Now()) {
					c.doubleGrants.Add(1)
				}
				if nw.Token() <= old.Token() {
					c.nonMonotonic.Add(1)
				}
				require.NoError(t, w.write(ctx, "b-"+m.name, keyOf[m.name], nw.Token(), "b-1"))
				require.ErrorIs(t, w.write(ctx, "a-"+m.name, keyOf[m.name], old.Token(), "a-2"), lock.ErrStaleToken)
				c.staleRejected.Add(1)
				_ = nw.Release(ctx)
			}
		}
	}
	rep := w.h.check()
	require.NoError(t, rep.Err())
	for _, f := range faults {
		for _, m := range waitModes {
			c := counts[f.name+"/"+m.name]
			require.Zero(t, c.nonMonotonic.Load())
			if m.opts != nil {
				require.Zero(t, c.ackedLost.Load(), "%s %s: a WAIT-acknowledged lock was lost", f.name, m.name)
			}
			if f.name == "failover" {
				require.Zero(t, c.doubleGrants.Load(), "CLUSTER FAILOVER waits for the replica: nothing is lost")
			}
			t.Logf("summary: cluster shard %s %s, %d rounds: %v", f.name, m.name, n, c)
		}
	}
	t.Logf("summary: cluster fenced writes: %s", rep)
}

// shardKey returns a lock key whose Redis key <prefix>{<key>} lands on
// shard i: the key itself is made of a tag found on that shard plus a
// suffix, and the whole key is hashed (it is the hash tag).
func shardKey(cl *redistest.Cluster, i int, suffix string) string {
	for n := 0; ; n++ {
		k := fmt.Sprintf("%s-%d", suffix, n)
		if onShard(cl, i, k) {
			return k
		}
	}
}

// onShard reports whether key k (hashed whole) is in shard i's slot range.
func onShard(cl *redistest.Cluster, i int, k string) bool {
	per := 16384 / len(cl.Masters)
	lo, hi := i*per, (i+1)*per-1
	if i == len(cl.Masters)-1 {
		hi = 16383
	}
	s := int(crc16(k) % 16384)
	return s >= lo && s <= hi
}

func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// testPauseRetries: workers on two clients take, refresh and release locks
// on a few keys while the server is paused (SIGSTOP) past the clients'
// ReadTimeout again and again, so that go-redis re-sends acquire, refresh
// and release scripts. The holders' tenures never overlap, tokens grow, the
// fence accepts every holder's write, and when every worker is done no
// lock is left behind.
func testPauseRetries(t *testing.T) {
	t.Parallel()
	d := runs(4, 30)
	ctx := ctxFor(t, time.Duration(d)*time.Second+60*time.Second)
	s := redistest.StartServer(t)
	var lockers []*lock.RedisLocker
	for range 2 {
		c := s.Client(t, func(o *redis.Options) {
			o.ReadTimeout = 100 * time.Millisecond
			o.MaxRetries = 8
			o.MinRetryBackoff = 20 * time.Millisecond
			o.MaxRetryBackoff = 50 * time.Millisecond
			o.PoolSize = 16
		})
		l, err := lock.New(c, lock.WithPrefix("pause:"))
		require.NoError(t, err)
		lockers = append(lockers, noInvalid(t, l))
	}
	w := newWriter(t)
	var tenures histories
	keys := []string{"k0", "k1", "k2"}
	var (
		mu                                   sync.Mutex
		ops, errs, spuriousLost, lostInTerms int
	)
	stop := time.Now().Add(time.Duration(d) * time.Second)
	var wg sync.WaitGroup
	for wi := range 6 {
		l := lockers[wi%2]
		holder := fmt.Sprint("w", wi)
		wg.Go(func() {
			for time.Now().Before(stop) {
				key := keys[rand.IntN(len(keys))]
				actx, cancel := context.WithTimeout(ctx, 3*time.Second)
				lk, err := l.Acquire(actx, key, 2*time.Second)
				cancel()
				mu.Lock()
				ops++
				if err != nil {
					errs++
				}
				mu.Unlock()
				if err != nil {
					continue
				}
				start := time.Now()
				werr := w.write(ctx, holder, key, lk.Token(), holder)
				if werr != nil {
					t.Errorf("%s: fenced write with a held lock: %v", holder, werr)
				}
				time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
				rerr := lk.Refresh(ctx, 2*time.Second)
				time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
				end := time.Now()
				held := believesHeld(lk, end)
				if !held { // the holder's view ended at its local deadline
					if dl := lk.Deadline(); dl.Before(end) {
						end = dl
					}
					if end.Before(start) {
						end = start
					}
				}
				tenures.record(key, historytest.Grant{Token: lk.Token(), Holder: holder, Start: start, End: end, Accepted: true})
				var relErr error
				for range 5 { // a release that failed on the network is retried
					if relErr = lk.Release(ctx); relErr == nil || errors.Is(relErr, lock.ErrLockLost) {
						break
					}
				}
				mu.Lock()
				if rerr != nil && !errors.Is(rerr, lock.ErrLockLost) {
					errs++
				}
				if errors.Is(rerr, lock.ErrLockLost) || !held {
					lostInTerms++
				}
				if errors.Is(relErr, lock.ErrLockLost) && held {
					spuriousLost++ // our first release ran, its retry found the lock gone
				}
				mu.Unlock()
			}
		})
	}
	pauses := 0
	for time.Now().Before(stop) {
		time.Sleep(time.Duration(150+rand.IntN(300)) * time.Millisecond)
		require.NoError(t, s.Pause())
		time.Sleep(time.Duration(150+rand.IntN(100)) * time.Millisecond) // past ReadTimeout, within the retries
		require.NoError(t, s.Resume())
		pauses++
	}
	wg.Wait()
	rep := tenures.check()
	require.NoError(t, rep.Err(), "holders' tenures")
	wrep := w.h.check()
	require.NoError(t, wrep.Err(), "fenced writes")
	c := s.Client(t)
	stranded, err := c.Keys(ctx, "pause:{k?}").Result()
	require.NoError(t, err)
	require.Empty(t, stranded, "locks left behind after every worker released")
	require.Zero(t, spuriousLost, "a re-sent release of a lock we held reported it lost")
	t.Logf("summary: pause past ReadTimeout, %d pauses in %ds: %d acquires (%d failed, %d handed on in-process), %d tenures, overlapping tenures %d, non-monotonic %d, stranded locks %d, release retries reporting ErrLockLost %d, locks lost mid-tenure %d",
		pauses, d, ops, errs, localHandoffs(lockers), rep.grants, rep.overlaps, rep.nonMonotonic, len(stranded), spuriousLost, lostInTerms)
}

// testRestartEmpty: the server restarts without persistence while a holder
// holds the lock. Another client acquires it (a double grant: the store
// forgot it), with a larger token, and the fence rejects the old holder's
// writes; the old holder's refresh finds the lock gone.
func testRestartEmpty(t *testing.T) {
	t.Parallel()
	n := runs(3, 20)
	ctx := ctxFor(t, time.Duration(n)*10*time.Second+30*time.Second)
	s := redistest.StartServer(t)
	mk := func() *lock.RedisLocker {
		l, err := lock.New(s.Client(t, func(o *redis.Options) { o.MaxRetries = 3 }), lock.WithPrefix("restart:"))
		require.NoError(t, err)
		return noInvalid(t, l)
	}
	a, b := mk(), mk()
	w := newWriter(t)
	var c tally
	for round := range n {
		held, err := a.Acquire(ctx, "k", time.Minute)
		require.NoError(t, err)
		require.NoError(t, w.write(ctx, "a", "k", held.Token(), fmt.Sprint("a-", round)))
		at := time.Now()
		require.NoError(t, s.Restart())
		var nw *lock.Lock
		require.NoError(t, retryNet(ctx, 10*time.Second, func(ctx context.Context) (err error) {
			nw, err = b.TryAcquire(ctx, "k", time.Minute)
			return err
		}))
		c.recovered(time.Since(at))
		if believesHeld(held, time.Now()) {
			c.doubleGrants.Add(1)
		}
		if nw.Token() <= held.Token() {
			c.nonMonotonic.Add(1)
		}
		require.NoError(t, w.write(ctx, "b", "k", nw.Token(), fmt.Sprint("b-", round)))
		require.ErrorIs(t, w.write(ctx, "a", "k", held.Token(), "late"), lock.ErrStaleToken)
		c.staleRejected.Add(1)
		require.ErrorIs(t, retryNet(ctx, 5*time.Second, func(ctx context.Context) error { return held.Refresh(ctx, time.Minute) }), lock.ErrLockLost)
		require.NoError(t, nw.Release(ctx))
	}
	rep := w.h.check()
	require.NoError(t, rep.Err())
	require.Zero(t, c.nonMonotonic.Load(), "tokens after a restart that lost the counter")
	t.Logf("summary: restart empty, %d restarts: %v; fenced writes: %s", n, &c, rep)
}

// testHolderPause: workers hold a lock with a short TTL and now and then
// stall past it (a GC pause, a stuck syscall) before writing through the
// fence. Others take the lock meanwhile (double grants, as with any lease),
// but no two accepted writes come from overlapping tenures out of order:
// the fence rejects every write of a superseded holder.
func testHolderPause(t *testing.T) {
	t.Parallel()
	d := runs(2, 20)
	ctx := ctxFor(t, time.Duration(d)*time.Second+30*time.Second)
	db := redistest.New(t)
	var lockers []*lock.RedisLocker
	for range 2 {
		l, err := lock.New(db.NewClient(t), lock.WithPrefix(db.Prefix))
		require.NoError(t, err)
		lockers = append(lockers, l)
	}
	w := newWriter(t)
	var tenures histories
	const ttl = 100 * time.Millisecond
	var mu sync.Mutex
	var stalls, rejected, acquired int
	stop := time.Now().Add(time.Duration(d) * time.Second)
	var wg sync.WaitGroup
	for wi := range 4 {
		l := lockers[wi%2]
		holder := fmt.Sprint("w", wi)
		wg.Go(func() {
			for i := 0; time.Now().Before(stop); i++ {
				lk, err := l.Acquire(ctx, "hot", ttl)
				if err != nil {
					t.Errorf("%s: Acquire: %v", holder, err)
					return
				}
				start := time.Now()
				stall := rand.IntN(4) == 0
				if stall {
					time.Sleep(ttl + time.Duration(rand.IntN(100))*time.Millisecond)
				}
				err = w.write(ctx, holder, "res", lk.Token(), fmt.Sprint(holder, "-", i))
				// A tenure is what the holder believed; overlapping ones are
				// double grants, which the fence makes harmless.
				tenures.record("hot", historytest.Grant{Token: lk.Token(), Holder: holder, Start: start, End: time.Now()})
				mu.Lock()
				acquired++
				if stall {
					stalls++
				}
				if err != nil {
					rejected++
				}
				mu.Unlock()
				if err != nil && !errors.Is(err, lock.ErrStaleToken) {
					t.Errorf("%s: fenced write: %v", holder, err)
				}
				_ = lk.Release(ctx)
			}
		})
	}
	wg.Wait()
	wrep := w.h.check()
	require.NoError(t, wrep.Err())
	trep := tenures.check()
	require.NoError(t, trep.Err())
	t.Logf("summary: holder paused past TTL, %ds: %d tenures (%d handed on in-process), %d stalled, %d stale writes rejected, double grants (overlapping tenures) %d, accepted overlaps %d, non-monotonic %d",
		d, acquired, localHandoffs(lockers), stalls, rejected, trep.doubles, wrep.overlaps, wrep.nonMonotonic)
}

// localHandoffs sums the Lockers' in-process hand-offs (WithLocalHandoff).
func localHandoffs(ls []*lock.RedisLocker) uint64 {
	var n uint64
	for _, l := range ls {
		n += l.Stats().LocalHandedOff
	}
	return n
}
