package queuetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/queue"
)

// StopSample is one measured stop of a Consume call.
type StopSample struct {
	// Stop is the time from the cancel to Consume's return.
	Stop time.Duration
	// Overhead is the part of Stop beyond the handlers that were running at
	// the cancel: from the later of the cancel and the last handler's return
	// to Consume's return. For an idle consumer it equals Stop.
	Overhead time.Duration
	// Running is how many handlers were running at the cancel.
	Running int
	// Handled are the IDs of the messages whose handler ran to the end.
	Handled []string
}

// StopPercentile returns the p-th percentile (0 < p <= 100) of the
// samples' Overhead (nearest rank), or 0 for no samples.
func StopPercentile(ss []StopSample, p float64) time.Duration {
	if len(ss) == 0 {
		return 0
	}
	ds := make([]time.Duration, len(ss))
	for i, s := range ss {
		ds[i] = s.Overhead
	}
	slices.Sort(ds)
	k := int(float64(len(ds))*p/100+0.999999) - 1
	return ds[min(max(k, 0), len(ds)-1)]
}

// StopCase is a state a consumer is stopped in, for [MeasureStop].
type StopCase struct {
	// Name names the case in subtests and sub-benchmarks.
	Name string
	// Busy is how many handlers are running at the cancel (0: idle).
	Busy int
	// Backlog is how many more messages are published than Busy: they are
	// prefetched or wait in the queue at the cancel.
	Backlog int
}

// StopCases are the cases the contract suite and the benchmarks measure:
// an idle consumer, a busy one whose fetcher waits on an empty queue, and
// a busy one with a backlog (messages prefetched and not started at the
// cancel, which must be handed back).
var StopCases = []StopCase{{"idle", 0, 0}, {"busy", 2, 0}, {"backlog", 2, 6}}

// MeasureStop starts q.Consume, brings it to the state sc and cancels it,
// and measures how long Consume takes to return.
//
// Idle (sc.Busy == 0): MeasureStop publishes one message, waits until it
// was handled and acknowledged (the queue is empty), then cancels at a
// random moment within the next 400 ms, so that the cancel falls anywhere
// in the consumer's read cycle. q must hold no other message.
//
// Busy: it publishes sc.Busy+sc.Backlog messages and consumes them with
// Concurrency(sc.Busy) handlers of handlerTime each and
// Prefetch(max(Busy+Backlog/2, 2*Busy)), so that the fetcher has room to
// read, and cancels once sc.Busy handlers are running. The
// handlers must finish (their ctx is not cancelled before the shutdown
// timeout) and be acknowledged; the messages fetched and not started are
// handed back. Messages left from earlier calls may be handled too.
//
// opts are added to the Consume call.
func MeasureStop(tb testing.TB, q queue.Queue, sc StopCase, handlerTime time.Duration, opts ...queue.ConsumeOption) StopSample {
	tb.Helper()
	ctx := context.Background()
	busy := sc.Busy
	n := 1
	if busy > 0 {
		n = busy + sc.Backlog
	}
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = fmt.Appendf(nil, "stop-%d", i)
	}
	_, err := q.PublishBatch(ctx, bodies)
	require.NoError(tb, err)

	var (
		mu       sync.Mutex
		running  int
		lastEnd  time.Time
		handled  []string
		hctxDone bool
	)
	allBusy := make(chan struct{})
	firstDone := make(chan struct{})
	var busyOnce, doneOnce sync.Once
	h := func(hctx context.Context, m *queue.Message) error {
		mu.Lock()
		running++
		if busy > 0 && running >= busy {
			busyOnce.Do(func() { close(allBusy) })
		}
		mu.Unlock()
		if busy > 0 {
			time.Sleep(handlerTime)
		}
		mu.Lock()
		running--
		lastEnd = time.Now()
		handled = append(handled, m.ID)
		hctxDone = hctxDone || hctx.Err() != nil
		mu.Unlock()
		doneOnce.Do(func() { close(firstDone) })
		return nil
	}
	copts := append([]queue.ConsumeOption{queue.ShutdownTimeout(time.Minute)}, opts...)
	if busy > 0 {
		copts = append(copts, queue.Concurrency(busy), queue.Prefetch(max(busy+sc.Backlog/2, 2*busy)))
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- q.Consume(cctx, h, copts...) }()

	wait := func(ch <-chan struct{}, what string) {
		select {
		case <-ch:
		case err := <-done:
			require.FailNow(tb, "Consume returned early", "%s: Consume returned %v", what, err)
		case <-time.After(30 * time.Second):
			// The queue's counts say whether the messages were still there
			// (a consumer that never got them) or gone (lost).
			st, err := q.Stats(ctx)
			require.FailNow(tb, "consumer stuck", "%s: not within 30s (stats %+v, err %v)", what, st, err)
		}
	}
	if busy == 0 {
		wait(firstDone, "the probe message was not handled")
		require.Eventually(tb, func() bool {
			st, err := q.Stats(ctx)
			return err == nil && st.Ready == 0 && st.InFlight == 0
		}, 30*time.Second, time.Millisecond, "the probe message was not acknowledged")
		time.Sleep(rand.N(400 * time.Millisecond)) // a random moment of the idle read cycle
	} else {
		wait(allBusy, "the busy handlers did not start")
	}
	mu.Lock()
	s := StopSample{Running: running}
	mu.Unlock()
	cancelled := time.Now()
	cancel()
	select {
	case err := <-done:
		require.NoError(tb, err)
	case <-time.After(60 * time.Second):
		require.FailNow(tb, "Consume did not return within 60s of its ctx being cancelled")
	}
	returned := time.Now()
	mu.Lock()
	defer mu.Unlock()
	assert.Zero(tb, running, "Consume returned while handlers were running")
	assert.False(tb, hctxDone, "a handler's ctx was cancelled by a clean stop")
	s.Stop = returned.Sub(cancelled)
	s.Overhead = returned.Sub(cancelled)
	if lastEnd.After(cancelled) {
		s.Overhead = returned.Sub(lastEnd)
	}
	s.Handled = handled
	return s
}

