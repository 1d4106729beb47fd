package queuetest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/queue"
)

// Consumer runs Consume in the background; Stop cancels it and returns its
// error.
type Consumer struct {
	cancel context.CancelFunc
	done   chan error
}

// StartConsumer runs q.Consume(h, opts...) until Stop or the end of the test.
func StartConsumer(t *testing.T, q queue.Queue, h any, opts ...queue.ConsumeOption) *Consumer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &Consumer{cancel: cancel, done: make(chan error, 1)}
	go func() { c.done <- q.Consume(ctx, h, opts...) }()
	t.Cleanup(func() { c.Stop(t) })
	return c
}

// Stop cancels Consume and returns its error; it fails the test if Consume
// does not return within 30s.
func (c *Consumer) Stop(t *testing.T) error {
	t.Helper()
	c.cancel()
	select {
	case err, ok := <-c.done:
		if ok {
			close(c.done)
		}
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Consume did not return within 30s of its ctx being cancelled")
		return nil
	}
}

// Recorder collects handled messages by ID. It is safe for concurrent use.
type Recorder struct {
	mu   sync.Mutex
	seen map[string][]*queue.Message
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{seen: make(map[string][]*queue.Message)} }

// Add records a delivery of m.
func (r *Recorder) Add(m *queue.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen[m.ID] = append(r.seen[m.ID], m)
}

// Distinct returns how many distinct message IDs were recorded.
func (r *Recorder) Distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

// Get returns the recorded deliveries of the message with ID id.
func (r *Recorder) Get(id string) []*queue.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*queue.Message(nil), r.seen[id]...)
}

// WaitStats polls q.Stats until want holds (20s at most) and returns them.
func WaitStats(t *testing.T, q queue.Queue, want func(queue.Stats) bool, msg string) queue.Stats {
	t.Helper()
	var st queue.Stats
	require.Eventually(t, func() bool {
		var err error
		st, err = q.Stats(context.Background())
		return err == nil && want(st)
	}, 20*time.Second, 10*time.Millisecond, "%s; last stats %+v", msg, st)
	return st
}

// Empty reports whether nothing is ready, in flight or delayed.
func Empty(st queue.Stats) bool {
	return st.Ready == 0 && st.InFlight == 0 && st.Delayed == 0
}

// FastRetry is a Backoff for tests: 10ms whatever the attempt.
func FastRetry(int) time.Duration { return 10 * time.Millisecond }

func testPublishConsume(t *testing.T, b *suite) {
	noLeaks(t, b)
	q := b.newQueue(t)
	ctx := context.Background()
	const n = 200
	ids := make(map[string]int, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := q.Publish(ctx, []byte(strconv.Itoa(i)), queue.WithHeaders(map[string]string{"i": strconv.Itoa(i)}))
			assert.NoError(t, err)
			mu.Lock()
			ids[id] = i
			mu.Unlock()
		}()
	}
	wg.Wait()
	require.Len(t, ids, n, "got %d distinct IDs, want %d", len(ids), n)
	st, err := q.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(n), st.Ready+st.InFlight)

	rec := NewRecorder()
	StartConsumer(t, q, func(ctx context.Context, m *queue.Message) error {
		rec.Add(m)
		return nil
	}, queue.Concurrency(4))
	require.Eventually(t, func() bool { return rec.Distinct() == n }, 20*time.Second, 5*time.Millisecond)
	for id, i := range ids {
		ms := rec.Get(id)
		require.Len(t, ms, 1, "message %s delivered %d times, want 1", id, len(ms))
		m := ms[0]
		assert.Equal(t, strconv.Itoa(i), string(m.Body))
		assert.Equal(t, map[string]string{"i": strconv.Itoa(i)}, m.Headers)
		assert.Equal(t, 1, m.Attempt)
		assert.WithinDuration(t, time.Now(), m.PublishedAt, time.Minute)
		assert.Empty(t, m.LastError)
	}
	WaitStats(t, q, func(s queue.Stats) bool { return Empty(s) && s.Dead == 0 && s.OldestAge == 0 }, "queue should be Empty")
}

