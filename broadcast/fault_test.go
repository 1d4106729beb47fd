package broadcast_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/broadcast"
	"github.com/outrigger-dev/outrigger/internal/historytest"
	"github.com/outrigger-dev/outrigger/internal/redistest"
)

// reader collects a subscription's messages in the background: the data
// of each publication into hist, and whether offsets were contiguous.
type reader struct {
	name    string
	mu      sync.Mutex
	got     int
	resyncs int
	last    broadcast.Position
	errs    []error
	done    chan struct{}
}

func startReader(t *testing.T, name string, s *broadcast.Subscription, hist *historytest.QueueHistory) *reader {
	r := &reader{name: name, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			m, err := s.Next(context.Background())
			if errors.Is(err, broadcast.ErrResync) {
				r.mu.Lock()
				r.resyncs++
				r.last = s.Position()
				r.mu.Unlock()
				continue
			}
			if err != nil {
				return
			}
			r.mu.Lock()
			if !r.last.IsZero() && m.Position.Epoch == r.last.Epoch && m.Position.Offset != r.last.Offset+1 {
				r.errs = append(r.errs, fmt.Errorf("%s: offset %d after %d", name, m.Position.Offset, r.last.Offset))
			}
			r.last = m.Position
			if hist != nil {
				// Before got counts it: a test that waits for the count
				// then checks the history must find the message there.
				hist.Dequeue(name + "/" + string(m.Data))
			}
			r.got++
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() { _ = s.Close(); <-r.done })
	return r
}

func (r *reader) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got
}

