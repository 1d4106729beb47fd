package rabbitmq

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
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

// TestConsumeStopIsNotLoggedAsFailure: consumers cancelled right after
// they start (while they open their channel, or wait for deliveries),
// many times, log nothing above DEBUG; a dropped connection, a real
// failure, is still logged at WARN.
func TestConsumeStopIsNotLoggedAsFailure(t *testing.T) {
	vhost, u := testVhost(t)
	rec := queuetest.NewLogRecorder()
	q, err := New(context.Background(), Config{URL: u, QueueType: Classic, ReconnectMin: 20 * time.Millisecond}, "logs",
		queue.WithLogger(slog.New(rec)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })
	queuetest.StartStop(t, q, 40)
	rec.CheckQuiet(t)

	rabbitmqctl(t, "close_all_connections", "--vhost", vhost, "outrigger fault test")
	require.Eventually(t, func() bool {
		return slices.ContainsFunc(rec.Above(slog.LevelInfo), func(r queuetest.LogRecord) bool {
			return strings.Contains(r.Text, "connection lost")
		})
	}, 30*time.Second, 10*time.Millisecond, "a dropped connection was not logged at WARN")
}

// TestRedeliveryAfterConnectionDrop: the broker closes the queue's
// connection while four handlers hold unacknowledged deliveries (and four
// more are prefetched). The broker requeues them with the channel, and the
// consumer, reconnecting with the default backoff, gets the running ones
// (which only the broker can give back) again promptly: asserted well under
// 10 s per round (the delays are logged); no published message is lost. OUTRIGGER_LONG=1 drops it 10 times instead
// of 3.
func TestRedeliveryAfterConnectionDrop(t *testing.T) {
	vhost, u := testVhost(t)
	rounds := 3
	if os.Getenv("OUTRIGGER_LONG") != "" {
		rounds = 10
	}
	ctx := context.Background()
	q, err := New(ctx, Config{URL: u, QueueType: Quorum}, "redeliver")
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })

	var h historytest.QueueHistory
	var mu sync.Mutex
	starts := map[string][]time.Time{} // protected by mu
	var hold atomic.Bool               // handlers wait while set (until the drop)
	running := make(chan string, 64)   // IDs of the held handlers
	c := queuetest.StartConsumer(t, q, func(ctx context.Context, m *queue.Message) error {
		mu.Lock()
		starts[m.ID] = append(starts[m.ID], time.Now())
		mu.Unlock()
		if hold.Load() {
			running <- m.ID
			for hold.Load() {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Millisecond):
				}
			}
			return nil // its ack is lost with the channel
		}
		h.Dequeue(m.ID)
		return nil
	}, queue.Concurrency(4), queue.Prefetch(8))

	var worst []time.Duration
	for r := range rounds {
		for len(running) > 0 {
			<-running // stale copies that started before the last release
		}
		hold.Store(true)
		ids := make([]string, 8)
		for i := range ids {
			id, err := q.Publish(ctx, fmt.Appendf(nil, "%d-%d", r, i))
			h.Enqueue(id, historytest.OutcomeOf(err))
			require.NoError(t, err)
			ids[i] = id
		}
		var held []string // running when the connection drops: only the broker can give them back
		for range 4 {
			select {
			case id := <-running:
				held = append(held, id)
			case <-time.After(30 * time.Second):
				t.Fatalf("round %d: handlers did not start", r)
			}
		}
		drops := q.cm.dropped()
		rabbitmqctl(t, "close_all_connections", "--vhost", vhost, "outrigger fault test")
		require.Eventually(t, func() bool { return q.cm.dropped() > drops }, 30*time.Second, time.Millisecond,
			"round %d: the connection was not seen closing", r)
		dropped := time.Now()
		hold.Store(false)
		var delays []time.Duration
		require.Eventually(t, func() bool {
			mu.Lock()
			defer mu.Unlock()
			delays = delays[:0]
			for _, id := range held {
				i := slices.IndexFunc(starts[id], func(s time.Time) bool { return s.After(dropped) })
				if i < 0 {
					return false
				}
				delays = append(delays, starts[id][i].Sub(dropped))
			}
			return true
		}, 30*time.Second, time.Millisecond, "round %d: not every unacknowledged message came back", r)
		slices.Sort(delays)
		worst = append(worst, delays[len(delays)-1])
		t.Logf("round %d: the 4 deliveries running at the drop back %v–%v after it was seen",
			r, delays[0].Round(time.Millisecond), delays[len(delays)-1].Round(time.Millisecond))
		assert.Less(t, delays[len(delays)-1], 10*time.Second, "round %d: redelivery after the drop", r)
	}
	queuetest.WaitStats(t, q, queuetest.Empty, "drained")
	require.NoError(t, c.Stop(t))
	rep := h.Check()
	require.Empty(t, rep.Lost, "published messages lost: %s", rep)
	slices.Sort(worst)
	t.Logf("SUMMARY connection drop x%d: the running deliveries back within %v (worst round), median round %v",
		rounds, worst[len(worst)-1].Round(time.Millisecond), worst[len(worst)/2].Round(time.Millisecond))
}