func testPublishBatch(t *testing.T, b *suite) {
	noLeaks(t, b)
	q := b.newQueue(t)
	ctx := context.Background()
	bodies := make([][]byte, 300)
	for i := range bodies {
		bodies[i] = []byte(fmt.Sprintf("b%d", i))
	}
	bodies[7] = []byte{} // Empty bodies are allowed
	ids, err := q.PublishBatch(ctx, bodies)
	require.NoError(t, err)
	require.Len(t, ids, len(bodies))
	idx := make(map[string]int)
	for i, id := range ids {
		require.NotEmpty(t, id)
		idx[id] = i
	}
	require.Len(t, idx, len(bodies), "IDs must be distinct")
	rec := NewRecorder()
	StartConsumer(t, q, queue.Handler(func(_ context.Context, m *queue.Message) error {
		rec.Add(m)
		return nil
	}))
	require.Eventually(t, func() bool { return rec.Distinct() == len(bodies) }, 20*time.Second, 5*time.Millisecond)
	for id, i := range idx {
		assert.Equal(t, string(bodies[i]), string(rec.Get(id)[0].Body))
	}
	Empty, err := q.PublishBatch(ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, Empty)
}

func testRetry(t *testing.T, b *suite) {
	noLeaks(t, b)
	q := b.newQueue(t)
	ctx := context.Background()
	id, err := q.Publish(ctx, []byte("flaky"))
	require.NoError(t, err)
	var backoffs []int
	var mu sync.Mutex
	rec := NewRecorder()
	StartConsumer(t, q, func(_ context.Context, m *queue.Message) error {
		rec.Add(m)
		if m.Attempt < 3 {
			return fmt.Errorf("boom %d", m.Attempt)
		}
		return nil
	}, queue.MaxAttempts(5), queue.Backoff(func(attempt int) time.Duration {
		mu.Lock()
		backoffs = append(backoffs, attempt)
		mu.Unlock()
		return time.Duration(attempt) * 20 * time.Millisecond
	}))
	require.Eventually(t, func() bool { return len(rec.Get(id)) == 3 }, 20*time.Second, 5*time.Millisecond)
	ms := rec.Get(id)
	for i, m := range ms {
		assert.Equal(t, i+1, m.Attempt, "attempt of delivery %d", i)
		assert.Equal(t, "flaky", string(m.Body))
		assert.Equal(t, id, m.ID)
	}
	assert.Empty(t, ms[0].LastError)
	assert.Equal(t, "boom 1", ms[1].LastError)
	assert.Equal(t, "boom 2", ms[2].LastError)
	assert.Equal(t, ms[0].PublishedAt, ms[2].PublishedAt, "PublishedAt survives retries")
	mu.Lock()
	assert.Equal(t, []int{1, 2}, backoffs)
	mu.Unlock()
	WaitStats(t, q, func(s queue.Stats) bool { return Empty(s) && s.Dead == 0 }, "queue should be Empty")
}

