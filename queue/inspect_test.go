package queue_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/queue"
)

// inspectScene runs a real queue into every state: acked, dead (handler
// errors), in flight (handlers blocked), delayed, and ready (published
// while paused).
type inspectScene struct {
	q       *queue.Redis
	in      *queue.Inspector
	release chan struct{} // closes to let the blocked handlers finish
	unblock func()        // closes release (once)
	handled atomic.Int64
	stop    func()
}

func newInspectScene(t *testing.T, db *redistest.DB, name string) *inspectScene {
	t.Helper()
	ctx := t.Context()
	q, err := queue.NewRedis(db.Client, name, queue.WithPrefix(db.Prefix))
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })
	in, err := queue.NewInspector(db.NewClient(t), queue.WithPrefix(db.Prefix))
	require.NoError(t, err)
	s := &inspectScene{q: q, in: in, release: make(chan struct{})}
	var bodies [][]byte
	for i := range 5 {
		bodies = append(bodies, fmt.Appendf(nil, "ok-%d", i))
	}
	for i := range 10 {
		bodies = append(bodies, fmt.Appendf(nil, "bad-%d", i))
	}
	for i := range 5 {
		bodies = append(bodies, fmt.Appendf(nil, "slow-%d", i))
	}
	_, err = q.PublishBatch(ctx, bodies)
	require.NoError(t, err)
	for i := range 3 {
		_, err := q.Publish(ctx, fmt.Appendf(nil, "later-%d", i), queue.WithDelay(time.Hour), queue.WithHeaders(map[string]string{"n": fmt.Sprint(i)}))
		require.NoError(t, err)
	}
	cctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = q.Consume(cctx, func(ctx context.Context, m *queue.Message) error {
			defer s.handled.Add(1)
			b := string(m.Body)
			switch {
			case strings.HasPrefix(b, "bad-"):
				return queue.Permanent(fmt.Errorf("parse error: %s is Not JSON", b))
			case strings.HasPrefix(b, "slow-"):
				select {
				case <-s.release:
				case <-ctx.Done():
				}
			}
			return nil
		}, queue.Concurrency(8), queue.ConsumerName("worker-1"), queue.ShutdownTimeout(5*time.Second))
	}()
	var once, released sync.Once
	s.unblock = func() { released.Do(func() { close(s.release) }) }
	s.stop = func() {
		once.Do(func() {
			s.unblock()
			cancel()
			<-done
		})
	}
	t.Cleanup(s.stop)
	require.Eventually(t, func() bool {
		qi, err := in.Queue(ctx, name)
		return err == nil && qi.Dead == 10 && qi.InFlight == 5 && s.handled.Load() == 15
	}, 30*time.Second, 10*time.Millisecond, "the consumer did not reach 5 acked, 10 dead, 5 in flight")
	return s
}

// waitIdle waits until every consumer of the queue has stopped reading for
// a while: a paused consumer does not call XREADGROUP, so its idle time
// grows past its read's block time.
func waitIdle(t *testing.T, in *queue.Inspector, name string, consumers int) {
	t.Helper()
	require.Eventually(t, func() bool {
		cs, err := in.Consumers(t.Context(), name)
		if err != nil || len(cs) != consumers {
			return false
		}
		for _, c := range cs {
			if c.Idle < time.Second {
				return false
			}
		}
		return true
	}, 30*time.Second, 20*time.Millisecond, "the consumers did not stop reading")
}

