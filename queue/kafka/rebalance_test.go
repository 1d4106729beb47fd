package kafka

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/historytest"
	"github.com/outrigger-dev/outrigger/queue"
	"github.com/outrigger-dev/outrigger/queue/queuetest"
)

// TestRebalance adds and removes consumers while messages flow: nothing is
// lost, no message runs on two consumers at once (a revoked partition's
// fetched messages finish and are committed before the new owner starts),
// and only the stops make messages run twice, boundedly.
func TestRebalance(t *testing.T) {
	cfg := testConfig(testBrokers(t))
	cfg.Partitions = 6
	q := newTestQueue(t, cfg, "rebalance")
	ctx := context.Background()
	var hist historytest.QueueHistory
	var mu sync.Mutex
	active := map[string]int{}
	var overlaps atomic.Int64
	h := func(_ context.Context, m *queue.Message) error {
		mu.Lock()
		active[m.ID]++
		if active[m.ID] > 1 {
			overlaps.Add(1)
		}
		mu.Unlock()
		time.Sleep(200 * time.Microsecond)
		hist.Dequeue(m.ID)
		mu.Lock()
		active[m.ID]--
		mu.Unlock()
		return nil
	}
	const n = 6000
	var published atomic.Int64
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n / 4 {
				id, err := q.Publish(ctx, []byte(strconv.Itoa(g*n+i)), queue.WithKey("k"+strconv.Itoa(i%50)))
				if !assert.NoError(t, err) {
					return
				}
				hist.Enqueue(id, historytest.OK)
				published.Add(1)
				if i%100 == 0 {
					time.Sleep(5 * time.Millisecond) // a steady stream
				}
			}
		}()
	}
	opts := []queue.ConsumeOption{queue.Concurrency(8)}
	waitPublished := func(k int64) {
		require.Eventually(t, func() bool { return published.Load() >= k }, 60*time.Second, time.Millisecond)
	}
	a := queuetest.StartConsumer(t, q, h, opts...)
	waitPublished(n / 5)
	b := queuetest.StartConsumer(t, q, h, opts...)
	waitPublished(2 * n / 5)
	queuetest.StartConsumer(t, q, h, opts...)
	waitPublished(3 * n / 5)
	st := time.Now()
	require.NoError(t, a.Stop(t))
	t.Logf("A stopped in %v", time.Since(st))
	waitPublished(4 * n / 5)
	queuetest.StartConsumer(t, q, h, opts...)
	st = time.Now()
	require.NoError(t, b.Stop(t))
	t.Logf("B stopped in %v", time.Since(st))
	wg.Wait()
	t.Logf("published by %v", time.Since(st))
	require.Eventually(t, func() bool { return len(hist.Check().Lost) == 0 }, 60*time.Second, 10*time.Millisecond,
		"messages lost in rebalances: %s", hist.Check())
	t.Logf("delivered by %v", time.Since(st))
	rep := hist.Check()
	assert.Zero(t, overlaps.Load(), "a message ran on two consumers at once")
	assert.Empty(t, rep.Unexpected)
	t.Logf("4 joins, 2 leaves: %s", rep)
	// Joins run nothing twice: a revoked partition's fetched messages
	// finish and are committed before the new owner starts. A stop hands
	// back the messages not started (those held behind their key, or not
	// yet given to a handler), so the next owner runs again the messages of
	// the same partitions that finished after them: at most the records a
	// consumer admits at once (max(Prefetch, 2*Concurrency) = 32) per stop.
	assert.LessOrEqual(t, len(rep.Duplicated), 2*32, "graceful rebalances ran more messages twice than two stops can explain")
	queuetest.WaitStats(t, q, queuetest.Empty, "drained")
}

// TestRevokeStuckHandler: a consumer whose handlers block (ignoring their
// ctx) past RevokeWait when another consumer joins gives the partitions up
// in time: it stays in the group, its handlers' ctx is cancelled, the new
// owner runs those messages, and the stuck handlers' late results are
// dropped (not committed over the new owner's work). Also with an
// OnProcess hook that gives each handler a ctx of its own (as tracing
// does), which the partition's cancellation must reach as well.
func TestRevokeStuckHandler(t *testing.T) {
	type ctxKey struct{}
	tests := []struct {
		name  string
		hooks queue.Hooks
	}{
		{"hooks=none", queue.Hooks{}},
		{"hooks=per-message-ctx", queue.Hooks{OnProcess: func(ctx context.Context, _ string, m *queue.Message) context.Context {
			return context.WithValue(ctx, ctxKey{}, m.ID)
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { testRevokeStuckHandler(t, tt.hooks) })
	}
}

func testRevokeStuckHandler(t *testing.T, hooks queue.Hooks) {
	c := newCluster(t, 1)
	cfg := testConfig(c.ListenAddrs())
	cfg.Partitions = 8
	cfg.RetryTopics = []time.Duration{time.Second}
	cfg.RebalanceTimeout = 3 * time.Second
	cfg.RevokeWait = time.Second
	q := newTestQueue(t, cfg, "stuck", queue.WithHooks(hooks))
	ctx := context.Background()
	const n = 16
	for i := range n {
		_, err := q.Publish(ctx, []byte(strconv.Itoa(i)), queue.WithKey("key-"+strconv.Itoa(i)))
		require.NoError(t, err)
	}
	release := make(chan struct{})
	var mu sync.Mutex
	aGot, aCancelled, bGot := map[string]bool{}, map[string]bool{}, map[string]int{}
	var aStarted atomic.Int64
	queuetest.StartConsumer(t, q, func(ctx context.Context, m *queue.Message) error {
		mu.Lock()
		first := !aGot[m.ID]
		aGot[m.ID] = true
		mu.Unlock()
		if !first {
			return nil
		}
		aStarted.Add(1)
		<-release // ignores ctx, as a stuck handler would
		mu.Lock()
		aCancelled[m.ID] = ctx.Err() != nil
		mu.Unlock()
		return nil
	}, queue.Concurrency(n))
	require.Eventually(t, func() bool { return aStarted.Load() == n }, 30*time.Second, time.Millisecond)

	queuetest.StartConsumer(t, q, func(_ context.Context, m *queue.Message) error {
		mu.Lock()
		bGot[m.ID]++
		mu.Unlock()
		return nil
	})
	// B gets the partitions A gave up, after RevokeWait, while A is stuck.
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(bGot) > 0 }, 30*time.Second, 5*time.Millisecond,
		"the new consumer got nothing while the old one was stuck")
	info := c.GroupInfo(q.group)
	require.NotNil(t, info)
	assert.Len(t, info.Members, 2, "the stuck consumer was kicked out of the group")
	close(release)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(aCancelled) == n
	}, 30*time.Second, 5*time.Millisecond)
	queuetest.WaitStats(t, q, queuetest.Empty, "drained")
	mu.Lock()
	defer mu.Unlock()
	for id, k := range bGot {
		assert.Equal(t, 1, k, "message %s ran twice on the new owner", id)
		assert.True(t, aCancelled[id], "message %s moved to the new owner but the stuck handler's ctx was not cancelled", id)
	}
	for id, cancelled := range aCancelled {
		if bGot[id] == 0 {
			assert.False(t, cancelled, "message %s stayed with its owner but its ctx was cancelled", id)
		}
	}
	t.Logf("%d of %d stuck messages moved to the new consumer", len(bGot), n)
}