func testDeadLetter(t *testing.T, b *suite) {
	noLeaks(t, b)
	q := b.newQueue(t)
	ctx := context.Background()
	poison, err := q.Publish(ctx, []byte("poison"), queue.WithHeaders(map[string]string{"k": "v"}))
	require.NoError(t, err)
	good, err := q.Publish(ctx, []byte("good"))
	require.NoError(t, err)
	var fail atomic.Bool
	fail.Store(true)
	rec := NewRecorder()
	c := StartConsumer(t, q, func(_ context.Context, m *queue.Message) error {
		rec.Add(m)
		if string(m.Body) == "poison" && fail.Load() {
			return errors.New("cannot parse")
		}
		return nil
	}, queue.MaxAttempts(3), queue.Backoff(FastRetry))
	WaitStats(t, q, func(s queue.Stats) bool { return s.Dead == 1 && Empty(s) }, "poison message should be dead")
	assert.Len(t, rec.Get(poison), 3, "poison tried MaxAttempts times")
	assert.Len(t, rec.Get(good), 1)

	dead, err := q.DeadLetters(ctx, 10)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	assert.Equal(t, poison, dead[0].ID)
	assert.Equal(t, "poison", string(dead[0].Body))
	assert.Equal(t, 3, dead[0].Attempt)
	assert.Equal(t, "cannot parse", dead[0].LastError)
	assert.Equal(t, map[string]string{"k": "v"}, dead[0].Headers)

	err = q.Requeue(ctx, "no-such-id")
	require.ErrorIs(t, err, queue.ErrNotFound)

	fail.Store(false)
	require.NoError(t, q.Requeue(ctx, poison))
	require.Eventually(t, func() bool { return len(rec.Get(poison)) == 4 }, 20*time.Second, 5*time.Millisecond)
	assert.Equal(t, 1, rec.Get(poison)[3].Attempt, "requeue resets the attempt count")
	WaitStats(t, q, func(s queue.Stats) bool { return s.Dead == 0 && Empty(s) }, "requeued message should be done")
	require.NoError(t, c.Stop(t))

	// Requeue with no IDs brings back every dead letter.
	for i := range 3 {
		_, err := q.Publish(ctx, []byte("p"+strconv.Itoa(i)))
		require.NoError(t, err)
	}
	fail.Store(true)
	c = StartConsumer(t, q, func(context.Context, *queue.Message) error { return errors.New("no") }, queue.MaxAttempts(1))
	WaitStats(t, q, func(s queue.Stats) bool { return s.Dead == 3 && Empty(s) }, "three dead letters")
	require.NoError(t, c.Stop(t))
	all, err := q.DeadLetters(ctx, 0)
	require.NoError(t, err)
	assert.Len(t, all, 3)
	require.NoError(t, q.Requeue(ctx))
	st := WaitStats(t, q, func(s queue.Stats) bool { return s.Dead == 0 }, "requeue all")
	assert.Equal(t, int64(3), st.Ready)
}

func testPermanentAndPanic(t *testing.T, b *suite) {
	noLeaks(t, b)
	q := b.newQueue(t)
	ctx := context.Background()
	perm, err := q.Publish(ctx, []byte("perm"))
	require.NoError(t, err)
	pan, err := q.Publish(ctx, []byte("panic"))
	require.NoError(t, err)
	var after []string
	for i := range 20 {
		id, err := q.Publish(ctx, []byte("ok"+strconv.Itoa(i)))
		require.NoError(t, err)
		after = append(after, id)
	}
	rec := NewRecorder()
	StartConsumer(t, q, func(_ context.Context, m *queue.Message) error {
		rec.Add(m)
		switch string(m.Body) {
		case "perm":
			return queue.Permanent(errors.New("bad input"))
		case "panic":
			panic("handler bug")
		}
		return nil
	}, queue.MaxAttempts(2), queue.Backoff(FastRetry), queue.Concurrency(1))
	WaitStats(t, q, func(s queue.Stats) bool { return s.Dead == 2 && Empty(s) }, "both dead")
	assert.Len(t, rec.Get(perm), 1, "a permanent error is not retried")
	assert.Len(t, rec.Get(pan), 2, "a panic is a failure, retried")
	for _, id := range after {
		assert.Len(t, rec.Get(id), 1)
	}
	dead, err := q.DeadLetters(ctx, 0)
	require.NoError(t, err)
	byID := map[string]*queue.Message{}
	for _, m := range dead {
		byID[m.ID] = m
	}
	assert.Equal(t, "bad input", byID[perm].LastError)
	assert.Contains(t, byID[pan].LastError, "handler bug")

	// A settlement is counted once its backend call returned, which is
	// after the stats above could see its effect: wait for the counts.
	counted := q.(interface{ Counters() queue.Counters })
	var cnt queue.Counters
	require.Eventually(t, func() bool {
		cnt = counted.Counters()
		return cnt.DeadLettered == 2 && cnt.Acked == 20
	}, 20*time.Second, 10*time.Millisecond, "settlements counted; last counters %+v", cnt)
	assert.Equal(t, int64(22), cnt.Published)
	assert.Equal(t, int64(2), cnt.Panics)
	assert.Equal(t, int64(1), cnt.Retried, "the panicking message, once")
	assert.Equal(t, int64(2), cnt.DeadLettered)
	assert.Equal(t, int64(20), cnt.Acked)
}