// TestInspector creates every state by running a queue, on a single node
// and on a Cluster, then reads and operates it with the Inspector.
func TestInspector(t *testing.T) {
	for _, mk := range []func(testing.TB) *redistest.DB{redistest.New, redistest.NewCluster} {
		db := mk(t)
		name := "single"
		if db.Cluster {
			name = "cluster"
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
			defer cancel()
			s := newInspectScene(t, db, "orders")
			in := s.in

			// Pause, then publish: the messages stay ready.
			require.NoError(t, in.Pause(ctx, "orders", "tester"))
			waitIdle(t, in, "orders", 1)
			for i := range 4 {
				_, err := s.q.Publish(ctx, fmt.Appendf(nil, "ready-%d", i))
				require.NoError(t, err)
			}

			// Another queue under the prefix, and one under another prefix.
			other, err := queue.NewRedis(db.Client, "emails", queue.WithPrefix(db.Prefix))
			require.NoError(t, err)
			_, err = other.Publish(ctx, []byte("hi"))
			require.NoError(t, err)
			elsewhere, err := queue.NewRedis(db.Client, "orders", queue.WithPrefix(db.Prefix+"x:"))
			require.NoError(t, err)
			_, err = elsewhere.Publish(ctx, []byte("hi"))
			require.NoError(t, err)

			qs, err := in.Queues(ctx)
			require.NoError(t, err)
			require.Len(t, qs, 2)
			assert.Equal(t, "emails", qs[0].Name)
			assert.Equal(t, int64(1), qs[0].Ready)
			o := qs[1]
			assert.Equal(t, "orders", o.Name)
			assert.Equal(t, int64(4), o.Ready)
			assert.Equal(t, int64(5), o.InFlight)
			assert.Equal(t, int64(3), o.Delayed)
			assert.Equal(t, int64(10), o.Dead)
			assert.Equal(t, int64(1), o.Consumers)
			assert.True(t, o.Paused)
			assert.WithinDuration(t, time.Now(), o.PausedAt, time.Minute)
			assert.Greater(t, o.OldestAge, time.Duration(0))
			assert.Equal(t, int64(27), o.Published)
			assert.Equal(t, int64(5), o.Acked)
			assert.Equal(t, int64(10), o.Failed)
			assert.Greater(t, o.Throughput, 0.0)

			// History: this minute (or the last two, at a minute's edge).
			hist, err := in.History(ctx, "orders", 60)
			require.NoError(t, err)
			require.Len(t, hist, 60)
			var pub, acked, dead int64
			for _, h := range hist[58:] {
				pub, acked, dead = pub+h.Published, acked+h.Acked, dead+h.Dead
			}
			assert.Equal(t, int64(27), pub)
			assert.Equal(t, int64(5), acked)
			assert.Equal(t, int64(10), dead)
			last := hist[59]
			if last.Depth < 0 {
				last = hist[58]
			}
			assert.Equal(t, int64(12), last.Depth, "4 ready + 5 in flight + 3 delayed")
			assert.Equal(t, int64(-1), hist[0].Depth, "an hour ago nothing was recorded")
			assert.True(t, hist[59].Minute.After(hist[58].Minute))

			// Every state, page by page.
			ready, err := in.Messages(ctx, "orders", queue.StateReady, queue.PageOptions{Limit: 3})
			require.NoError(t, err)
			require.Len(t, ready.Messages, 3)
			assert.Equal(t, int64(4), ready.Total)
			assert.Equal(t, "ready-0", string(ready.Messages[0].Body))
			require.NotEmpty(t, ready.Next)
			ready2, err := in.Messages(ctx, "orders", queue.StateReady, queue.PageOptions{Limit: 3, Cursor: ready.Next})
			require.NoError(t, err)
			require.Len(t, ready2.Messages, 1)
			assert.Equal(t, "ready-3", string(ready2.Messages[0].Body))
			assert.Empty(t, ready2.Next)

			fl, err := in.Messages(ctx, "orders", queue.StateInFlight, queue.PageOptions{})
			require.NoError(t, err)
			require.Len(t, fl.Messages, 5)
			for _, m := range fl.Messages {
				assert.True(t, strings.HasPrefix(string(m.Body), "slow-"), string(m.Body))
				assert.Equal(t, "worker-1", m.Consumer)
				assert.Equal(t, int64(1), m.Deliveries)
			}

			dl, err := in.Messages(ctx, "orders", queue.StateDelayed, queue.PageOptions{Limit: 2})
			require.NoError(t, err)
			require.Len(t, dl.Messages, 2)
			assert.Equal(t, int64(3), dl.Total)
			assert.Equal(t, "later-0", string(dl.Messages[0].Body))
			assert.Equal(t, "0", dl.Messages[0].Headers["n"])
			assert.WithinDuration(t, time.Now().Add(time.Hour), dl.Messages[0].DueAt, time.Minute)
			dl2, err := in.Messages(ctx, "orders", queue.StateDelayed, queue.PageOptions{Limit: 2, Cursor: dl.Next})
			require.NoError(t, err)
			require.Len(t, dl2.Messages, 1)
			assert.Empty(t, dl2.Next)

			var dead1 []queue.MessageInfo
			cursor := ""
			for {
				p, err := in.Messages(ctx, "orders", queue.StateDead, queue.PageOptions{Limit: 4, Cursor: cursor})
				require.NoError(t, err)
				assert.Equal(t, int64(10), p.Total)
				dead1 = append(dead1, p.Messages...)
				if p.Next == "" {
					break
				}
				cursor = p.Next
			}
			require.Len(t, dead1, 10)
			idOf := map[string]string{} // body -> message ID
			for _, m := range dead1 {
				idOf[string(m.Body)] = m.ID
				assert.Equal(t, "parse error: "+string(m.Body)+" is Not JSON", m.LastError)
				assert.WithinDuration(t, time.Now(), m.DeadAt, time.Minute)
			}
			require.Len(t, idOf, 10)

			// The error filter ignores case and runs in Redis.
			f, err := in.Messages(ctx, "orders", queue.StateDead, queue.PageOptions{ErrorContains: "BAD-3 IS not"})
			require.NoError(t, err)
			require.Len(t, f.Messages, 1)
			assert.Equal(t, "bad-3", string(f.Messages[0].Body))
			f, err = in.Messages(ctx, "orders", queue.StateDead, queue.PageOptions{ErrorContains: "not json"})
			require.NoError(t, err)
			assert.Len(t, f.Messages, 10)
			f, err = in.Messages(ctx, "orders", queue.StateDead, queue.PageOptions{ErrorContains: "timeout"})
			require.NoError(t, err)
			assert.Empty(t, f.Messages)

			// Operations.
			_, err = in.Requeue(ctx, "orders", queue.Selection{})
			assert.ErrorIs(t, err, queue.ErrEmptySelection)
			n, err := in.Requeue(ctx, "orders", queue.Selection{ErrorContains: "bad-3 "})
			require.NoError(t, err)
			assert.Equal(t, 1, n)
			n, err = in.Delete(ctx, "orders", queue.Selection{IDs: []string{idOf["bad-0"], idOf["bad-1"], "nope"}})
			assert.ErrorIs(t, err, queue.ErrNotFound)
			assert.Equal(t, 2, n)
			n, err = in.Delete(ctx, "orders", queue.Selection{ErrorContains: "bad-4"})
			require.NoError(t, err)
			assert.Equal(t, 1, n)
			n, err = in.Requeue(ctx, "orders", queue.Selection{IDs: []string{idOf["bad-2"]}})
			require.NoError(t, err)
			assert.Equal(t, 1, n)
			qi, err := in.Queue(ctx, "orders")
			require.NoError(t, err)
			assert.Equal(t, int64(5), qi.Dead, "10 - 1 requeued - 3 deleted - 1 requeued")
			assert.Equal(t, int64(6), qi.Ready, "4 + 2 requeued, still paused")
			n, err = in.Requeue(ctx, "orders", queue.Selection{All: true})
			require.NoError(t, err)
			assert.Equal(t, 5, n)
			requeued, err := in.Messages(ctx, "orders", queue.StateReady, queue.PageOptions{})
			require.NoError(t, err)
			require.Len(t, requeued.Messages, 11)
			for _, m := range requeued.Messages {
				assert.Equal(t, 1, m.Attempt)
			}

			// Resume: the requeued bad ones die again, the others finish.
			require.NoError(t, in.Resume(ctx, "orders"))
			s.unblock()
			require.Eventually(t, func() bool {
				qi, err := in.Queue(ctx, "orders")
				return err == nil && qi.Dead == 7 && qi.Ready == 0 && qi.InFlight == 0 && !qi.Paused
			}, 30*time.Second, 10*time.Millisecond)
			hist, err = in.History(ctx, "orders", 2)
			require.NoError(t, err)
			assert.Equal(t, int64(7), hist[0].Requeued+hist[1].Requeued)
			assert.Equal(t, int64(3), hist[0].Deleted+hist[1].Deleted)

			cs, err := in.Consumers(ctx, "orders")
			require.NoError(t, err)
			require.Len(t, cs, 1)
			assert.Equal(t, "worker-1", cs[0].Name)
			none, err := in.Consumers(ctx, "nothing")
			require.NoError(t, err)
			assert.Empty(t, none)
			empty, err := in.Queue(ctx, "nothing")
			require.NoError(t, err)
			assert.Equal(t, queue.QueueInfo{Name: "nothing"}, empty)
		})
	}
}

