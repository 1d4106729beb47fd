package queue_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/queue"
	"github.com/outrigger-dev/outrigger/queue/queuetest"
)

// startLog records when each message's handler started, for redelivery
// delays. It is safe for concurrent use.
type startLog struct {
	mu     sync.Mutex
	starts map[string][]time.Time // protected by mu
}

func (l *startLog) add(id string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.starts == nil {
		l.starts = map[string][]time.Time{}
	}
	l.starts[id] = append(l.starts[id], at)
}

// firstAfter returns the first start of id after t (zero if none).
func (l *startLog) firstAfter(id string, t time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.starts[id] {
		if s.After(t) {
			return s
		}
	}
	return time.Time{}
}

// startedBefore reports whether id's handler started before t.
func (l *startLog) startedBefore(id string, t time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.starts[id]) > 0 && l.starts[id][0].Before(t)
}

// pendingAt lists the entries pending in the group that were delivered
// before t, with the message ID each holds.
func pendingAt(ctx context.Context, c *redis.Client, stream string, t time.Time) (map[string]string, error) {
	ps, err := c.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: stream, Group: "consumers", Start: "-", End: "+", Count: 100000}).Result()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := map[string]string{}
	for _, p := range ps {
		if now.Add(-p.Idle).After(t) {
			continue // delivered after t
		}
		es, err := c.XRange(ctx, stream, p.ID, p.ID).Result()
		if err != nil {
			return nil, err
		}
		if len(es) == 1 {
			out[p.ID] = entryMessageID(es[0])
		}
	}
	return out, nil
}

// TestFaultRestartRedelivery: Redis (append-only file on, fsync always)
// restarts again and again while producers publish and a consumer with a
// long VisibilityTimeout (30 s) works through a backlog. A read whose
// reply is lost in a restart leaves entries pending on the live consumer
// that it never saw; it must take them back as soon as Redis answers, not
// after the visibility timeout (another consumer's reclaim). Asserted:
// every entry pending at the restart is settled well within the timeout
// (10 s here; the figures are logged), and no acknowledged publish is lost.
// OUTRIGGER_LONG=1 restarts 30 times instead of 10.
func TestFaultRestartRedelivery(t *testing.T) {
	s := redistest.StartServer(t, redistest.WithPersistence(), redistest.WithArgs("--appendfsync", "always"))
	opts := func(o *redis.Options) { o.DialTimeout = 200 * time.Millisecond }
	pc, cc, admin := s.Client(t, opts), s.Client(t, opts), s.Client(t, opts)
	const name, vis = "redeliver", 30 * time.Second
	pq, err := queue.NewRedis(pc, name, queue.WithPrefix("t:"))
	require.NoError(t, err)
	cq, err := queue.NewRedis(cc, name, queue.WithPrefix("t:"))
	require.NoError(t, err)
	stream := streamKey("t:", name)

	f := newFaultRun(t, name)
	var starts startLog
	cons := queuetest.StartConsumer(t, cq, func(_ context.Context, m *queue.Message) error {
		starts.add(m.ID, time.Now())
		time.Sleep(time.Millisecond)
		f.h.Dequeue(m.ID)
		f.lastDelivery.Store(time.Now().UnixNano())
		return nil
	}, queue.VisibilityTimeout(vis), queue.Concurrency(4), queue.Prefetch(8))
	stopP := f.produce(pq, 4, time.Millisecond)

	n := rounds(10, 30)
	var clears, delays []time.Duration
	pendingTotal, redelivered := 0, 0
	for r := range n {
		require.Eventually(t, func() bool {
			return time.Since(time.Unix(0, f.lastDelivery.Load())) < 50*time.Millisecond
		}, 30*time.Second, time.Millisecond, "round %d: no deliveries before the restart", r)
		time.Sleep(time.Duration(50+r*37%150) * time.Millisecond)
		require.NoError(t, s.Restart())
		up := time.Now() // Redis answers PING
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		pend, err := pendingAt(ctx, admin, stream, up)
		require.NoError(t, err)
		// Wait until every entry pending at the restart is settled.
		var cleared time.Duration
		for {
			ps, err := admin.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: stream, Group: "consumers", Start: "-", End: "+", Count: 100000}).Result()
			if err == nil && !slices.ContainsFunc(ps, func(p redis.XPendingExt) bool { _, ok := pend[p.ID]; return ok }) {
				cleared = time.Since(up)
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("round %d: %d entries pending at the restart not settled within 90s", r, len(pend))
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		// Entries pending at the restart whose message had not started
		// before it: lost replies (or prefetched, not yet started).
		again := 0
		var worst time.Duration
		for _, id := range pend {
			if starts.startedBefore(id, up) {
				continue
			}
			again++
			if at := starts.firstAfter(id, up); !at.IsZero() {
				worst = max(worst, at.Sub(up))
				delays = append(delays, at.Sub(up))
			}
		}
		pendingTotal += len(pend)
		redelivered += again
		clears = append(clears, cleared)
		t.Logf("round %d: %d entries pending at the restart (%d not started before it), all settled %v after Redis answered; latest redelivery %v",
			r, len(pend), again, cleared.Round(time.Millisecond), worst.Round(time.Millisecond))
		assert.Less(t, cleared, 10*time.Second, "round %d: entries pending at the restart waited for the visibility timeout", r)
	}
	f.waitOK(pq, time.Now(), 30*time.Second)
	stopP()
	require.True(t, f.drain(cq, 60*time.Second), "the consumer did not drain after the restarts")
	require.NoError(t, cons.Stop(t))
	slices.Sort(clears)
	slices.Sort(delays)
	rep := f.check(fmt.Sprintf("restarts=%d pending-at-restart=%d not-started=%d settled(max)=%v redelivery(max)=%v",
		n, pendingTotal, redelivered, clears[len(clears)-1].Round(time.Millisecond), maxOr0(delays).Round(time.Millisecond)))
	require.Empty(t, rep.Lost, "an acknowledged publish was lost: %s", rep)
	t.Logf("SUMMARY restart with AOF x%d: settled after Redis answered p50 %v max %v; %d pending entries, %d of them handled after the restart (redelivery p50 %v max %v)",
		n, clears[len(clears)/2].Round(time.Millisecond), clears[len(clears)-1].Round(time.Millisecond), pendingTotal, redelivered,
		pctOr0(delays, 50).Round(time.Millisecond), maxOr0(delays).Round(time.Millisecond))
}