func testDelay(t *testing.T, b *suite) {
	noLeaks(t, b)
	q := b.newQueue(t)
	ctx := context.Background()
	const delay = time.Second
	var got sync.Map
	StartConsumer(t, q, func(_ context.Context, m *queue.Message) error {
		got.Store(m.ID, time.Now())
		return nil
	})
	// The consumer is running (a broker's group joined) before the clock
	// starts: a consumer that started after the delay was up would find both
	// messages due, and their order would say nothing.
	probe, err := q.Publish(ctx, []byte("probe"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { _, ok := got.Load(probe); return ok }, 20*time.Second, 5*time.Millisecond,
		"the consumer did not start")
	start := time.Now()
	id, err := q.Publish(ctx, []byte("later"), queue.WithDelay(delay))
	require.NoError(t, err)
	now, err := q.Publish(ctx, []byte("now"))
	require.NoError(t, err)
	st, err := q.Stats(ctx)
	require.NoError(t, err)
	if time.Since(start) < delay/2 { // not yet due: counted as delayed
		assert.Equal(t, int64(1), st.Delayed)
	}
	require.Eventually(t, func() bool { _, ok := got.Load(id); return ok }, 20*time.Second, 5*time.Millisecond)
	at, _ := got.Load(id)
	assert.GreaterOrEqual(t, at.(time.Time).Sub(start), delay-20*time.Millisecond, "delayed message delivered early")
	nowAt, ok := got.Load(now)
	require.True(t, ok)
	assert.True(t, nowAt.(time.Time).Before(at.(time.Time)), "the undelayed message goes first")
	WaitStats(t, q, Empty, "queue should be Empty")
}

func testDedup(t *testing.T, b *suite) {
	noLeaks(t, b)
	q := b.newQueue(t)
	ctx := context.Background()
	if !b.caps.Dedup {
		_, err := q.Publish(ctx, []byte("a"), queue.WithDedupKey("order-1", time.Minute))
		require.ErrorIs(t, err, queue.ErrUnsupported, "WithDedupKey without the Dedup capability")
		_, err = q.Publish(ctx, []byte("x"), queue.WithID("fixed-id"))
		require.ErrorIs(t, err, queue.ErrUnsupported, "WithID without the Dedup capability")
		st, err := q.Stats(ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(0), st.Ready+st.Delayed, "an unsupported publish adds nothing")
		return
	}
	first, err := q.Publish(ctx, []byte("a"), queue.WithDedupKey("order-1", time.Minute))
	require.NoError(t, err)
	second, err := q.Publish(ctx, []byte("a again"), queue.WithDedupKey("order-1", time.Minute))
	require.ErrorIs(t, err, queue.ErrDuplicate)
	assert.Equal(t, first, second, "a duplicate reports the first message's ID")
	_, err = q.Publish(ctx, []byte("b"), queue.WithDedupKey("order-2", time.Minute))
	require.NoError(t, err)
	short, err := q.Publish(ctx, []byte("c"), queue.WithDedupKey("order-3", 50*time.Millisecond))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		id, err := q.Publish(ctx, []byte("c2"), queue.WithDedupKey("order-3", 50*time.Millisecond))
		return err == nil && id != short
	}, 10*time.Second, 20*time.Millisecond, "the key expires with its window")

	// The same ID twice is one message (an idempotent retry), not an error.
	a, err := q.Publish(ctx, []byte("x"), queue.WithID("fixed-id"))
	require.NoError(t, err)
	bb, err := q.Publish(ctx, []byte("x"), queue.WithID("fixed-id"))
	require.NoError(t, err)
	assert.Equal(t, "fixed-id", a)
	assert.Equal(t, a, bb)

	st, err := q.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(5), st.Ready, "a, b, c, c2 and fixed-id")
}