// TestPauseAcrossReplicas: a paused queue stops delivering on every
// replica (each its own client and queue value) and resumes.
func TestPauseAcrossReplicas(t *testing.T) {
	// A server of its own: on the shared one, other sessions' commands
	// stalled the replicas' reads for tens of seconds now and then.
	srv := redistest.StartServer(t)
	const prefix = "t:"
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	in, err := queue.NewInspector(srv.Client(t), queue.WithPrefix(prefix))
	require.NoError(t, err)
	var mu sync.Mutex // protects got
	got := map[string]string{}
	var wg sync.WaitGroup
	cctx, stop := context.WithCancel(ctx)
	defer func() { stop(); wg.Wait() }()
	var producer *queue.Redis
	for r := range 2 {
		q, err := queue.NewRedis(srv.Client(t), "jobs", queue.WithPrefix(prefix))
		require.NoError(t, err)
		t.Cleanup(func() { _ = q.Close() })
		producer = q
		wg.Go(func() {
			_ = q.Consume(cctx, func(ctx context.Context, m *queue.Message) error {
				mu.Lock()
				got[string(m.Body)] = fmt.Sprint("replica-", r)
				mu.Unlock()
				return nil
			}, queue.ConsumerName(fmt.Sprint("replica-", r)), queue.Concurrency(2))
		})
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	for i := range 20 {
		_, err := producer.Publish(ctx, fmt.Appendf(nil, "before-%d", i))
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return count() == 20 }, 30*time.Second, 5*time.Millisecond)
	waitConsumers := func() {
		require.Eventually(t, func() bool {
			cs, err := in.Consumers(ctx, "jobs")
			return err == nil && len(cs) == 2
		}, 30*time.Second, 10*time.Millisecond)
	}
	waitConsumers()

	require.NoError(t, in.Pause(ctx, "jobs", ""))
	waitIdle(t, in, "jobs", 2)
	for i := range 20 {
		_, err := producer.Publish(ctx, fmt.Appendf(nil, "paused-%d", i))
		require.NoError(t, err)
	}
	// Nothing is delivered while paused. The window is several times the
	// consumers' pause check and read block, so a consumer that ignored the
	// flag would have taken messages (the first 20 took milliseconds).
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		require.Equal(t, 20, count(), "a paused queue delivered")
		time.Sleep(20 * time.Millisecond)
	}
	qi, err := in.Queue(ctx, "jobs")
	require.NoError(t, err)
	assert.Equal(t, int64(20), qi.Ready)
	assert.True(t, qi.Paused)

	require.NoError(t, in.Resume(ctx, "jobs"))
	require.Eventually(t, func() bool { return count() == 40 }, 30*time.Second, 5*time.Millisecond)
	mu.Lock()
	replicas := map[string]bool{}
	for _, r := range got {
		replicas[r] = true
	}
	mu.Unlock()
	assert.Len(t, replicas, 2, "both replicas consumed")
}

