package lock_test

import (
	"context"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/lock"
)

func long() bool { return os.Getenv("OUTRIGGER_LONG") == "1" }

// section is one critical section as its holder saw it.
type section struct {
	token      uint64
	start, end time.Time
	worker     int
}

// hammer runs workers on one key through lockers (round-robin) for d and
// returns every critical section.
func hammer(t *testing.T, lockers []lock.Locker, workers int, d time.Duration) []section {
	t.Helper()
	ctx := context.Background()
	var mu sync.Mutex
	var out []section
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := range workers {
		l := lockers[w%len(lockers)]
		wg.Go(func() {
			for time.Now().Before(stop) {
				err := l.Do(ctx, "hot", 5*time.Second, func(ctx context.Context, token uint64) error {
					s := section{token: token, start: time.Now(), worker: w}
					time.Sleep(200 * time.Microsecond)
					s.end = time.Now()
					mu.Lock()
					out = append(out, s)
					mu.Unlock()
					return nil
				})
				if err != nil {
					t.Errorf("worker %d: Do: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	return out
}

// checkSections verifies that sections never overlap and that tokens
// strictly increase in the order the sections started.
func checkSections(t *testing.T, secs []section) {
	t.Helper()
	require.NotEmpty(t, secs)
	slices.SortFunc(secs, func(a, b section) int { return a.start.Compare(b.start) })
	workers := map[int]bool{}
	for i, s := range secs {
		workers[s.worker] = true
		if i == 0 {
			continue
		}
		p := secs[i-1]
		if s.start.Before(p.end) {
			t.Fatalf("sections overlap: #%d (worker %d, token %d) [%v, %v] and #%d (worker %d, token %d) starting %v",
				i-1, p.worker, p.token, p.start, p.end, i, s.worker, s.token, s.start)
		}
		if s.token <= p.token {
			t.Fatalf("token %d (section #%d) after token %d: got non-increasing, want strictly increasing", s.token, i, p.token)
		}
	}
	require.Greater(t, len(workers), 1, "more than one worker got the lock")
}

// TestMutualExclusion: 8 workers across 2 clients (2 Lockers, standing for
// 2 replicas) hammer one key; sections never overlap, tokens increase.
func TestMutualExclusion(t *testing.T) {
	leakCheck(t)
	d := 2 * time.Second
	if long() {
		d = 20 * time.Second
	}
	t.Run("backend=redis", func(t *testing.T) {
		db := redistest.New(t)
		var ls []lock.Locker
		for range 2 {
			l, err := lock.New(db.NewClient(t), lock.WithPrefix(db.Prefix))
			require.NoError(t, err)
			ls = append(ls, l)
		}
		secs := hammer(t, ls, 8, d)
		checkSections(t, secs)
		t.Logf("%d sections", len(secs))
	})
	t.Run("backend=redis/handoff=false", func(t *testing.T) {
		db := redistest.New(t)
		var ls []lock.Locker
		for range 2 {
			l, err := lock.New(db.NewClient(t), lock.WithPrefix(db.Prefix), lock.WithHandoff(false))
			require.NoError(t, err)
			ls = append(ls, l)
		}
		checkSections(t, hammer(t, ls, 8, d/2))
	})
	t.Run("backend=redlock", func(t *testing.T) {
		srv := redistest.StartServers(t, 3)
		prefix := redistest.NewPrefix()
		var ls []lock.Locker
		for range 2 {
			var cs []redis.UniversalClient
			for _, s := range srv {
				cs = append(cs, s.Client(t, func(o *redis.Options) { o.ContextTimeoutEnabled = true }))
			}
			l, err := lock.NewRedlock(cs, lock.WithPrefix(prefix), lock.WithBackoff(time.Millisecond, 5*time.Millisecond))
			require.NoError(t, err)
			ls = append(ls, l)
		}
		checkSections(t, hammer(t, ls, 8, d/2))
	})
}

// TestHolderPausedGoroutine: a holder blocked past its TTL loses the lock;
// its Lost fires before another worker can hold it, and its fenced write is
// rejected once the new holder has written.
func TestHolderPausedGoroutine(t *testing.T) {
	leakCheck(t)
	ctx := context.Background()
	db := redistest.New(t)
	l, err := lock.New(db.Client, lock.WithPrefix(db.Prefix))
	require.NoError(t, err)
	f, err := lock.NewFence(db.Client, db.Prefix+"fence:")
	require.NoError(t, err)

	old, err := l.Acquire(ctx, "job", 300*time.Millisecond)
	require.NoError(t, err)
	require.NoError(t, f.Set(ctx, "report", old.Token(), "old-1"))

	// The old holder is "paused": it neither refreshes nor releases.
	other, err := lock.New(db.NewClient(t), lock.WithPrefix(db.Prefix))
	require.NoError(t, err)
	nw, err := other.Acquire(ctx, "job", 5*time.Second)
	require.NoError(t, err)
	acquiredAt := time.Now()
	// The holder's loss deadline (when Lost closes) passed before anyone
	// else could take the lock. Compare the deadline itself, not when a
	// goroutine watching Lost got scheduled: on a loaded machine that can
	// lag the timer by more than the margin.
	require.True(t, old.Deadline().Before(acquiredAt), "loss deadline %v, want before the new holder's acquire at %v", old.Deadline(), acquiredAt)
	select {
	case <-old.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("Lost not closed 10s after the deadline passed")
	}
	require.Greater(t, nw.Token(), old.Token())
	require.NoError(t, f.Set(ctx, "report", nw.Token(), "new-1"))

	// The old holder wakes up and writes as if it still held the lock.
	require.ErrorIs(t, f.Set(ctx, "report", old.Token(), "old-2"), lock.ErrStaleToken)
	require.ErrorIs(t, f.Check(ctx, "report", old.Token()), lock.ErrStaleToken)
	require.ErrorIs(t, old.Refresh(ctx, time.Second), lock.ErrLockLost)
	v, tok, err := f.Get(ctx, "report")
	require.NoError(t, err)
	require.Equal(t, "new-1", v)
	require.Equal(t, nw.Token(), tok)
	require.NoError(t, nw.Release(ctx))
}

// TestRestartDataLoss: Redis restarts mid-hold and loses everything; tokens
// issued afterwards are still greater, and the old holder finds its lock
// gone.
func TestRestartDataLoss(t *testing.T) {
	leakCheck(t)
	ctx := context.Background()
	s := redistest.StartServer(t)
	c := s.Client(t)
	l, err := lock.New(c, lock.WithPrefix("restart:"))
	require.NoError(t, err)
	var last uint64
	for range 5 { // push the counter well ahead
		lk, err := l.Acquire(ctx, "k", time.Minute)
		require.NoError(t, err)
		last = lk.Token()
		require.NoError(t, lk.Release(ctx))
	}
	held, err := l.Acquire(ctx, "k", time.Minute)
	require.NoError(t, err)
	require.Greater(t, held.Token(), last)

	require.NoError(t, s.Restart())
	n, err := c.DBSize(ctx).Result()
	require.NoError(t, err)
	require.Zero(t, n, "the restart lost all data")

	nw, err := l.TryAcquire(ctx, "k", time.Minute)
	require.NoError(t, err, "the lock vanished with the data")
	require.Greater(t, nw.Token(), held.Token())
	require.ErrorIs(t, held.Refresh(ctx, time.Minute), lock.ErrLockLost)
	select {
	case <-held.Lost():
	default:
		t.Fatal("Lost not closed after a refresh found the lock gone")
	}
	require.ErrorIs(t, held.Release(ctx), lock.ErrLockLost)
	require.NoError(t, nw.Release(ctx))
}

// TestRedlockMinorityDown: 5 nodes; with 2 stopped Redlock still acquires,
// with 3 stopped it fails quickly with ErrNotAcquired and the node errors.
func TestRedlockMinorityDown(t *testing.T) {
	leakCheck(t)
	ctx := context.Background()
	srv := redistest.StartServers(t, 5)
	var cs []redis.UniversalClient
	for _, s := range srv {
		cs = append(cs, s.Client(t, func(o *redis.Options) {
			o.ContextTimeoutEnabled = true
			o.MaxRetries = -1
			o.DialTimeout = 200 * time.Millisecond
		}))
	}
	// A node timeout well above the default, so that a live node slowed by
	// a loaded machine is not counted as down (the stopped ones fail at
	// once: connection refused).
	l, err := lock.NewRedlock(cs, lock.WithPrefix("rl:"), lock.WithNodeTimeout(time.Second))
	require.NoError(t, err)

	a, err := l.TryAcquire(ctx, "k", 10*time.Second)
	require.NoError(t, err)
	require.NoError(t, srv[0].Stop())
	require.NoError(t, srv[1].Stop())
	_, err = l.TryAcquire(ctx, "k", 10*time.Second)
	require.ErrorIs(t, err, lock.ErrNotAcquired, "still held on the 3 live nodes")
	require.NoError(t, a.Refresh(ctx, 10*time.Second), "a majority is up")
	d, err := a.TTL(ctx)
	require.NoError(t, err)
	require.Greater(t, d, 5*time.Second)
	require.NoError(t, a.Release(ctx))

	b, err := l.Acquire(ctx, "k", 10*time.Second)
	require.NoError(t, err, "2 of 5 down: still acquires")
	require.Greater(t, b.Token(), a.Token())
	require.NoError(t, b.Release(ctx))
	st := l.Stats()
	require.NotZero(t, st.Errors, "the majority answered without the stopped nodes: counted as absorbed outages")
	require.Zero(t, st.Invalid, "a stopped node is not an invalid reply")

	require.NoError(t, srv[2].Stop())
	for _, acquire := range []func(context.Context, string, time.Duration) (*lock.Lock, error){l.TryAcquire, l.Acquire} {
		start := time.Now()
		_, err = acquire(ctx, "k", 10*time.Second)
		require.ErrorIs(t, err, lock.ErrNotAcquired)
		require.ErrorContains(t, err, "no majority")
		require.Less(t, time.Since(start), 5*time.Second, "fails quickly")
	}
}

// TestScriptFlush: the scripts are re-sent after SCRIPT FLUSH.
func TestScriptFlush(t *testing.T) {
	leakCheck(t)
	ctx := context.Background()
	s := redistest.StartServer(t)
	c := s.Client(t)
	l, err := lock.New(c)
	require.NoError(t, err)
	a, err := l.Acquire(ctx, "k", time.Minute)
	require.NoError(t, err)
	require.NoError(t, c.ScriptFlush(ctx).Err())
	require.NoError(t, a.Refresh(ctx, time.Minute))
	require.NoError(t, c.ScriptFlush(ctx).Err())
	_, err = a.TTL(ctx)
	require.NoError(t, err)
	require.NoError(t, c.ScriptFlush(ctx).Err())
	require.NoError(t, a.Release(ctx))
	require.NoError(t, c.ScriptFlush(ctx).Err())
	b, err := l.TryAcquire(ctx, "k", time.Minute)
	require.NoError(t, err)
	require.NoError(t, c.ScriptFlush(ctx).Err())
	require.NoError(t, b.Release(ctx))
}

// TestClientRetryIdempotent: the server is paused past the client's
// ReadTimeout during an acquire, so go-redis re-sends the script; the lock
// must end up ours (not stranded by our own first attempt).
func TestClientRetryIdempotent(t *testing.T) {
	leakCheck(t)
	ctx := context.Background()
	s := redistest.StartServer(t)
	c := s.Client(t, func(o *redis.Options) {
		o.ReadTimeout = 100 * time.Millisecond
		o.MaxRetries = 5
		o.MinRetryBackoff = 20 * time.Millisecond
		o.MaxRetryBackoff = 20 * time.Millisecond
		o.PoolSize = 8
	})
	l, err := lock.New(c, lock.WithPrefix("retry:"))
	require.NoError(t, err)
	// Load the scripts (so the paused attempts are EVALSHA hits) and warm
	// the pool (retries then reuse open connections: a new connection's
	// handshake to a paused server fails without a retry).
	warm, err := l.TryAcquire(ctx, "k", time.Minute)
	require.NoError(t, err)
	require.NoError(t, warm.Release(ctx))
	require.NoError(t, redistest.FillPool(ctx, c, "retry:{k}", 6))
	require.NoError(t, c.ConfigResetStat(ctx).Err())

	require.NoError(t, s.Pause())
	type result struct {
		lk  *lock.Lock
		err error
	}
	done := make(chan result, 1)
	go func() {
		lk, err := l.TryAcquire(ctx, "k", time.Minute)
		done <- result{lk, err}
	}()
	time.Sleep(250 * time.Millisecond) // past the ReadTimeout: the script is re-sent
	require.NoError(t, s.Resume())
	r := <-done
	require.NoError(t, r.err, "a retried acquire of our own lock counts as acquired")
	stats, err := c.Info(ctx, "commandstats").Result()
	require.NoError(t, err)
	m := regexp.MustCompile(`cmdstat_evalsha:calls=(\d+)`).FindStringSubmatch(stats)
	require.NotNil(t, m, stats)
	calls, _ := strconv.Atoi(m[1])
	require.GreaterOrEqual(t, calls, 2, "go-redis re-sent the acquire script")
	d, err := r.lk.TTL(ctx)
	require.NoError(t, err)
	require.Greater(t, d, 30*time.Second)
	require.NoError(t, r.lk.Release(ctx))
	n, err := c.Exists(ctx, "retry:{k}").Result()
	require.NoError(t, err)
	require.Zero(t, n, "released: not stranded until its TTL")
}

// TestHandoff checks the queue in Redis: FIFO grants, waiters that vanished
// are skipped or expire, and a waiter's grant costs no extra round trip.
// (Its waiters share one Locker, which would otherwise queue them
// in-process: see TestLocalHandoff.)
func TestHandoff(t *testing.T) {
	leakCheck(t)
	ctx := context.Background()
	db := redistest.New(t)
	l, err := lock.New(db.Client, lock.WithPrefix(db.Prefix), lock.WithLocalHandoff(0))
	require.NoError(t, err)

	t.Run("fifo", func(t *testing.T) {
		a, err := l.Acquire(ctx, "fifo", 10*time.Second)
		require.NoError(t, err)
		order := make(chan int, 3)
		var wg sync.WaitGroup
		for i := range 3 {
			wg.Go(func() {
				lk, err := l.Acquire(ctx, "fifo", 10*time.Second)
				if err != nil {
					t.Error(err)
					return
				}
				order <- i
				time.Sleep(10 * time.Millisecond)
				if err := lk.Release(ctx); err != nil {
					t.Error(err)
				}
			})
			// wait until waiter i is queued before starting the next
			require.Eventually(t, func() bool {
				n, _ := db.Client.ZCard(ctx, db.Prefix+"{fifo}:q").Result()
				return n == int64(i+1)
			}, 5*time.Second, time.Millisecond)
		}
		before := l.Stats().HandedOff
		require.NoError(t, a.Release(ctx))
		n, err := db.Client.ZCard(ctx, db.Prefix+"{fifo}:q").Result()
		require.NoError(t, err)
		require.Less(t, n, int64(3), "the release dequeued the first waiter")
		wg.Wait()
		close(order)
		var got []int
		for i := range order {
			got = append(got, i)
		}
		require.Equal(t, []int{0, 1, 2}, got)
		// A waiter whose poll round ends just after its grant finds the lock
		// already its own instead of being woken: not counted as a hand-off.
		require.Greater(t, l.Stats().HandedOff, before)
	})

	fakeWaiter := func(key, owner string, deadline time.Time, ttl time.Duration) {
		base := db.Prefix + "{" + key + "}"
		require.NoError(t, db.Client.ZAdd(ctx, base+":q", redis.Z{Score: 1, Member: owner}).Err())
		require.NoError(t, db.Client.HSet(ctx, base+":qi", owner,
			strconv.FormatInt(deadline.UnixMicro(), 10)+"|"+strconv.FormatInt(ttl.Milliseconds(), 10)).Err())
	}
	t.Run("dead-waiter-skipped", func(t *testing.T) {
		a, err := l.Acquire(ctx, "dead", 10*time.Second)
		require.NoError(t, err)
		fakeWaiter("dead", "gone", time.Now().Add(-time.Second), 10*time.Second)
		require.NoError(t, a.Release(ctx))
		b, err := l.TryAcquire(ctx, "dead", time.Second)
		require.NoError(t, err, "a waiter past its deadline is not granted the lock")
		require.NoError(t, b.Release(ctx))
	})
	t.Run("vanished-grantee-expires", func(t *testing.T) {
		a, err := l.Acquire(ctx, "van", 10*time.Second)
		require.NoError(t, err)
		fakeWaiter("van", "crashed", time.Now().Add(time.Minute), 300*time.Millisecond)
		require.NoError(t, a.Release(ctx))
		_, err = l.TryAcquire(ctx, "van", time.Second)
		require.ErrorIs(t, err, lock.ErrNotAcquired, "granted to the (crashed) waiter")
		b, err := l.Acquire(ctx, "van", time.Second)
		require.NoError(t, err, "the grant expires after the waiter's TTL")
		require.Greater(t, b.Token(), a.Token())
		require.NoError(t, b.Release(ctx))
	})
	t.Run("round-trips", func(t *testing.T) {
		c := db.NewClient(t)
		cnt := redistest.NewCounter()
		c.AddHook(cnt)
		l2, err := lock.New(c, lock.WithPrefix(db.Prefix))
		require.NoError(t, err)
		cnt.Reset()
		a, err := l2.Acquire(ctx, "rt", 10*time.Second)
		require.NoError(t, err)
		require.NoError(t, a.Release(ctx))
		require.EqualValues(t, 2, cnt.RoundTrips(), "uncontended acquire+release")
	})
}

// TestWaitReplicas: with a replica attached WAIT succeeds; without one the
// acquire fails with ErrReplicas and leaves the lock free.
func TestWaitReplicas(t *testing.T) {
	leakCheck(t)
	ctx := context.Background()
	primary := redistest.StartServer(t)
	host, port := "127.0.0.1", primary.Addr()[len("127.0.0.1:"):]
	replica := redistest.StartServer(t, redistest.WithArgs("--replicaof", host, port))
	c := primary.Client(t)
	require.Eventually(t, func() bool {
		info, err := c.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "connected_slaves:1") && strings.Contains(info, "state=online")
	}, 20*time.Second, 20*time.Millisecond)

	l, err := lock.New(c, lock.WithWaitReplicas(1, 2*time.Second))
	require.NoError(t, err)
	a, err := l.Acquire(ctx, "k", time.Minute)
	require.NoError(t, err)
	rc := replica.Client(t)
	v, err := rc.Get(ctx, lock.DefaultPrefix+"{k}").Result()
	require.NoError(t, err, "the acquire reached the replica before Acquire returned")
	require.NotEmpty(t, v)
	require.NoError(t, a.Release(ctx))

	l2, err := lock.New(c, lock.WithWaitReplicas(2, 100*time.Millisecond))
	require.NoError(t, err)
	_, err = l2.TryAcquire(ctx, "k", time.Minute)
	require.ErrorIs(t, err, lock.ErrNotAcquired)
	require.ErrorIs(t, err, lock.ErrReplicas)
	b, err := l.TryAcquire(ctx, "k", time.Minute)
	require.NoError(t, err, "the unconfirmed acquire was undone")
	require.NoError(t, b.Release(ctx))
}