func testMaxLen(t *testing.T, b *suite) {
	noLeaks(t, b)
	if !b.caps.MaxLen {
		t.Skip("backend has no exact MaxLen (see its package doc)")
	}
	q := b.newQueue(t, queue.MaxLen(3))
	ctx := context.Background()
	for i := range 2 {
		_, err := q.Publish(ctx, []byte{byte(i)})
		require.NoError(t, err)
	}
	_, err := q.Publish(ctx, []byte("d"), queue.WithDelay(time.Hour))
	require.NoError(t, err, "delayed messages count toward MaxLen")
	_, err = q.Publish(ctx, []byte("x"))
	require.ErrorIs(t, err, queue.ErrFull)
	ids, err := q.PublishBatch(ctx, [][]byte{[]byte("y")})
	require.ErrorIs(t, err, queue.ErrFull)
	assert.Equal(t, []string{""}, ids)

	// Consuming makes room again.
	done := make(chan struct{})
	var once sync.Once
	c := StartConsumer(t, q, func(context.Context, *queue.Message) error { once.Do(func() { close(done) }); return nil })
	<-done
	WaitStats(t, q, func(s queue.Stats) bool { return s.Ready == 0 && s.InFlight == 0 }, "drained")
	require.NoError(t, c.Stop(t))
	_, err = q.Publish(ctx, []byte("z"))
	require.NoError(t, err)
	_, err = q.Publish(ctx, []byte("z2"))
	require.NoError(t, err)
	_, err = q.Publish(ctx, []byte("z3"))
	require.ErrorIs(t, err, queue.ErrFull)

	// BlockWhenFull waits for room, bounded by ctx.
	bq := b.newQueue(t, queue.MaxLen(1), queue.BlockWhenFull(true))
	_, err = bq.Publish(ctx, []byte("1"))
	require.NoError(t, err)
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err = bq.Publish(tctx, []byte("2"))
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	published := make(chan error, 1)
	go func() {
		_, err := bq.Publish(ctx, []byte("3"))
		published <- err
	}()
	got := make(chan string, 4)
	StartConsumer(t, bq, func(_ context.Context, m *queue.Message) error { got <- string(m.Body); return nil })
	select {
	case err := <-published:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("a blocked Publish did not go through once there was room")
	}
	assert.Equal(t, "1", <-got)
	assert.Equal(t, "3", <-got)
}