// TestPubSubKilled: the Hubs' pub/sub connections are killed (CLIENT KILL
// TYPE pubsub) again and again while three Hubs publish: every subscriber
// on every Hub still gets every acknowledged message, in order, once.
func TestPubSubKilled(t *testing.T) {
	leakCheck(t)
	srv := redistest.StartServer(t)
	admin := srv.Client(t)
	prefix := redistest.NewPrefix()
	n, kills := 600, 6
	if redistest.Long() {
		n, kills = 6000, 40
	}
	var hubs []*broadcast.Hub
	for range 3 {
		hubs = append(hubs, hubOn(t, srv.Client(t), prefix))
	}
	type sub struct {
		r    *reader
		hist *historytest.QueueHistory
	}
	var subs []sub
	for i, h := range hubs {
		hist := &historytest.QueueHistory{}
		s := subscribe(t, h, "k")
		subs = append(subs, sub{startReader(t, "hub"+strconv.Itoa(i), s, hist), hist})
	}
	ctx := testCtx(t, 120*time.Second)
	var published atomic.Int64
	var wg sync.WaitGroup
	for i, h := range hubs {
		wg.Go(func() {
			for k := i; k < n; k += len(hubs) {
				_, err := h.Publish(ctx, "k", []byte(strconv.Itoa(k)))
				for _, s := range subs {
					s.hist.Enqueue(s.r.name+"/"+strconv.Itoa(k), historytest.OutcomeOf(err))
				}
				published.Add(1)
				time.Sleep(500 * time.Microsecond) // spread the publishes over the kills
			}
		})
	}
	killed := 0
	for killed < kills && published.Load() < int64(n) {
		if published.Load() >= int64(killed*n/kills) {
			k, err := admin.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Int()
			require.NoError(t, err)
			if k > 0 {
				killed++
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
	for _, s := range subs {
		waitFor(t, 60*time.Second, s.r.name+" got everything", func() bool { return s.r.count() >= n })
	}
	var reconnects uint64
	for _, h := range hubs {
		reconnects += h.Stats().PubSubReconnects
	}
	t.Logf("%d kills, %d pub/sub reconnects, %d messages", killed, reconnects, n)
	require.Positive(t, reconnects)
	for _, s := range subs {
		s.r.mu.Lock()
		require.Empty(t, s.r.errs)
		require.Zero(t, s.r.resyncs, "the history covers every reconnect")
		s.r.mu.Unlock()
		rep := s.hist.Check()
		require.NoError(t, rep.Err(), rep.String())
	}
}

// TestRedisRestartEmpty: Redis restarts with no data. Publish fails while
// it is down (never a silent drop), Ready fails, and afterwards the
// subscribers get ErrResync (the history is gone) and then the new messages.
func TestRedisRestartEmpty(t *testing.T) {
	leakCheck(t)
	srv := redistest.StartServer(t)
	prefix := redistest.NewPrefix()
	opts := func(o *redis.Options) { o.MaxRetries = 1; o.DialTimeout = 200 * time.Millisecond }
	h1, h2 := hubOn(t, srv.Client(t, opts), prefix), hubOn(t, srv.Client(t, opts), prefix)
	ctx := testCtx(t, 90*time.Second)
	s := subscribe(t, h2, "r")
	p1, err := h1.Publish(ctx, "r", []byte(`1`))
	require.NoError(t, err)
	require.Equal(t, p1, next(t, s, 10*time.Second).Position)
	require.NoError(t, h2.Ready(ctx))

	require.NoError(t, srv.Stop())
	_, err = h1.Publish(ctx, "r", []byte(`2`))
	require.Error(t, err, "publish with Redis down")
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	require.Error(t, h2.Ready(rctx), "Ready with Redis down")
	cancel()

	require.NoError(t, srv.Start())
	waitFor(t, 30*time.Second, "Ready after the restart", func() bool {
		c, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return h2.Ready(c) == nil
	})
	var p3 broadcast.Position
	waitFor(t, 30*time.Second, "publish after the restart", func() bool {
		p3, err = h1.Publish(ctx, "r", []byte(`3`))
		return err == nil
	})
	require.NotEqual(t, p1.Epoch, p3.Epoch, "a new epoch after the history was lost")
	_, err = s.Next(ctx)
	require.ErrorIs(t, err, broadcast.ErrResync)
	m := next(t, s, 10*time.Second)
	require.Equal(t, `3`, string(m.Data))
	require.Equal(t, p3, m.Position)
	// A client coming back with a position of the old epoch: resync.
	s2 := subscribe(t, h1, "r", broadcast.Since(p1))
	require.False(t, s2.Recovered())
}

// TestHistoryRegression: Redis loses messages a Hub already delivered (as
// a failover to a lagging replica does): the Hub notices when it
// re-subscribes, starts a new epoch, and subscribers resync instead of
// silently dropping the new messages that reuse the lost offsets.
func TestHistoryRegression(t *testing.T) {
	leakCheck(t)
	srv := redistest.StartServer(t)
	admin := srv.Client(t)
	prefix := redistest.NewPrefix()
	h := hubOn(t, srv.Client(t), prefix)
	ctx := testCtx(t, 60*time.Second)
	s := subscribe(t, h, "g")
	for k := range 10 {
		_, err := h.Publish(ctx, "g", []byte(strconv.Itoa(k)))
		require.NoError(t, err)
	}
	for range 10 {
		next(t, s, 10*time.Second)
	}
	// Lose offsets 6..10.
	meta, hist := prefix+"{g}:m", prefix+"{g}:h"
	require.NoError(t, admin.HSet(ctx, meta, "o", 5).Err())
	require.NoError(t, admin.XTrimMaxLen(ctx, hist, 5).Err()) // keeps 6..10: remove them instead
	require.NoError(t, admin.Do(ctx, "XDEL", hist, "0-6", "0-7", "0-8", "0-9", "0-10").Err())
	require.NoError(t, admin.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err())
	_, err := s.Next(ctx)
	require.ErrorIs(t, err, broadcast.ErrResync)
	pos, err := h.Publish(ctx, "g", []byte(`"new"`))
	require.NoError(t, err)
	m := next(t, s, 10*time.Second)
	require.Equal(t, `"new"`, string(m.Data), "the new message is delivered, not taken for a repeat")
	require.Equal(t, pos, m.Position)
	recorderOf(t, h).snapshot(func(r *recorder) {
		require.Contains(t, r.gaps, "g", "OnGap after the re-subscription")
		require.Contains(t, r.resyncs, resync{"g", broadcast.ResyncGap})
	})
}

// TestReadyBlackhole: a Hub's pub/sub connection stops delivering (a
// network black hole): Ready fails; when the network heals, the Hub
// replaces the connection, recovers what it missed from the history and
// Ready succeeds again.
func TestReadyBlackhole(t *testing.T) {
	leakCheck(t)
	srv := redistest.StartServer(t)
	proxy := redistest.StartProxy(t, srv.Addr())
	prefix := redistest.NewPrefix()
	viaProxy := redis.NewClient(&redis.Options{Addr: proxy.Addr(), ReadTimeout: time.Second, WriteTimeout: time.Second, DialTimeout: time.Second})
	t.Cleanup(func() { _ = viaProxy.Close() })
	h := hubOn(t, viaProxy, prefix)
	pub := hubOn(t, srv.Client(t), prefix)
	ctx := testCtx(t, 120*time.Second)
	var hist historytest.QueueHistory
	s := subscribe(t, h, "b")
	r := startReader(t, "b", s, &hist)
	require.NoError(t, h.Ready(ctx))
	publish := func(from, to int) {
		for k := from; k < to; k++ {
			_, err := pub.Publish(ctx, "b", []byte(strconv.Itoa(k)))
			hist.Enqueue("b/"+strconv.Itoa(k), historytest.OutcomeOf(err))
			require.NoError(t, err)
		}
	}
	publish(0, 20)
	waitFor(t, 20*time.Second, "first messages", func() bool { return r.count() == 20 })
	proxy.Blackhole(true)
	publish(20, 60)
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	require.Error(t, h.Ready(rctx), "Ready while the pub/sub connection delivers nothing")
	cancel()
	proxy.Blackhole(false)
	waitFor(t, 60*time.Second, "Ready after the black hole", func() bool {
		c, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return h.Ready(c) == nil
	})
	publish(60, 80)
	waitFor(t, 30*time.Second, "every message", func() bool { return r.count() >= 80 })
	rep := hist.Check()
	require.NoError(t, rep.Err(), rep.String())
	require.Positive(t, h.Stats().GapRecoveries)
}

// TestPresenceHubKilled: a Hub in a child process is SIGKILLed: its
// members disappear from Presence on the other Hubs within the presence
// TTL (plus a poll), and Leave events are published for them.
func TestPresenceHubKilled(t *testing.T) {
	leakCheck(t)
	db := redistest.New(t)
	prefix := db.Prefix + "kill:"
	const ttl = 1 * time.Second
	h := hubOn(t, db.NewClient(t), prefix, broadcast.WithPresenceTTL(ttl))
	events := subscribe(t, h, "room", broadcast.PresenceEvents())
	_ = subscribe(t, h, "room", broadcast.AsMember(broadcast.Member{ClientID: "local"}))
	next(t, events, 10*time.Second) // local's join
	child := startChild(t, db.Addrs[0], prefix, "child-node", ttl, 3)
	ctx := testCtx(t, 60*time.Second)
	for range 3 {
		require.Equal(t, broadcast.Join, next(t, events, 10*time.Second).Kind)
	}
	ms, err := h.Presence(ctx, "room")
	require.NoError(t, err)
	require.Len(t, ms, 4)

	require.NoError(t, child.Process.Signal(syscall.SIGKILL))
	killed := time.Now()
	left := map[string]bool{}
	for len(left) < 3 {
		m := next(t, events, 30*time.Second)
		require.Equal(t, broadcast.Leave, m.Kind)
		require.Equal(t, "child-node", m.Member.Node)
		left[m.Member.ClientID] = true
	}
	leaveAfter := time.Since(killed)
	ms, err = h.Presence(ctx, "room")
	require.NoError(t, err)
	require.Len(t, ms, 1)
	require.Equal(t, "local", ms[0].ClientID)
	t.Logf("leave events %v after SIGKILL (presence TTL %v)", leaveAfter.Round(time.Millisecond), ttl)
}

// TestSentinelFailover: the Redis primary fails over while a Hub on a
// Sentinel client publishes and another one subscribes. Every
// acknowledged message reaches the subscriber, or the subscriber gets a
// resync (when the failover lost acknowledged writes): never a silent gap;
// and what is published after the failover is delivered.
func TestSentinelFailover(t *testing.T) {
	leakCheck(t)
	sen := redistest.StartSentinel(t)
	prefix := redistest.NewPrefix()
	mk := func() *broadcast.Hub {
		return hubOn(t, sen.Client(t, func(o *redis.FailoverOptions) { o.MaxRetries = 3 }), prefix,
			broadcast.WithHistory(100000, time.Minute))
	}
	a, b := mk(), mk()
	ctx := testCtx(t, 120*time.Second)
	var hist historytest.QueueHistory
	r := startReader(t, "f", subscribe(t, b, "f"), &hist)
	stop := make(chan struct{})
	var attempted atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			_, err := a.Publish(ctx, "f", []byte(strconv.Itoa(k)))
			hist.Enqueue("f/"+strconv.Itoa(k), historytest.OutcomeOf(err))
			attempted.Store(int64(k + 1))
			time.Sleep(2 * time.Millisecond)
		}
	})
	waitFor(t, 20*time.Second, "traffic", func() bool { return r.count() > 50 })
	_, err := sen.Failover(ctx)
	require.NoError(t, err)
	waitFor(t, 60*time.Second, "Ready after the failover", func() bool {
		c, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		return b.Ready(c) == nil && a.Ready(c) == nil
	})
	after := attempted.Load()
	waitFor(t, 60*time.Second, "publishes after the failover", func() bool { return attempted.Load() > after+200 })
	close(stop)
	wg.Wait()
	last := attempted.Load()
	lostAfter := func() (n int) {
		for _, id := range hist.Check().Lost {
			if k, _ := strconv.Atoi(id[2:]); int64(k) >= after {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(30 * time.Second)
	for lostAfter() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("messages published after the failover are missing: %s; reader at %v, resyncs %d; stats a %+v b %+v",
				hist.Check().String(), r.last, r.resyncs, a.Stats(), b.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	rep := hist.Check()
	r.mu.Lock()
	defer r.mu.Unlock()
	require.Empty(t, r.errs)
	require.Empty(t, rep.Duplicated, rep.String())
	if r.resyncs == 0 {
		require.Empty(t, rep.Lost, "no resync, so nothing may be missing: %s", rep.String())
	}
	t.Logf("%d published (%d after the failover); %s; resyncs %d", last, last-after, rep.String(), r.resyncs)
}

// TestClusterFailover: the master of the shard serving a channel fails
// over (CLUSTER FAILOVER) while one Hub publishes and another subscribes
// through sharded pub/sub: every acknowledged message arrives, or a resync
// says otherwise; what is published after the failover arrives; Ready
// recovers.
func TestClusterFailover(t *testing.T) {
	leakCheck(t)
	cl := redistest.StartCluster(t, redistest.WithReplicas(1))
	prefix := redistest.NewPrefix()
	mk := func() *broadcast.Hub {
		return hubOn(t, cl.Client(t, func(o *redis.ClusterOptions) { o.MaxRetries = 5 }), prefix, broadcast.WithHistory(100000, time.Minute))
	}
	a, b := mk(), mk()
	ch := strings.Trim(cl.ShardTag(0), "{}")
	ctx := testCtx(t, 120*time.Second)
	var hist historytest.QueueHistory
	r := startReader(t, "c", subscribe(t, b, ch), &hist)
	stop := make(chan struct{})
	var attempted atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			_, err := a.Publish(ctx, ch, []byte(strconv.Itoa(k)))
			hist.Enqueue("c/"+strconv.Itoa(k), historytest.OutcomeOf(err))
			attempted.Store(int64(k + 1))
			time.Sleep(2 * time.Millisecond)
		}
	})
	waitFor(t, 20*time.Second, "traffic", func() bool { return r.count() > 50 })
	require.NoError(t, cl.FailoverShard(ctx, 0))
	var readyErr error
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, cancel := context.WithTimeout(ctx, time.Second)
		readyErr = errors.Join(a.Ready(c), b.Ready(c))
		cancel()
		if readyErr == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not Ready 60s after the failover: %v", readyErr)
		}
	}
	after := attempted.Load()
	waitFor(t, 60*time.Second, "publishes after the failover", func() bool { return attempted.Load() > after+200 })
	close(stop)
	wg.Wait()
	deadline = time.Now().Add(30 * time.Second)
	for {
		missing := 0
		for _, id := range hist.Check().Lost {
			if k, _ := strconv.Atoi(id[2:]); int64(k) >= after {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages published after the failover are missing: %s; stats b %+v", missing, hist.Check().String(), b.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	rep := hist.Check()
	r.mu.Lock()
	defer r.mu.Unlock()
	require.Empty(t, r.errs)
	require.Empty(t, rep.Duplicated, rep.String())
	if r.resyncs == 0 {
		require.Empty(t, rep.Lost, "no resync, so nothing may be missing: %s", rep.String())
	}
	t.Logf("%s; resyncs %d; stats b %+v", rep.String(), r.resyncs, b.Stats())
}

// TestClusterPubSubKilled: on a Cluster the pub/sub connections (one per
// master, shard channels of many slots) are killed while a Hub publishes on
// six channels: the subscriber Hub subscribes each channel again (go-redis
// alone would re-subscribe them in one SSUBSCRIBE, which Redis refuses
// across slots) and recovers: 0 lost.
func TestClusterPubSubKilled(t *testing.T) {
	leakCheck(t)
	db := redistest.NewCluster(t)
	prefix := db.Prefix + "cpk:"
	a, b := hubOn(t, db.NewClient(t), prefix), hubOn(t, db.NewClient(t), prefix)
	ctx := testCtx(t, 90*time.Second)
	chans := []string{"a", "b", "c", "d", "e", "f"}
	var hist historytest.QueueHistory
	var readers []*reader
	for _, ch := range chans {
		readers = append(readers, startReader(t, ch, subscribe(t, b, ch), &hist))
	}
	kill := func() {
		err := db.Client.(*redis.ClusterClient).ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return c.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err()
		})
		require.NoError(t, err)
	}
	const n = 300
	for k := range n {
		ch := chans[k%len(chans)]
		_, err := a.Publish(ctx, ch, []byte(strconv.Itoa(k)))
		hist.Enqueue(ch+"/"+strconv.Itoa(k), historytest.OutcomeOf(err))
		require.NoError(t, err)
		if k == n/3 || k == 2*n/3 {
			kill()
		}
	}
	waitFor(t, 60*time.Second, "every message", func() bool {
		total := 0
		for _, r := range readers {
			total += r.count()
		}
		return total >= n
	})
	rep := hist.Check()
	require.NoError(t, rep.Err(), rep.String())
	for _, r := range readers {
		r.mu.Lock()
		require.Empty(t, r.errs)
		require.Zero(t, r.resyncs)
		r.mu.Unlock()
	}
	require.NoError(t, b.Ready(ctx))
	t.Logf("stats b %+v", b.Stats())
}
