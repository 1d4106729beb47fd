package queue

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Memory is an in-process [Queue] with the same contract as [Redis]:
// at-least-once delivery, retries with backoff, dead letters, delays, dedup,
// MaxLen. Messages live in the process, so they are lost with it; use it
// for tests and single-process programs. Its consumers cannot die apart from
// the process, so VisibilityTimeout and lease renewal do not apply.
// Memory is safe for concurrent use by multiple goroutines.
type Memory struct {
	name string
	cfg  queueConfig

	mu        sync.Mutex
	ready     []*memEntry              // FIFO (protected by mu)
	delayed   memHeap                  // by due time (protected by mu)
	inflight  map[*memEntry]struct{}   // delivered, not settled (protected by mu)
	dead      []*memEntry              // oldest first (protected by mu)
	ids       map[string]memRemembered // published IDs within PublishRetryWindow (protected by mu)
	dedup     map[string]memRemembered // dedup keys (protected by mu)
	signal    chan struct{}            // closed when messages become ready (protected by mu)
	seq       uint64                   // ID counter (protected by mu)
	closed    bool                     // protected by mu
	consumers map[*int]context.CancelFunc
	running   sync.WaitGroup
	initErr   error // invalid construction: returned by every method
	cnt       counters
}

// memEntry is one message in a Memory queue.
type memEntry struct {
	msg   Message
	since time.Time // when it entered the backlog (for OldestAge)
	due   time.Time // when a delayed entry becomes ready
	index int       // in delayed
}

type memRemembered struct {
	id    string
	until time.Time
}

// NewMemory returns an in-process queue. Options that concern Redis only
// (WithPrefix, PublishPipelines) are accepted and ignored. An empty name or
// an invalid option does not panic: every method of the returned queue then
// returns that error. Use [NewMemoryChecked] to get it at once.
func NewMemory(name string, opts ...Option) *Memory {
	m, err := NewMemoryChecked(name, opts...)
	if err != nil {
		m = &Memory{name: name, cfg: defaultQueueConfig(), initErr: err, closed: true}
	}
	return m
}

// NewMemoryChecked is [NewMemory] returning an error for an empty name or
// invalid options.
func NewMemoryChecked(name string, opts ...Option) (*Memory, error) {
	if name == "" {
		return nil, errors.New("queue: name must not be empty")
	}
	cfg := defaultQueueConfig()
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Memory{
		name:      name,
		cfg:       cfg,
		inflight:  make(map[*memEntry]struct{}),
		ids:       make(map[string]memRemembered),
		dedup:     make(map[string]memRemembered),
		signal:    make(chan struct{}),
		consumers: make(map[*int]context.CancelFunc),
	}, nil
}

// Name returns the queue's name.
func (q *Memory) Name() string { return q.name }

func (q *Memory) now() time.Time { return q.cfg.now() }

// notifyLocked wakes consumers waiting for ready messages.
func (q *Memory) notifyLocked() {
	close(q.signal)
	q.signal = make(chan struct{})
}

// Publish adds a message.
func (q *Memory) Publish(ctx context.Context, body []byte, opts ...PublishOption) (string, error) {
	pc := applyPublishOptions(opts)
	if err := pc.validate(); err != nil {
		return "", err
	}
	ctx = q.cfg.hooks.beforePublish(ctx, q.name, &pc)
	id, err := q.publish(ctx, body, &pc)
	q.cfg.hooks.AfterPublish(ctx, q.name, id, err)
	return id, err
}

