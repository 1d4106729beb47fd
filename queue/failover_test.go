package queue_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/historytest"
	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/queue"
)

// These are the queue's fault tests (issue 11): each drives producers and
// consumers through one fault, records a historytest.QueueHistory and logs
// one summary line of counts. They assert only what the queue promises;
// losses that Redis's asynchronous replication allows are counted, not
// asserted. OUTRIGGER_LONG=1 repeats each fault more times; the figures in
// RELIABILITY.md come from those runs.

// TestWaitReplicas: WaitReplicas validates its arguments and the client,
// acknowledges a publish once a replica has it, and fails it with
// ErrNotReplicated (an Unknown outcome: the primary holds it) when no
// replica acknowledges in time — for Publish, PublishBatch and a retried
// pipeline alike.
func TestWaitReplicas(t *testing.T) {
	ss := redistest.StartServers(t, 2)
	primary, replica := ss[0], ss[1]
	ctx := context.Background()
	c := primary.Client(t, func(o *redis.Options) { o.ReadTimeout = 2 * time.Second })
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"a": primary.Addr()}})
	t.Cleanup(func() { _ = ring.Close() })

	for _, tc := range []struct {
		name   string
		client redis.UniversalClient
		opt    queue.Option
		want   string
	}{
		{"negative n", c, queue.WaitReplicas(-1, time.Second), "WaitReplicas n must be >= 0"},
		{"zero timeout", c, queue.WaitReplicas(1, 0), "WaitReplicas timeout must be > 0"},
		{"timeout past ReadTimeout", c, queue.WaitReplicas(1, 2*time.Second), "below the client's ReadTimeout"},
		{"ring", ring, queue.WaitReplicas(1, time.Second), "needs a *redis.Client or *redis.ClusterClient"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := queue.NewRedis(tc.client, "w", tc.opt)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	_, err := queue.NewRedis(c, "w", queue.WaitReplicas(0, 0))
	require.NoError(t, err, "n = 0 disables it")

	q, err := queue.NewRedis(c, "w", queue.WithPrefix("t:"), queue.WaitReplicas(1, 150*time.Millisecond))
	require.NoError(t, err)
	// No replica yet: the message is on the primary, not acknowledged.
	id, err := q.Publish(ctx, []byte("alone"))
	require.ErrorIs(t, err, queue.ErrNotReplicated)
	assert.Empty(t, id)
	assert.Equal(t, historytest.Unknown, historytest.OutcomeOf(err))
	ids, err := q.PublishBatch(ctx, [][]byte{[]byte("a"), []byte("b")})
	require.ErrorIs(t, err, queue.ErrNotReplicated)
	assert.Equal(t, []string{"", ""}, ids)
	n, err := c.XLen(ctx, streamKey("t:", "w")).Result()
	require.NoError(t, err)
	assert.Equal(t, int64(3), n, "the primary holds the messages that were not acknowledged")

	rc := replica.Client(t)
	require.NoError(t, rc.ReplicaOf(ctx, "127.0.0.1", strings.Split(primary.Addr(), ":")[1]).Err())
	require.NoError(t, redistest.WaitInSync(ctx, primary, replica))
	require.Eventually(t, func() bool {
		_, err := q.Publish(ctx, []byte("replicated"))
		return err == nil
	}, 20*time.Second, 50*time.Millisecond, "publish not acknowledged with a replica in sync")
	ids, err = q.PublishBatch(ctx, [][]byte{[]byte("c"), []byte("d")})
	require.NoError(t, err)
	assert.NotContains(t, ids, "")
	n, err = rc.XLen(ctx, streamKey("t:", "w")).Result()
	require.NoError(t, err)
	assert.GreaterOrEqual(t, n, int64(6), "an acknowledged publish is on the replica")

	// A repeated call (the client re-sends after a lost reply) must not be
	// acknowledged by WAIT without a replica: its dedup path writes too.
	q2, err := queue.NewRedis(c, "w2", queue.WithPrefix("t:"), queue.WaitReplicas(2, 150*time.Millisecond))
	require.NoError(t, err)
	_, err = q2.Publish(ctx, []byte("two replicas asked, one there"), queue.WithID("x"))
	require.ErrorIs(t, err, queue.ErrNotReplicated)
	_, err = q2.Publish(ctx, []byte("two replicas asked, one there"), queue.WithID("x"))
	require.ErrorIs(t, err, queue.ErrNotReplicated, "a repeat of WithID is not acknowledged either")
}

// sentinelClient is a Sentinel client with timeouts short enough for a
// failover test and long enough for a loaded machine.
func sentinelClient(t *testing.T, s *redistest.Sentinel) *redis.Client {
	return s.Client(t, func(o *redis.FailoverOptions) {
		o.DialTimeout = 300 * time.Millisecond
		o.ReadTimeout = time.Second
		o.WriteTimeout = time.Second
		o.MaxRetries = 2
	})
}

// TestFaultSentinelForcedLag: a Sentinel failover to a replica that lags
// (redistest forced lag: the replica is paused, publishes are acknowledged
// by the primary only, the primary is killed and the replica promoted) while
// producers and consumers run. Without WaitReplicas, the publishes
// acknowledged during the lag are lost: counted, not asserted. With
// WaitReplicas(1, …) they fail (ErrNotReplicated, an unknown outcome) and no
// acknowledged publish is lost: asserted. Consumers carry on after the
// failover in both cases.
func TestFaultSentinelForcedLag(t *testing.T) {
	t.Parallel()
	s := redistest.StartSentinel(t)
	n := rounds(1, 5)
	for _, wait := range []bool{false, true} {
		t.Run(fmt.Sprintf("wait=%v", wait), func(t *testing.T) {
			var tot faultTotals
			for r := range n {
				rep, rec, during := forcedLagRound(t, s, wait, r)
				tot.add(rep, rec)
				if wait {
					require.Empty(t, rep.Lost, "with WaitReplicas an acknowledged publish was lost: %s", rep)
				}
				require.Positive(t, during, "no publish was attempted during the lag: the round tested nothing")
			}
			t.Logf("SUMMARY forced-lag failover wait=%v: %s", wait, &tot)
		})
	}
}

func forcedLagRound(t *testing.T, s *redistest.Sentinel, wait bool, round int) (historytest.QueueReport, time.Duration, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	pc, cc := sentinelClient(t, s), sentinelClient(t, s)
	name := fmt.Sprintf("lag-%v-%d", wait, round)
	opts := []queue.Option{queue.WithPrefix("t:")}
	if wait {
		opts = append(opts, queue.WaitReplicas(1, 200*time.Millisecond))
	}
	pq, err := queue.NewRedis(pc, name, opts...)
	require.NoError(t, err)
	cq, err := queue.NewRedis(cc, name, queue.WithPrefix("t:"))
	require.NoError(t, err)
	f := newFaultRun(t, name)
	f.consume(cq, 5*time.Millisecond, queue.Concurrency(1), queue.Prefetch(16)) // slower than the producers: a backlog
	stop := f.produce(pq, 4, 2*time.Millisecond)
	require.Eventually(t, func() bool { return f.lastOK.Load() != 0 }, 30*time.Second, 10*time.Millisecond, "no publish before the fault")

	l, err := s.BeginLag(ctx)
	require.NoError(t, err)
	before := f.seq.Load()
	time.Sleep(600 * time.Millisecond) // publishes acknowledged by the primary alone (or waiting for WAIT)
	during := int(f.seq.Load() - before)
	began := time.Now()
	_, err = l.FailOver(ctx)
	require.NoError(t, err)
	f.waitOK(pq, began, 60*time.Second)
	time.Sleep(300 * time.Millisecond)
	stop()
	recovery := f.outage(began)
	f.consume(cq, 0) // a fast consumer drains the backlog
	drained := f.drain(cq, 60*time.Second)
	rep := f.check(fmt.Sprintf("attempted-during-lag=%d outage=%v drained=%v", during, recovery.Round(10*time.Millisecond), drained))
	require.True(t, drained, "consumers did not drain the queue after the failover")
	return rep, recovery, during
}

// TestFaultSentinelZombie: the primary is paused past down-after, the
// sentinels promote its replica, and the old primary wakes up still a
// primary. A producer whose client still points at it publishes there until
// it is demoted: those publishes are acknowledged and then discarded by the
// resync (counted). With min-replicas-to-write 1 the zombie refuses them
// (NOREPLICAS, a failed publish), and no acknowledged publish is lost:
// asserted. Producers and consumers on Sentinel clients carry on through
// the failover.
func TestFaultSentinelZombie(t *testing.T) {
	t.Parallel()
	n := rounds(1, 3)
	for _, minReplicas := range []bool{false, true} {
		t.Run(fmt.Sprintf("min-replicas-to-write=%v", minReplicas), func(t *testing.T) {
			var sopts []redistest.SentinelOption
			if minReplicas {
				sopts = append(sopts, redistest.WithMinReplicasToWrite(1, time.Second))
			}
			s := redistest.StartSentinel(t, sopts...)
			var tot faultTotals
			for r := range n {
				rep, rec, zombieOK := zombieRound(t, s, minReplicas, r)
				tot.add(rep, rec)
				if minReplicas {
					require.Empty(t, rep.Lost, "with min-replicas-to-write an acknowledged publish was lost: %s", rep)
					require.Zero(t, zombieOK, "the zombie acknowledged publishes despite min-replicas-to-write")
				}
			}
			t.Logf("SUMMARY zombie primary min-replicas-to-write=%v: %s", minReplicas, &tot)
		})
	}
}

func zombieRound(t *testing.T, s *redistest.Sentinel, minReplicas bool, round int) (historytest.QueueReport, time.Duration, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	name := fmt.Sprintf("zombie-%v-%d", minReplicas, round)
	pc, cc := sentinelClient(t, s), sentinelClient(t, s)
	require.NoError(t, s.WaitSettled(ctx))
	old := s.Primary()
	// A client that keeps talking to the node it was given: a producer with
	// a stale view of the deployment.
	stale := old.Client(t, func(o *redis.Options) {
		o.DialTimeout = 300 * time.Millisecond
		o.ReadTimeout = time.Second
		o.MaxRetries = 0
	})
	pq, err := queue.NewRedis(pc, name, queue.WithPrefix("t:"))
	require.NoError(t, err)
	sq, err := queue.NewRedis(stale, name, queue.WithPrefix("t:"))
	require.NoError(t, err)
	cq, err := queue.NewRedis(cc, name, queue.WithPrefix("t:"))
	require.NoError(t, err)
	f := newFaultRun(t, name)
	f.consume(cq, 0)
	stop := f.produce(pq, 2, 5*time.Millisecond)
	require.Eventually(t, func() bool { return f.lastOK.Load() != 0 }, 30*time.Second, 10*time.Millisecond, "no publish before the fault")

	began := time.Now()
	z, err := s.BeginZombie(ctx)
	require.NoError(t, err)
	require.NoError(t, z.Wake())
	// Publish to the zombie until the sentinels demote it.
	demoted := make(chan error, 1)
	go func() { demoted <- z.WaitDemoted(ctx) }()
	zombieOK, zombieTried := 0, 0
	for done := false; !done; {
		select {
		case err := <-demoted:
			require.NoError(t, err)
			done = true
		default:
			pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
			o, _ := f.publish(pctx, sq, "zombie")
			pcancel()
			zombieTried++
			if o == historytest.OK {
				zombieOK++
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	f.waitOK(pq, began, 60*time.Second)
	time.Sleep(300 * time.Millisecond)
	stop()
	recovery := f.outage(began)
	drained := f.drain(cq, 60*time.Second)
	rep := f.check(fmt.Sprintf("zombie-publishes=%d zombie-acknowledged=%d outage=%v drained=%v",
		zombieTried, zombieOK, recovery.Round(10*time.Millisecond), drained))
	require.True(t, drained, "consumers did not drain the queue after the failover")
	return rep, recovery, zombieOK
}

// TestFaultPause: Redis is paused (SIGSTOP) past the clients' read timeout
// while producers publish and consumers fetch and acknowledge. go-redis
// re-sends the timed-out commands, and the paused server runs every copy
// when it wakes. Promised and asserted: no acknowledged publish is lost, no
// publish is added twice (checked on the stream while the consumers are
// stopped, and by the deliveries: a consumer-side duplicate — allowed by
// at-least-once — is counted), and consumers recover.
func TestFaultPause(t *testing.T) {
	s := redistest.StartServer(t)
	opts := func(o *redis.Options) {
		o.ReadTimeout = 150 * time.Millisecond
		o.WriteTimeout = 150 * time.Millisecond
		o.MaxRetries = 8
		o.MinRetryBackoff = 20 * time.Millisecond
		o.MaxRetryBackoff = 100 * time.Millisecond
	}
	pc, cc := s.Client(t, opts), s.Client(t, opts)
	pcnt, ccnt := redistest.NewCounter(), redistest.NewCounter()
	pc.AddHook(pcnt)
	cc.AddHook(ccnt)
	var tot faultTotals
	for r := range rounds(1, 10) {
		name := fmt.Sprintf("pause-%d", r)
		pq, err := queue.NewRedis(pc, name, queue.WithPrefix("t:"))
		require.NoError(t, err)
		cq, err := queue.NewRedis(cc, name, queue.WithPrefix("t:"))
		require.NoError(t, err)
		f := newFaultRun(t, name)
		// Slower than the producers, with messages in hand: handlers keep
		// finishing during the pause, so acknowledgements are in flight.
		stopC := f.consume(cq, 10*time.Millisecond, queue.Prefetch(64))
		stopP := f.produce(pq, 4, time.Millisecond)
		time.Sleep(300 * time.Millisecond)

		// Mid-publish and mid-ack.
		pd, cd := pcnt.Dials(), ccnt.Dials()
		began := time.Now()
		require.NoError(t, s.Pause())
		time.Sleep(400 * time.Millisecond)
		require.NoError(t, s.Resume())
		f.waitOK(pq, began, 30*time.Second)
		time.Sleep(100 * time.Millisecond)
		recovery := f.outage(began)
		// A timed-out command's connection is dropped and the command
		// re-sent on a new one: the pause really made the producers and the
		// consumers (their acknowledgements; a blocking read has a longer
		// timeout of its own) retry.
		producerRedials, consumerRedials := pcnt.Dials()-pd, ccnt.Dials()-cd
		require.Positive(t, producerRedials, "the producers did not time out and re-send")
		require.Positive(t, consumerRedials, "the consumers did not time out and re-send an acknowledgement")

		// Mid-publish with the consumers stopped: every entry stays in the
		// stream, where a duplicated publish would show.
		stopC()
		require.NoError(t, s.Pause())
		time.Sleep(400 * time.Millisecond)
		require.NoError(t, s.Resume())
		time.Sleep(100 * time.Millisecond)
		stopP()
		entries, err := s.Client(t).XRange(context.Background(), streamKey("t:", name), "-", "+").Result()
		require.NoError(t, err)
		seen := map[string]int{}
		for _, e := range entries {
			seen[e.Values["id"].(string)]++
		}
		for id, k := range seen {
			require.Equal(t, 1, k, "message %s was added %d times", id, k)
		}

		f.consume(cq, 0)
		require.True(t, f.drain(cq, 30*time.Second), "consumers did not drain after the pauses")
		rep := f.check(fmt.Sprintf("in-stream-after-2nd-pause=%d outage=%v redials(producers)=%d redials(consumers)=%d",
			len(entries), recovery.Round(10*time.Millisecond), producerRedials, consumerRedials))
		require.Empty(t, rep.Lost, "an acknowledged publish was lost: %s", rep)
		tot.add(rep, recovery)
	}
	t.Logf("SUMMARY pause past ReadTimeout: %s", &tot)
}

// TestFaultRestartEmpty: Redis restarts empty (no persistence) while
// producers and consumers run. What was acknowledged and not yet consumed
// is gone (counted: durability is Redis's). Promised and asserted:
// consumers recreate the group (NOGROUP) and every publish acknowledged
// after the restart is delivered.
func TestFaultRestartEmpty(t *testing.T) {
	s := redistest.StartServer(t)
	opts := func(o *redis.Options) {
		o.DialTimeout = 200 * time.Millisecond
		o.ReadTimeout = 500 * time.Millisecond
		o.MaxRetries = 1
	}
	pc, cc := s.Client(t, opts), s.Client(t, opts)
	var tot faultTotals
	for r := range rounds(1, 10) {
		name := fmt.Sprintf("restart-%d", r)
		pq, err := queue.NewRedis(pc, name, queue.WithPrefix("t:"))
		require.NoError(t, err)
		cq, err := queue.NewRedis(cc, name, queue.WithPrefix("t:"))
		require.NoError(t, err)
		f := newFaultRun(t, name)
		f.consume(cq, 5*time.Millisecond, queue.Concurrency(1), queue.Prefetch(16)) // slower than the producers: a backlog
		stop := f.produce(pq, 4, 2*time.Millisecond)
		require.Eventually(t, func() bool { return f.lastDelivery.Load() != 0 }, 30*time.Second, 10*time.Millisecond)

		restarted := time.Now()
		require.NoError(t, s.Restart())
		f.waitOK(pq, restarted, 30*time.Second)
		time.Sleep(100 * time.Millisecond)
		stop()
		recovery := f.outage(restarted)
		// Publishes acknowledged from now on must all be delivered.
		for range 50 {
			_, _ = f.publish(context.Background(), pq, "after")
		}
		require.Eventually(t, func() bool {
			return f.lastDelivery.Load() > restarted.UnixNano()
		}, 30*time.Second, 10*time.Millisecond, "no delivery after the restart: the group was not recreated")
		firstDelivery := time.Unix(0, f.lastDelivery.Load()).Sub(restarted)
		f.consume(cq, 0) // a fast consumer drains the backlog
		drained := f.drain(cq, 30*time.Second)
		rep := f.check(fmt.Sprintf("outage=%v recovery(delivery)=%v drained=%v",
			recovery.Round(10*time.Millisecond), firstDelivery.Round(10*time.Millisecond), drained))
		require.True(t, drained, "consumers did not drain after the restart")
		for _, id := range rep.Lost {
			require.NotContains(t, id, "-after-", "a publish acknowledged after the restart was lost: %s", rep)
		}
		tot.add(rep, max(recovery, firstDelivery))
	}
	t.Logf("SUMMARY restart empty: %s", &tot)
}

// clusterClient is a cluster client that notices a killed master soon:
// go-redis reloads the slot map on MOVED, but when the master it knows
// refuses connections it waits for ClusterStateReloadInterval (default 60 s,
// during which publishes to the failed shard fail).
func clusterClient(t *testing.T, cl *redistest.Cluster) *redis.ClusterClient {
	return cl.Client(t, func(o *redis.ClusterOptions) {
		o.ClusterStateReloadInterval = 500 * time.Millisecond
		o.DialTimeout = 300 * time.Millisecond
		o.ReadTimeout = time.Second
		o.WriteTimeout = time.Second
	})
}

// TestFaultCluster: the shard holding a queue (its keys share a hash tag
// placed on the shard with ShardTag) fails over while producers and
// consumers run on cluster clients.
//   - CLUSTER FAILOVER (coordinated: nothing is lost by Redis): asserted,
//     no acknowledged publish is lost.
//   - TAKEOVER after a SIGKILL of the master, with a backlog: losses are
//     possible (counted); publishes acknowledged after the takeover are all
//     delivered (asserted).
//   - A forced-lag takeover of a queue first used during the lag: the new
//     master has neither the stream nor the consumer group, consumers get
//     NOGROUP and must recreate the group: asserted, every publish
//     acknowledged after the takeover is delivered. With WaitReplicas, no
//     acknowledged publish is lost (asserted).
func TestFaultCluster(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, redistest.WithReplicas(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := rounds(1, 3)
	// A queue's keys share the hash tag {name}: the queue on shard i is named
	// after the shard's tag, and runs are told apart by their key prefix.
	type shardQueue struct{ name, prefix string }
	qname := func(shard int, kind string, r int) shardQueue {
		return shardQueue{strings.Trim(cl.ShardTag(shard), "{}"), fmt.Sprintf("t:%s-%d:", kind, r)}
	}
	newQueues := func(sq shardQueue, opts ...queue.Option) (pq, cq *queue.Redis) {
		pq, err := queue.NewRedis(clusterClient(t, cl), sq.name, append([]queue.Option{queue.WithPrefix(sq.prefix)}, opts...)...)
		require.NoError(t, err)
		cq, err = queue.NewRedis(clusterClient(t, cl), sq.name, queue.WithPrefix(sq.prefix))
		require.NoError(t, err)
		return pq, cq
	}
	// Check that the queue's keys live on the shard.
	sq0 := qname(0, "x", 0)
	slot, err := cl.Masters[0].Client(t).ClusterKeySlot(ctx, streamKey(sq0.prefix, sq0.name)).Result()
	require.NoError(t, err)
	slotTag, err := cl.Masters[0].Client(t).ClusterKeySlot(ctx, cl.ShardTag(0)).Result()
	require.NoError(t, err)
	require.Equal(t, slotTag, slot)

	t.Run("failover", func(t *testing.T) {
		var tot faultTotals
		for r := range n {
			ctx, cancel := context.WithTimeout(context.Background(), 110*time.Second)
			defer cancel()
			sq := qname(0, "failover", r)
			f := newFaultRun(t, sq.prefix)
			pq, cq := newQueues(sq)
			f.consume(cq, 0)
			stop := f.produce(pq, 4, 2*time.Millisecond)
			require.Eventually(t, func() bool { return f.lastDelivery.Load() != 0 }, 30*time.Second, 10*time.Millisecond)
			time.Sleep(500 * time.Millisecond)
			began := time.Now()
			// A coordinated failover that times out on a loaded machine is
			// aborted by Redis (the old master carries on): try again.
			for attempt := 1; ; attempt++ {
				actx, acancel := context.WithTimeout(ctx, 30*time.Second)
				err := cl.FailoverShard(actx, 0)
				acancel()
				if err == nil || attempt == 3 {
					require.NoError(t, err)
					break
				}
				t.Logf("CLUSTER FAILOVER attempt %d: %v", attempt, err)
				require.NoError(t, cl.WaitHealthy(ctx))
			}
			f.waitOK(pq, began, 60*time.Second)
			time.Sleep(300 * time.Millisecond)
			stop()
			recovery := f.outage(began)
			drained := f.drain(cq, 60*time.Second)
			rep := f.check(fmt.Sprintf("outage=%v drained=%v", recovery.Round(10*time.Millisecond), drained))
			require.True(t, drained)
			require.Empty(t, rep.Lost, "an acknowledged publish was lost in a coordinated failover: %s", rep)
			tot.add(rep, recovery)
		}
		t.Logf("SUMMARY cluster CLUSTER FAILOVER: %s", &tot)
	})

	t.Run("takeover", func(t *testing.T) {
		var tot faultTotals
		for r := range n {
			ctx, cancel := context.WithTimeout(context.Background(), 110*time.Second)
			defer cancel()
			sq := qname(1, "takeover", r)
			f := newFaultRun(t, sq.prefix)
			pq, cq := newQueues(sq)
			f.consume(cq, 5*time.Millisecond, queue.Concurrency(1), queue.Prefetch(16)) // a backlog
			stop := f.produce(pq, 4, 2*time.Millisecond)
			require.Eventually(t, func() bool { return f.lastDelivery.Load() != 0 }, 30*time.Second, 10*time.Millisecond)
			time.Sleep(500 * time.Millisecond)
			began := time.Now()
			require.NoError(t, cl.TakeoverShard(ctx, 1))
			f.waitOK(pq, began, 60*time.Second)
			time.Sleep(300 * time.Millisecond)
			stop()
			recovery := f.outage(began)
			for range 20 {
				_, _ = f.publish(ctx, pq, "after")
			}
			f.consume(cq, 0)
			drained := f.drain(cq, 60*time.Second)
			rep := f.check(fmt.Sprintf("outage=%v drained=%v", recovery.Round(10*time.Millisecond), drained))
			require.True(t, drained)
			for _, id := range rep.Lost {
				require.NotContains(t, id, "-after-", "a publish acknowledged after the takeover was lost: %s", rep)
			}
			tot.add(rep, recovery)
			require.NoError(t, cl.RejoinNode(ctx, cl.Replicas[1][0]))
		}
		t.Logf("SUMMARY cluster TAKEOVER (master SIGKILLed): %s", &tot)
	})

	for _, wait := range []bool{false, true} {
		t.Run(fmt.Sprintf("lag-takeover-empty/wait=%v", wait), func(t *testing.T) {
			var tot faultTotals
			for r := range n {
				ctx, cancel := context.WithTimeout(context.Background(), 110*time.Second)
				defer cancel()
				sq := qname(2, fmt.Sprintf("lag-%v", wait), r)
				f := newFaultRun(t, sq.prefix)
				var opts []queue.Option
				if wait {
					opts = append(opts, queue.WaitReplicas(1, 200*time.Millisecond))
				}
				pq, cq := newQueues(sq, opts...)
				lag, err := cl.BeginShardLag(ctx, 2)
				require.NoError(t, err)
				// The queue is first used during the lag: its stream and
				// group exist on the doomed master only.
				f.consume(cq, 5*time.Millisecond, queue.Concurrency(1), queue.Prefetch(16)) // a backlog
				stop := f.produce(pq, 4, 2*time.Millisecond)
				time.Sleep(600 * time.Millisecond)
				during := f.seq.Load()
				began := time.Now()
				_, err = lag.FailOver(ctx)
				require.NoError(t, err)
				// The promoted replica has no replica of its own until the
				// old master rejoins: WaitReplicas refuses publishes till then.
				require.NoError(t, cl.RejoinNode(ctx, cl.Replicas[2][0]))
				f.waitOK(pq, began, 60*time.Second)
				time.Sleep(300 * time.Millisecond)
				stop()
				recovery := f.outage(began)
				f.consume(cq, 0)
				for range 20 {
					_, _ = f.publish(ctx, pq, "after")
				}
				drained := f.drain(cq, 60*time.Second)
				rep := f.check(fmt.Sprintf("attempted-during-lag=%d outage=%v drained=%v", during, recovery.Round(10*time.Millisecond), drained))
				require.True(t, drained, "consumers did not recover the group after the takeover")
				for _, id := range rep.Lost {
					require.NotContains(t, id, "-after-", "a publish acknowledged after the takeover was lost (NOGROUP not recovered?): %s", rep)
				}
				if wait {
					require.Empty(t, rep.Lost, "with WaitReplicas an acknowledged publish was lost: %s", rep)
				}
				tot.add(rep, recovery)
			}
			t.Logf("SUMMARY cluster forced-lag TAKEOVER, group created during the lag, wait=%v: %s", wait, &tot)
		})
	}
}