func testDrain(t *testing.T, b *suite) {
	noLeaks(t, b)
	q := b.newQueue(t)
	ctx := context.Background()
	started := make(chan struct{})
	release := make(chan struct{})
	_, err := q.Publish(ctx, []byte("slow"))
	require.NoError(t, err)
	var finished atomic.Bool
	c := StartConsumer(t, q, func(ctx context.Context, m *queue.Message) error {
		close(started)
		<-release
		finished.Store(true)
		return nil
	}, queue.ShutdownTimeout(time.Minute))
	<-started
	stopped := make(chan error, 1)
	go func() { stopped <- c.Stop(t) }()
	select {
	case <-stopped:
		t.Fatal("Consume returned while a handler was still running")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	require.NoError(t, <-stopped)
	assert.True(t, finished.Load())
	WaitStats(t, q, func(st queue.Stats) bool { return Empty(st) && st.Dead == 0 }, "the drained message was acked")
}

func testShutdownTimeout(t *testing.T, b *suite) {
	noLeaks(t, b)
	q := b.newQueue(t)
	ctx := context.Background()
	_, err := q.Publish(ctx, []byte("stuck"))
	require.NoError(t, err)
	started := make(chan struct{})
	c := StartConsumer(t, q, func(ctx context.Context, m *queue.Message) error {
		close(started)
		<-ctx.Done() // only the shutdown deadline ends it
		return ctx.Err()
	}, queue.ShutdownTimeout(50*time.Millisecond))
	<-started
	require.NoError(t, c.Stop(t))
	WaitStats(t, q, func(st queue.Stats) bool {
		return st.Ready == 1 && st.InFlight == 0 && st.Delayed == 0 && st.Dead == 0
	}, "the interrupted message is released, not retried or dead")
	rec := NewRecorder()
	StartConsumer(t, q, func(_ context.Context, m *queue.Message) error { rec.Add(m); return nil })
	require.Eventually(t, func() bool { return rec.Distinct() == 1 }, 20*time.Second, 5*time.Millisecond)
	for _, ms := range rec.seen {
		assert.Equal(t, 1, ms[0].Attempt, "a release does not count as an attempt")
	}
}

func testBatch(t *testing.T, b *suite) {
	noLeaks(t, b)
	q := b.newQueue(t)
	ctx := context.Background()
	const n = 95
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = []byte(strconv.Itoa(i))
	}
	_, err := q.PublishBatch(ctx, bodies)
	require.NoError(t, err)
	var mu sync.Mutex
	sizes := []int{}
	attempts := map[string][]int{}
	h := func(_ context.Context, ms []*queue.Message) []error {
		mu.Lock()
		defer mu.Unlock()
		sizes = append(sizes, len(ms))
		errs := make([]error, len(ms))
		for i, m := range ms {
			k := string(m.Body)
			attempts[k] = append(attempts[k], m.Attempt)
			if v, _ := strconv.Atoi(k); v%2 == 1 && m.Attempt == 1 {
				errs[i] = errors.New("odd")
			}
		}
		return errs
	}
	StartConsumer(t, q, h, queue.BatchSize(10), queue.BatchWait(50*time.Millisecond), queue.Concurrency(2), queue.Backoff(FastRetry))
	// Every odd message runs twice. A broker's counters alone may read
	// empty while a retry moves from its delay queue to the main queue, so
	// the handler calls are what is waited for.
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		calls := 0
		for _, a := range attempts {
			calls += len(a)
		}
		return len(attempts) == n && calls >= n+n/2
	}, 20*time.Second, 5*time.Millisecond, "every message and every retry handled")
	WaitStats(t, q, func(s queue.Stats) bool { return Empty(s) && s.Dead == 0 }, "all processed")
	mu.Lock()
	defer mu.Unlock()
	for _, s := range sizes {
		assert.LessOrEqual(t, s, 10, "batch larger than BatchSize")
	}
	for i := range n {
		want := []int{1}
		if i%2 == 1 {
			want = []int{1, 2}
		}
		assert.Equal(t, want, attempts[strconv.Itoa(i)], "attempts of message %d", i)
	}

	// ConsumeBatch, a nil result slice (all ok), and a panic (all fail).
	q2 := b.newQueue(t)
	_, err = q2.PublishBatch(ctx, [][]byte{[]byte("a"), []byte("b")})
	require.NoError(t, err)
	var calls atomic.Int32
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- q2.ConsumeBatch(cctx, func(_ context.Context, ms []*queue.Message) []error {
			if calls.Add(1) == 1 {
				panic("first batch panics")
			}
			return nil
		}, queue.BatchSize(5), queue.BatchWait(0), queue.Backoff(FastRetry))
	}()
	// The panicking batch runs again (a second call): an empty queue alone
	// may be a broker's counters between the failure and the retry.
	require.Eventually(t, func() bool { return calls.Load() >= 2 }, 20*time.Second, 5*time.Millisecond,
		"the batch that panicked was not run again")
	WaitStats(t, q2, func(s queue.Stats) bool { return Empty(s) && s.Dead == 0 }, "retried after the panic")
	cancel()
	require.NoError(t, <-done)
}

type order struct {
	ID    int    `json:"id"`
	Item  string `json:"item"`
	Price int    `json:"price"`
}

func testTyped(t *testing.T, b *suite) {
	noLeaks(t, b)
	q := b.newQueue(t)
	ctx := context.Background()
	tq := queue.Typed[order](q, nil)
	want := map[int]order{}
	for i := range 10 {
		o := order{ID: i, Item: "widget", Price: 100 + i}
		want[i] = o
		_, err := tq.Publish(ctx, o)
		require.NoError(t, err)
	}
	bad, err := q.Publish(ctx, []byte("{not json"))
	require.NoError(t, err)
	var mu sync.Mutex
	got := map[int]order{}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- tq.Consume(cctx, func(_ context.Context, o order, m *queue.Message) error {
			mu.Lock()
			got[o.ID] = o
			mu.Unlock()
			return nil
		})
	}()
	WaitStats(t, q, func(s queue.Stats) bool { return Empty(s) && s.Dead == 1 }, "all typed consumed, bad one dead")
	cancel()
	require.NoError(t, <-done)
	mu.Lock()
	assert.Equal(t, want, got)
	mu.Unlock()
	dead, err := q.DeadLetters(ctx, 1)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	assert.Equal(t, bad, dead[0].ID)
	assert.Equal(t, 1, dead[0].Attempt, "an undecodable message is not retried")

	var zero queue.JSONCodec[order]
	raw, err := zero.Encode(order{ID: 7})
	require.NoError(t, err)
	back, err := zero.Decode(raw)
	require.NoError(t, err)
	assert.Equal(t, 7, back.ID)
}