func (q *Memory) publish(ctx context.Context, body []byte, pc *publishConfig) (string, error) {
	wait := 5 * time.Millisecond
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		q.mu.Lock()
		id, err := q.publishLocked(body, pc)
		q.mu.Unlock()
		q.cnt.countPublish(err)
		if !errors.Is(err, ErrFull) || !q.cfg.blockWhenFull {
			return id, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", fmt.Errorf("queue: waiting for room: %w", context.Cause(ctx))
		case <-t.C:
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}

func (q *Memory) publishLocked(body []byte, pc *publishConfig) (string, error) {
	if q.closed {
		return "", q.closedErr()
	}
	now := q.now()
	q.pruneLocked(now)
	id := pc.id
	if id != "" {
		if r, ok := q.ids[id]; ok && now.Before(r.until) {
			return id, nil // a repeat of a publish that succeeded
		}
	}
	if q.cfg.maxLen > 0 && len(q.ready)+len(q.inflight)+len(q.delayed) >= q.cfg.maxLen {
		return "", ErrFull
	}
	if id == "" {
		q.seq++
		id = "m" + strconv.FormatUint(q.seq, 10)
	}
	if pc.dedupKey != "" {
		if r, ok := q.dedup[pc.dedupKey]; ok && now.Before(r.until) {
			return r.id, ErrDuplicate
		}
		q.dedup[pc.dedupKey] = memRemembered{id: id, until: now.Add(pc.dedupWindow)}
	}
	if pc.id != "" {
		q.ids[id] = memRemembered{id: id, until: now.Add(q.cfg.retryWindow)}
	}
	e := &memEntry{msg: Message{
		ID:          id,
		Body:        append([]byte{}, body...),
		Headers:     maps.Clone(pc.headers),
		Attempt:     1,
		PublishedAt: now,
	}}
	q.enqueueLocked(e, pc.delay, now)
	return id, nil
}

// pruneLocked forgets expired IDs and dedup keys once the maps grow.
func (q *Memory) pruneLocked(now time.Time) {
	for _, m := range []map[string]memRemembered{q.ids, q.dedup} {
		if len(m) < 1024 {
			continue
		}
		for k, r := range m {
			if !now.Before(r.until) {
				delete(m, k)
			}
		}
	}
}

func (q *Memory) enqueueLocked(e *memEntry, delay time.Duration, now time.Time) {
	if delay > 0 {
		e.due = now.Add(delay)
		heap.Push(&q.delayed, e)
		q.notifyLocked() // a waiting consumer recomputes its timer
		return
	}
	e.since = now
	q.ready = append(q.ready, e)
	q.notifyLocked()
}

// promoteLocked moves due delayed messages to ready.
func (q *Memory) promoteLocked(now time.Time) {
	for len(q.delayed) > 0 && !q.delayed[0].due.After(now) {
		e := heap.Pop(&q.delayed).(*memEntry)
		e.since = now
		q.ready = append(q.ready, e)
	}
}

// PublishBatch adds the messages at once.
func (q *Memory) PublishBatch(ctx context.Context, bodies [][]byte) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pcs := make([]publishConfig, len(bodies))
	var ctxs []context.Context // per message, with publish hooks
	if q.cfg.hooks.OnPublish != nil || q.cfg.hooks.OnPublished != nil {
		ctxs = make([]context.Context, len(bodies))
		for i := range pcs {
			ctxs[i] = q.cfg.hooks.beforePublish(ctx, q.name, &pcs[i])
		}
	}
	ids := make([]string, len(bodies))
	errs := make([]error, len(bodies))
	var first error
	q.mu.Lock()
	for i, b := range bodies {
		ids[i], errs[i] = q.publishLocked(b, &pcs[i])
		q.cnt.countPublish(errs[i])
		if errs[i] != nil {
			ids[i] = ""
			if first == nil {
				first = fmt.Errorf("queue: message %d of %d: %w", i, len(bodies), errs[i])
			}
		}
	}
	q.mu.Unlock()
	for i := range ctxs {
		q.cfg.hooks.AfterPublish(ctxs[i], q.name, ids[i], errs[i])
	}
	return ids, first
}

// Consume runs handler on the queue's messages until ctx is done or Close
// is called, then drains like [Redis.Consume].
func (q *Memory) Consume(ctx context.Context, handler any, opts ...ConsumeOption) error {
	h, bh, err := toHandlers(handler)
	if err != nil {
		return err
	}
	return q.consume(ctx, h, bh, opts)
}

// ConsumeBatch is Consume with a [BatchHandler].
func (q *Memory) ConsumeBatch(ctx context.Context, handler BatchHandler, opts ...ConsumeOption) error {
	if handler == nil {
		return fmt.Errorf("%w: handler is nil", ErrInvalidHandler)
	}
	return q.consume(ctx, nil, handler, opts)
}

func (q *Memory) consume(ctx context.Context, h Handler, bh BatchHandler, opts []ConsumeOption) error {
	var cc consumeConfig
	if err := cc.apply(opts, bh != nil); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	key := new(int)
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return q.closedErr()
	}
	q.consumers[key] = cancel
	q.running.Add(1)
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		delete(q.consumers, key)
		q.mu.Unlock()
		q.running.Done()
	}()
	cc.queue, cc.hooks = q.name, &q.cfg.hooks
	return runEngine(ctx, &memConsumer{q: q, block: cc.block}, &q.cnt, cc, h, bh, q.cfg.logger.With("queue", q.name))
}

// memConsumer is the Memory side of one Consume call.
type memConsumer struct {
	q     *Memory
	block time.Duration
}