func maxOr0(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return slices.Max(ds)
}

func pctOr0(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return ds[min(len(ds)*p/100, len(ds)-1)]
}

// orphan adds n entries and, in the same transaction (so that no blocked
// reader gets them first), reads them for consumer: entries delivered to a
// live consumer that never received them, as when the reply of its read is
// lost. It returns their message IDs.
func orphan(t *testing.T, c *redis.Client, stream, consumer, tag string, n int) []string {
	t.Helper()
	ctx := context.Background()
	ids := make([]string, n)
	_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for i := range ids {
			ids[i] = fmt.Sprintf("%s-%d", tag, i)
			p.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"id", ids[i], "body", ids[i], "a", "1"}})
		}
		p.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "consumers", Consumer: consumer, Streams: []string{stream, ">"}, Count: int64(n)})
		return nil
	})
	require.NoError(t, err)
	return ids
}

// TestRedisTakesBackLostDeliveries: entries delivered to a live consumer
// that it never received (a lost read reply) are taken back at once when
// its read fails (mode=error: no client retries), when the client re-sent
// the read on a new connection without an error (mode=retry), and, failing
// both, within a reclaim period (mode=periodic; VisibilityTimeout is an
// hour, so another consumer's reclaim cannot be what delivers them). The
// messages its handlers are running meanwhile (three of four handlers)
// are not delivered again.
func TestRedisTakesBackLostDeliveries(t *testing.T) {
	for _, tc := range []struct {
		mode    string
		retries int
		kill    bool
		rounds  int
		bound   time.Duration
	}{
		{"error", -1, true, 5, 2 * time.Second},
		{"retry", 3, true, 5, 2 * time.Second},
		{"periodic", 3, false, 1, 30 * time.Second},
	} {
		t.Run("mode="+tc.mode, func(t *testing.T) {
			s := redistest.StartServer(t)
			c := s.Client(t, func(o *redis.Options) { o.MaxRetries = tc.retries })
			admin := s.Client(t)
			q, err := queue.NewRedis(c, "lost", queue.WithPrefix("t:"))
			require.NoError(t, err)
			stream := streamKey("t:", "lost")
			ctx := context.Background()
			rec := queuetest.NewRecorder()
			var mu sync.Mutex
			first := map[string]time.Time{} // protected by mu
			release := make(chan struct{})
			var releaseOnce sync.Once
			t.Cleanup(func() { releaseOnce.Do(func() { close(release) }) }) // before the consumer's stop
			running := make(chan struct{}, 3)
			queuetest.StartConsumer(t, q, func(_ context.Context, m *queue.Message) error {
				mu.Lock()
				if _, ok := first[m.ID]; !ok {
					first[m.ID] = time.Now()
				}
				mu.Unlock()
				rec.Add(m)
				if string(m.Body) == "held" {
					running <- struct{}{}
					<-release
				}
				return nil
			}, queue.ConsumerName("pod-1"), queue.VisibilityTimeout(time.Hour), queue.Concurrency(4), queue.Prefetch(8))
			var held []string
			for range 3 {
				id, err := q.Publish(ctx, []byte("held"))
				require.NoError(t, err)
				held = append(held, id)
			}
			for range 3 {
				<-running
			}
			var all []string
			var worst time.Duration
			for r := range tc.rounds {
				ids := orphan(t, admin, stream, "pod-1", fmt.Sprintf("r%d", r), 5)
				all = append(all, ids...)
				since := time.Now()
				if tc.kill {
					// The consumer's connections, its blocked read among them.
					require.NoError(t, admin.Do(ctx, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Err())
				}
				require.Eventually(t, func() bool {
					for _, id := range ids {
						if len(rec.Get(id)) == 0 {
							return false
						}
					}
					return true
				}, 60*time.Second, time.Millisecond, "round %d: lost deliveries not taken back", r)
				mu.Lock()
				for _, id := range ids {
					worst = max(worst, first[id].Sub(since))
				}
				mu.Unlock()
			}
			t.Logf("%d rounds: lost deliveries taken back within %v", tc.rounds, worst.Round(time.Millisecond))
			assert.Less(t, worst, tc.bound)
			releaseOnce.Do(func() { close(release) })
			queuetest.WaitStats(t, q, queuetest.Empty, "drained")
			for _, id := range append(all, held...) {
				assert.Len(t, rec.Get(id), 1, "message %s", id)
			}
		})
	}
}