func testClose(t *testing.T, b *suite) {
	noLeaks(t, b)
	q := b.newQueue(t)
	ctx := context.Background()
	started := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		done <- q.Consume(ctx, func(context.Context, *queue.Message) error {
			once.Do(func() { close(started) })
			return nil
		})
	}()
	_, err := q.Publish(ctx, []byte("x"))
	require.NoError(t, err)
	<-started
	require.NoError(t, q.Close())
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not stop Consume")
	}
	_, err = q.Publish(ctx, []byte("y"))
	require.ErrorIs(t, err, queue.ErrClosed)
	err = q.Consume(ctx, func(context.Context, *queue.Message) error { return nil })
	require.ErrorIs(t, err, queue.ErrClosed)
}

func testValidation(t *testing.T, b *suite) {
	q := b.newQueue(t)
	ctx := context.Background()
	h := func(context.Context, *queue.Message) error { return nil }
	tests := []struct {
		name    string
		handler any
		opts    []queue.ConsumeOption
		want    string
	}{
		{"concurrency", h, []queue.ConsumeOption{queue.Concurrency(0)}, "Concurrency"},
		{"visibility", h, []queue.ConsumeOption{queue.VisibilityTimeout(0)}, "VisibilityTimeout"},
		{"attempts", h, []queue.ConsumeOption{queue.MaxAttempts(0)}, "MaxAttempts"},
		{"prefetch", h, []queue.ConsumeOption{queue.Prefetch(0)}, "Prefetch"},
		{"backoff", h, []queue.ConsumeOption{queue.Backoff(nil)}, "Backoff"},
		{"batch size", func(context.Context, []*queue.Message) []error { return nil }, []queue.ConsumeOption{queue.BatchSize(0)}, "BatchSize"},
		{"batch size on single handler", h, []queue.ConsumeOption{queue.BatchSize(5)}, "BatchSize"},
		{"handler type", func(*queue.Message) error { return nil }, nil, "handler must be"},
		{"nil handler", nil, nil, "nil"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := q.Consume(ctx, tt.handler, tt.opts...)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	_, err := q.Publish(ctx, []byte("x"), queue.WithDelay(-time.Second))
	require.ErrorContains(t, err, "WithDelay")
	_, err = q.Publish(ctx, []byte("x"), queue.WithDedupKey("k", 0))
	require.ErrorContains(t, err, "WithDedupKey")
	require.ErrorIs(t, q.Consume(ctx, 42), queue.ErrInvalidHandler)
}

func testManyConsumers(t *testing.T, b *suite) {
	noLeaks(t, b)
	q := b.newQueue(t)
	ctx := context.Background()
	const n = 2000
	rec := NewRecorder()
	h := func(_ context.Context, m *queue.Message) error { rec.Add(m); return nil }
	for range 3 {
		StartConsumer(t, q, h, queue.Concurrency(4), queue.Prefetch(16))
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n / 8 {
				_, err := q.Publish(ctx, []byte(fmt.Sprintf("%d-%d", g, i)))
				assert.NoError(t, err)
			}
		}()
	}
	wg.Wait()
	require.Eventually(t, func() bool { return rec.Distinct() == n }, 30*time.Second, 5*time.Millisecond)
	rec.mu.Lock()
	for id, ms := range rec.seen {
		assert.Len(t, ms, 1, "message %s delivered more than once without a failure", id)
	}
	rec.mu.Unlock()
	WaitStats(t, q, func(s queue.Stats) bool { return Empty(s) }, "drained")
}