func TestInspectorArguments(t *testing.T) {
	_, err := queue.NewInspector(nil)
	require.Error(t, err)
	db := redistest.New(t)
	in, err := queue.NewInspector(db.Client, queue.WithPrefix(db.Prefix))
	require.NoError(t, err)
	ctx := t.Context()
	_, err = in.Queue(ctx, "a{b}")
	assert.Error(t, err)
	_, err = in.Messages(ctx, "q", "nope", queue.PageOptions{})
	assert.ErrorIs(t, err, queue.ErrUnknownState)
	_, err = in.Messages(ctx, "q", queue.StateDelayed, queue.PageOptions{Cursor: "x"})
	assert.Error(t, err)
	_, err = in.Delete(ctx, "q", queue.Selection{})
	assert.ErrorIs(t, err, queue.ErrEmptySelection)
	n, err := in.Requeue(ctx, "q", queue.Selection{All: true})
	require.NoError(t, err)
	assert.Zero(t, n)
	for _, tc := range []struct {
		in   string
		want queue.State
	}{{"ready", queue.StateReady}, {"inflight", queue.StateInFlight}, {"In-Flight", queue.StateInFlight}, {"delayed", queue.StateDelayed}, {"dead", queue.StateDead}} {
		got, err := queue.ParseState(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseState(%q): got %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	_, err = queue.ParseState("gone")
	assert.True(t, errors.Is(err, queue.ErrUnknownState))
}