// testCancelLatency: cancelling an idle or busy Consume returns promptly
// (beyond the running handlers), the running handlers finish and are
// acknowledged, and the messages fetched but not started are handed back,
// not lost. The bounds are generous (they only catch a consumer that
// sleeps or reads on after the cancel); BenchmarkConsumeCancel reports the
// real figures.
func testCancelLatency(t *testing.T, b *suite) {
	noLeaks(t, b)
	const tries = 20
	for _, sc := range StopCases {
		t.Run(sc.Name, func(t *testing.T) {
			q := b.newQueue(t)
			ss := make([]StopSample, 0, tries)
			handled := map[string]int{}
			for range tries {
				s := MeasureStop(t, q, sc, 30*time.Millisecond)
				ss = append(ss, s)
				for _, id := range s.Handled {
					handled[id]++
				}
			}
			p50, p99 := StopPercentile(ss, 50), StopPercentile(ss, 99)
			t.Logf("stop beyond running handlers over %d tries: p50 %v, p99 %v", tries, p50, p99)
			assert.Less(t, p50, 300*time.Millisecond, "median stop")
			assert.Less(t, p99, time.Second, "p99 stop")

			// Everything not handled is still in the queue: a last consumer
			// gets it, and nothing handled to the end comes back.
			rest := NewRecorder()
			c := StartConsumer(t, q, func(_ context.Context, m *queue.Message) error { rest.Add(m); return nil })
			want := tries
			if sc.Busy > 0 {
				want = tries * (sc.Busy + sc.Backlog)
			}
			WaitStats(t, q, func(st queue.Stats) bool { return Empty(st) && st.Dead == 0 }, "the messages left by the stops were not handed back")
			// A broker's counts can say empty a moment before a message
			// handed back is visible again (RabbitMQ quorum queues requeue
			// asynchronously): wait for every message, with a deadline.
			assert.Eventually(t, func() bool {
				rest.mu.Lock()
				defer rest.mu.Unlock()
				return len(handled)+len(rest.seen) >= want
			}, 30*time.Second, 5*time.Millisecond, "messages handed back by the stops did not come again")
			require.NoError(t, c.Stop(t))
			rest.mu.Lock()
			defer rest.mu.Unlock()
			for id, n := range handled {
				assert.Equal(t, 1, n, "message %s was handled to the end %d times", id, n)
				assert.Empty(t, rest.seen[id], "message %s was handled before a clean stop and delivered again", id)
			}
			assert.Equal(t, want, len(handled)+len(rest.seen), "messages handled across the stops and after")
		})
	}
}