func (c *memConsumer) fetch(ctx context.Context, n int) ([]*delivery, error) {
	q := c.q
	deadline := time.NewTimer(c.block)
	defer deadline.Stop()
	for {
		q.mu.Lock()
		now := q.now()
		q.promoteLocked(now)
		if len(q.ready) > 0 {
			k := min(n, len(q.ready))
			ds := make([]*delivery, k)
			for i, e := range q.ready[:k] {
				q.inflight[e] = struct{}{}
				m := e.msg
				m.Body = append([]byte{}, e.msg.Body...)
				m.Headers = maps.Clone(e.msg.Headers)
				ds[i] = &delivery{msg: &m, mem: e}
			}
			clear(q.ready[:k])
			q.ready = q.ready[k:]
			q.mu.Unlock()
			return ds, nil
		}
		sig := q.signal
		var due <-chan time.Time
		if len(q.delayed) > 0 {
			t := time.NewTimer(q.delayed[0].due.Sub(now))
			defer t.Stop()
			due = t.C
		}
		q.mu.Unlock()
		select {
		case <-sig:
		case <-due:
		case <-deadline.C:
			return nil, nil
		case <-ctx.Done():
			return nil, nil
		}
	}
}

func (c *memConsumer) settle(_ context.Context, ss []settlement) error {
	q := c.q
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	var front []*memEntry
	for _, s := range ss {
		e := s.d.mem
		if _, ok := q.inflight[e]; !ok {
			continue
		}
		delete(q.inflight, e)
		switch s.kind {
		case settleAck:
		case settleRetry:
			e.msg.Attempt++
			e.msg.LastError = s.err
			q.enqueueLocked(e, s.delay, now)
		case settleDead:
			e.msg.LastError = s.err
			e.since = now
			q.dead = append(q.dead, e)
		case settleRelease:
			front = append(front, e)
		}
	}
	if len(front) > 0 {
		q.ready = append(front, q.ready...)
		q.notifyLocked()
	}
	return nil
}

func (c *memConsumer) renew(context.Context, []*delivery) error { return nil }
func (c *memConsumer) background(<-chan struct{})               {}
func (c *memConsumer) leave(context.Context)                    {}

func (q *Memory) closedErr() error {
	if q.initErr != nil {
		return q.initErr
	}
	return ErrClosed
}

// Stats reports the queue's counts.
func (q *Memory) Stats(ctx context.Context) (Stats, error) {
	if err := ctx.Err(); err != nil {
		return Stats{}, err
	}
	if q.initErr != nil {
		return Stats{}, q.initErr
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	q.promoteLocked(now)
	st := Stats{
		Ready:    int64(len(q.ready)),
		InFlight: int64(len(q.inflight)),
		Pending:  int64(len(q.inflight)),
		Delayed:  int64(len(q.delayed)),
		Dead:     int64(len(q.dead)),
	}
	var oldest time.Time
	if len(q.ready) > 0 {
		oldest = q.ready[0].since
	}
	for e := range q.inflight {
		if oldest.IsZero() || e.since.Before(oldest) {
			oldest = e.since
		}
	}
	if !oldest.IsZero() {
		st.OldestAge = max(now.Sub(oldest), 0)
	}
	return st, nil
}

// DeadLetters returns up to n dead letters, oldest first (n <= 0: all).
func (q *Memory) DeadLetters(ctx context.Context, n int) ([]*Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if q.initErr != nil {
		return nil, q.initErr
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	k := len(q.dead)
	if n > 0 {
		k = min(k, n)
	}
	out := make([]*Message, k)
	for i, e := range q.dead[:k] {
		m := e.msg
		m.Body = append([]byte{}, e.msg.Body...)
		m.Headers = maps.Clone(e.msg.Headers)
		out[i] = &m
	}
	return out, nil
}

// Requeue moves dead letters back to the queue with Attempt reset to 1; with
// no IDs, all of them. Unknown IDs are reported with ErrNotFound.
func (q *Memory) Requeue(ctx context.Context, ids ...string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return q.closedErr()
	}
	now := q.now()
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	kept := q.dead[:0]
	for _, e := range q.dead {
		if len(ids) > 0 && !want[e.msg.ID] {
			kept = append(kept, e)
			continue
		}
		delete(want, e.msg.ID)
		e.msg.Attempt = 1
		q.enqueueLocked(e, 0, now)
	}
	clear(q.dead[len(kept):])
	q.dead = kept
	if len(want) > 0 {
		missing := make([]string, 0, len(want))
		for _, id := range ids {
			if want[id] {
				missing = append(missing, id)
				delete(want, id)
			}
		}
		return fmt.Errorf("%w: %s", ErrNotFound, strings.Join(missing, ", "))
	}
	return nil
}

// Counters returns the queue's running totals.
func (q *Memory) Counters() Counters { return q.cnt.snapshot() }

// Close fails later calls with ErrClosed, stops running Consume calls and
// waits for them. Messages still in the queue are dropped with it.
func (q *Memory) Close() error {
	q.mu.Lock()
	q.closed = true
	for _, cancel := range q.consumers {
		cancel()
	}
	q.mu.Unlock()
	q.running.Wait()
	return nil
}

// memHeap orders delayed entries by due time.
type memHeap []*memEntry

func (h memHeap) Len() int           { return len(h) }
func (h memHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h memHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *memHeap) Push(x any) {
	e := x.(*memEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *memHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
