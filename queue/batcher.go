package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"
)

// ErrClosed is returned by [Batcher.Add], [Batcher.AddWait] and
// [Batcher.Flush] once [Batcher.Close] has been called. Items that Close had
// to give up on are failed with an error that wraps ErrClosed and the
// context's error.
var ErrClosed = errors.New("queue: closed")

// ErrBatchPanic is wrapped by the error reported for a batch whose flush
// function panicked. The panic is recovered: it fails the batch (and is
// retried per [Retry]) instead of crashing the process.
var ErrBatchPanic = errors.New("queue: batch flush panicked")

// errBatchNilItemErr stands for a nil error in a BatchError's Failed map: the
// entry still marks its item failed.
var errBatchNilItemErr = errors.New("queue: item failed (nil error in BatchError)")

// BatchError is what a flush function returns when only some items of the
// batch failed: Failed maps the index of each failed item in the slice the
// flush function received to its error. Items not in Failed succeeded. A
// BatchError with an empty Failed means every item succeeded. Return it as a
// value or a pointer.
//
// [Batcher.AddWait] returns Failed[i] to the caller whose item was at index i;
// [OnError] receives a BatchError whose indexes refer to the items it is given.
type BatchError struct {
	// Failed maps item index to that item's error.
	Failed map[int]error
}

// Error lists how many items failed and the first of them.
func (e BatchError) Error() string {
	if len(e.Failed) == 0 {
		return "queue: batch error with no failed items"
	}
	idx := e.indexes()
	var sb strings.Builder
	fmt.Fprintf(&sb, "queue: %d batch items failed; item %d: %v", len(idx), idx[0], e.Failed[idx[0]])
	return sb.String()
}

// Unwrap returns the items' errors in index order, so that errors.Is and
// errors.As see through a BatchError.
func (e BatchError) Unwrap() []error {
	idx := e.indexes()
	errs := make([]error, 0, len(idx))
	for _, i := range idx {
		if e.Failed[i] != nil {
			errs = append(errs, e.Failed[i])
		}
	}
	return errs
}

func (e BatchError) indexes() []int {
	idx := make([]int, 0, len(e.Failed))
	for i := range e.Failed {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	return idx
}

// BatcherStats is a snapshot of a [Batcher]'s counters, from [Batcher.Stats].
type BatcherStats struct {
	// Items is the number of items accepted by Add and AddWait.
	Items uint64
	// Batches is the number of batches completed, successfully or not.
	Batches uint64
	// FlushedItems is the number of items in completed batches.
	FlushedItems uint64
	// MeanBatchSize is FlushedItems / Batches (0 before the first batch).
	MeanBatchSize float64
	// FailedBatches is the number of batches with items still failed after
	// every attempt.
	FailedBatches uint64
	// FailedItems is the number of items reported failed (to OnError and
	// AddWait) after every attempt.
	FailedItems uint64
	// FlushErrors is the number of flush calls that returned an error or
	// panicked, retried calls included.
	FlushErrors uint64
	// Retries is the number of flush calls beyond the first of each batch.
	Retries uint64
	// BufferWait is the total, over completed batches, of the time each
	// batch's oldest item waited in the buffer before its flush began.
	BufferWait time.Duration
	// MeanBufferWait is BufferWait / Batches.
	MeanBufferWait time.Duration
	// MaxBufferWait is the longest such wait.
	MaxBufferWait time.Duration
	// Blocked is the number of Add and AddWait calls that found the buffer
	// full and had to wait (backpressure).
	Blocked uint64
	// BlockedTime is the total time those calls waited for room.
	BlockedTime time.Duration
	// Buffered is the number of items accepted and not yet handed to a flush.
	Buffered int
	// InFlight is the number of batches being flushed (or retried) now.
	InFlight int
}

// Batcher groups items into batches and hands each batch to a flush function:
// the bulk-write half of a pipeline (one COPY or multi-row INSERT per few
// hundred rows instead of one statement per row).
//
// A batch is flushed when it holds [MaxItems] items, when its items' sizes
// reach [MaxBytes], or when its oldest item has waited [MaxWait] — whichever
// comes first — and by [Batcher.Flush] and [Batcher.Close]. A flush is never
// called with an empty batch. Items keep the order in which Add accepted
// them within a batch; with [Partition], batches of one partition are flushed
// one at a time in order. At most [FlushConcurrency] flushes run at once.
// While they are busy and the [Buffer] is full, Add blocks: memory stays
// bounded and nothing is dropped.
//
// The flush function is called on a goroutine owned by the Batcher, with a
// context that is cancelled only when Close gives up (its context expires)
// or, per call, after [BatchTimeout].
// It must not retain the items slice after it returns: the Batcher reuses it.
// A flush that returns an error or panics is retried per [Retry]; the items
// still failed after that are reported to [OnError] and to the AddWait
// callers that carried them. Close flushes everything accepted before it
// returns, waits for flushes in flight, and stops every goroutine the Batcher
// started.
//
// A Batcher is safe for simultaneous use by multiple goroutines, except that
// the flush, [OnError], [Partition] and [MaxBytes] functions must not call
// back into the same Batcher (Flush or Close from a flush would wait for
// itself; Add could wait for room that only that flush frees). Create it with
// [NewBatcher]; the zero value is not usable. Always Close a Batcher: until
// then it keeps a goroutine for the MaxWait timer.
type Batcher[T any] struct {
	flush     func(ctx context.Context, items []T) error
	size      func(T) int
	key       func(T) string
	onError   func(items []T, err error)
	maxItems  int
	maxBytes  int // 0: no byte limit
	maxWait   time.Duration
	conc      int
	bufferCap int
	attempts  int
	backoff   func(attempt int) time.Duration
	timeout   time.Duration
	logger    *slog.Logger

	// baseCtx is the lifetime context of the flushes this Batcher runs on its
	// own goroutines (no caller's context is in scope there). It is cancelled
	// only when Close gives up, to cut in-flight flushes and retry waits short.
	baseCtx context.Context
	cancel  context.CancelFunc

	wake      chan struct{} // 1-buffered: the linger goroutine has a new first deadline
	stop      chan struct{} // closed to stop the linger goroutine
	lingerEnd chan struct{} // closed when the linger goroutine has returned
	stopOnce  sync.Once
	workersWG sync.WaitGroup
	pool      sync.Pool // *batcherBatch[T], with their items slices

	mu sync.Mutex // protects every field below and the batches' mutable state
	// single is the only partition when key is nil; parts holds the
	// partitions in use (idle ones are removed) when key is set.
	single   batcherPart[T]
	parts    map[string]*batcherPart[T]
	open     batcherFIFO[batcherOpen[T]]   // open batches in the order opened, for MaxWait
	ready    batcherFIFO[*batcherBatch[T]] // sealed batches waiting for a flush slot
	inflight map[*batcherBatch[T]]struct{}
	buffered int // items accepted, not yet handed to a flush
	waiting  int // sealed batches not yet handed to a flush (ready and pending)
	workers  int // flush goroutines running (<= conc)
	gen      uint64
	spaceCh  chan struct{} // closed when room frees up; nil while nobody waits
	closed   bool
	aborted  bool
	drained  chan struct{} // made by Close; closed once no work is left
	st       BatcherStats
}

// batcherPart is one partition: its batch being filled and, when partitioned,
// the sealed batches waiting for the partition's current flush to finish.
type batcherPart[T any] struct {
	key     string
	cur     *batcherBatch[T]
	busy    bool               // partitioned: a batch of this part is ready or flushing
	pending []*batcherBatch[T] // partitioned: sealed, behind the busy one
}

// batcherOpen is an entry of the MaxWait FIFO; gen tells a stale entry (the
// batch was sealed, or recycled and reopened) from a live one.
type batcherOpen[T any] struct {
	b        *batcherBatch[T]
	gen      uint64
	deadline time.Time
}

// batcherBatch is one batch and, once flushed, its result.
type batcherBatch[T any] struct {
	items     []T
	bytes     int
	part      *batcherPart[T]
	gen       uint64
	opened    time.Time
	sealed    bool
	completed bool
	refs      int           // AddWait/Flush callers that will read the result
	done      chan struct{} // made when the first ref is taken; closed on completion
	err       error         // the whole batch failed with err (when failed is nil)
	failed    map[int]error // some items failed: original index → error
}

// result returns the outcome for the item at index i.
func (bt *batcherBatch[T]) result(i int) error {
	if bt.failed != nil {
		return bt.failed[i]
	}
	return bt.err
}

// NewBatcher returns a Batcher that passes batches of items to flush. Without
// options it flushes at [BatcherDefaultMaxItems] items or after
// [BatcherDefaultMaxWait], one flush at a time, without retries. It returns
// an error naming the bad option when flush is nil or an option is invalid,
// including a [MaxBytes], [OnError] or [Partition] built for another item type.
func NewBatcher[T any](flush func(ctx context.Context, items []T) error, opts ...BatcherOption) (*Batcher[T], error) {
	if flush == nil {
		return nil, errors.New("queue: NewBatcher flush func must not be nil")
	}
	s := batcherSettings{
		maxItems:    BatcherDefaultMaxItems,
		maxWait:     BatcherDefaultMaxWait,
		concurrency: BatcherDefaultFlushConcurrency,
		attempts:    1,
	}
	for _, o := range opts {
		if o.apply != nil {
			o.apply(&s)
		}
	}
	if len(s.errs) > 0 {
		return nil, errors.Join(s.errs...)
	}
	b := &Batcher[T]{
		flush:    flush,
		maxItems: s.maxItems,
		maxWait:  s.maxWait,
		conc:     s.concurrency,
		attempts: s.attempts,
		backoff:  s.backoff,
		timeout:  s.timeout,
		logger:   s.logger,
	}
	want := reflect.TypeFor[T]() // for messages: a nil interface value has no %T
	if s.maxBytesSet {
		f, ok := s.size.(func(T) int)
		if !ok {
			return nil, fmt.Errorf("queue: MaxBytes size func is %T, want func(%v) int", s.size, want)
		}
		b.size, b.maxBytes = f, s.maxBytes
	}
	if s.onErrorSet {
		f, ok := s.onError.(func([]T, error))
		if !ok {
			return nil, fmt.Errorf("queue: OnError func is %T, want func([]%v, error)", s.onError, want)
		}
		b.onError = f
	}
	if s.partSet {
		f, ok := s.partition.(func(T) string)
		if !ok {
			return nil, fmt.Errorf("queue: Partition func is %T, want func(%v) string", s.partition, want)
		}
		b.key = f
		b.parts = make(map[string]*batcherPart[T])
	}
	if b.maxWait <= 0 && !s.maxItemsSet && !s.maxBytesSet {
		return nil, fmt.Errorf("queue: MaxWait must be > 0 unless MaxItems or MaxBytes is set, got %v", s.maxWait)
	}
	b.bufferCap = b.maxItems * (b.conc + 1)
	if b.bufferCap/(b.conc+1) != b.maxItems { // overflow
		b.bufferCap = int(^uint(0) >> 1)
	}
	if s.bufferSet {
		b.bufferCap = s.buffer
	}
	if b.logger == nil {
		b.logger = slog.New(slog.DiscardHandler)
	}
	b.baseCtx, b.cancel = context.WithCancel(context.Background())
	b.inflight = make(map[*batcherBatch[T]]struct{})
	b.stop = make(chan struct{})
	b.lingerEnd = make(chan struct{})
	if b.maxWait > 0 {
		b.wake = make(chan struct{}, 1)
		go b.linger()
	} else {
		close(b.lingerEnd)
	}
	return b, nil
}

// Add buffers item for the next batch and returns once it is buffered. It
// blocks while the buffer is full (see [Buffer]); ctx bounds only that wait,
// and an item that fits is accepted even if ctx is already done. It returns
// [ErrClosed] after Close. The item's flush result is not reported to the
// caller (see [Batcher.AddWait] and [OnError]).
func (b *Batcher[T]) Add(ctx context.Context, item T) error {
	_, _, err := b.add(ctx, item, false)
	return err
}

// AddWait buffers item like [Batcher.Add], then waits until the batch that
// carries it has been flushed and returns the result for this item: nil on
// success, the error of the item (from a [BatchError]) or of the whole batch
// after all attempts otherwise. If ctx ends first, AddWait returns ctx's
// error; the item stays buffered and is still flushed. AddWait waits at
// least until the batch is flushed: up to [MaxWait], or, with MaxWait
// turned off, until the batch fills or Flush or Close is called.
func (b *Batcher[T]) AddWait(ctx context.Context, item T) error {
	bt, idx, err := b.add(ctx, item, true)
	if err != nil {
		return err
	}
	select {
	case <-bt.done:
	case <-ctx.Done():
		b.release(bt)
		return ctx.Err()
	}
	err = bt.result(idx)
	b.release(bt)
	return err
}

// add buffers item and returns its batch and index in it; with ref it also
// takes a reference on the batch so that its result stays readable.
func (b *Batcher[T]) add(ctx context.Context, item T, ref bool) (*batcherBatch[T], int, error) {
	var key string
	var size int
	if b.key != nil || b.size != nil {
		var err error
		if key, size, err = b.keyAndSize(item); err != nil {
			return nil, 0, err
		}
		size = max(size, 0)
	}
	b.mu.Lock()
	if b.closed || b.buffered >= b.bufferCap {
		if err := b.waitRoomLocked(ctx); err != nil {
			b.mu.Unlock()
			return nil, 0, err
		}
	}
	p := &b.single
	if b.key != nil {
		p = b.parts[key]
		if p == nil {
			p = &batcherPart[T]{key: key}
			b.parts[key] = p
		}
	}
	bt := p.cur
	if bt != nil && b.maxBytes > 0 && bt.bytes+size > b.maxBytes {
		b.sealLocked(p)
		bt = nil
	}
	if bt == nil {
		bt = b.openLocked(p)
	}
	idx := len(bt.items)
	bt.items = append(bt.items, item)
	bt.bytes += size
	b.buffered++
	b.st.Items++
	if ref {
		bt.refs++
		if bt.done == nil {
			bt.done = make(chan struct{})
		}
	}
	if len(bt.items) >= b.maxItems || (b.maxBytes > 0 && bt.bytes >= b.maxBytes) {
		b.sealLocked(p)
	}
	b.mu.Unlock()
	return bt, idx, nil
}

// waitRoomLocked waits until the buffer has room (backpressure), or returns
// ErrClosed or ctx's error. It is called and returns with b.mu held.
func (b *Batcher[T]) waitRoomLocked(ctx context.Context) error {
	var start time.Time // set when the buffer is first found full
	defer func() {
		if !start.IsZero() {
			b.st.BlockedTime += time.Since(start) // b.mu is held here on every path
		}
	}()
	for {
		if b.closed {
			return ErrClosed
		}
		if b.buffered < b.bufferCap {
			return nil
		}
		if start.IsZero() {
			start = time.Now()
			b.st.Blocked++
		}
		// Full. If no sealed batch is queued to free room, the buffer is all
		// open batches (many partitions, a Buffer below MaxItems, or MaxWait
		// off): flush them now rather than wait for a linger that cannot help.
		if b.waiting == 0 {
			b.sealAllLocked()
		}
		if b.spaceCh == nil {
			b.spaceCh = make(chan struct{})
		}
		ch := b.spaceCh
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			b.mu.Lock()
			return ctx.Err()
		}
		b.mu.Lock()
	}
}

// keyAndSize calls the Partition and MaxBytes functions, turning a panic into
// an error.
func (b *Batcher[T]) keyAndSize(item T) (key string, size int, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("queue: Partition or MaxBytes func panicked: %v", r)
		}
	}()
	if b.key != nil {
		key = b.key(item)
	}
	if b.size != nil {
		size = b.size(item)
	}
	return key, size, nil
}

// Flush seals the batches being filled and waits until they, and every batch
// sealed or in flight before, have been flushed. It returns nil if all of
// them succeeded, otherwise their errors joined. If ctx ends first it
// returns ctx's error and the batches are still flushed. It returns
// [ErrClosed] after Close.
func (b *Batcher[T]) Flush(ctx context.Context) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	b.sealAllLocked()
	var wait []*batcherBatch[T]
	take := func(bt *batcherBatch[T]) {
		bt.refs++
		if bt.done == nil {
			bt.done = make(chan struct{})
		}
		wait = append(wait, bt)
	}
	for bt := range b.inflight {
		take(bt)
	}
	for _, bt := range b.ready.all() {
		take(bt)
	}
	for _, p := range b.parts {
		for _, bt := range p.pending {
			take(bt)
		}
	}
	b.mu.Unlock()

	var errs []error
	for i, bt := range wait {
		select {
		case <-bt.done:
		case <-ctx.Done():
			for _, rest := range wait[i:] {
				b.release(rest)
			}
			return ctx.Err()
		}
		if bt.failed != nil {
			f := make(map[int]error, len(bt.failed))
			for k, v := range bt.failed {
				f[k] = v
			}
			errs = append(errs, BatchError{Failed: f})
		} else if bt.err != nil {
			errs = append(errs, bt.err)
		}
		b.release(bt)
	}
	return errors.Join(errs...)
}

// Close stops accepting items (Add and AddWait then return [ErrClosed];
// those blocked on a full buffer return it at once), flushes everything
// buffered, waits for the flushes in flight and stops the Batcher's
// goroutines. Nothing accepted before Close is dropped silently: if ctx ends
// first, Close cancels the flushes' context, fails the batches not yet
// started with an error wrapping [ErrClosed] and ctx's error (reported to
// [OnError] and AddWait like any failure) and returns ctx's error; a flush
// function that ignores its context may then still be running. Close may be
// called more than once; a later call waits like the first. Close returns
// nil once everything is flushed: flush failures are reported through
// [OnError] and AddWait, not here.
func (b *Batcher[T]) Close(ctx context.Context) error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		b.drained = make(chan struct{})
		b.sealAllLocked()
		b.wakeSpaceLocked()
		b.checkDrainedLocked()
	}
	drained := b.drained
	b.mu.Unlock()

	select {
	case <-drained:
		b.workersWG.Wait() // they are returning
		b.stopLinger()
		return nil
	case <-ctx.Done():
	}
	n := b.abort(ctx.Err())
	b.stopLinger()
	return fmt.Errorf("queue: batcher close gave up, %d items not flushed: %w", n, ctx.Err())
}

// Stats returns a snapshot of the Batcher's counters.
func (b *Batcher[T]) Stats() BatcherStats {
	b.mu.Lock()
	st := b.st
	st.Buffered = b.buffered
	st.InFlight = len(b.inflight)
	b.mu.Unlock()
	if st.Batches > 0 {
		st.MeanBatchSize = float64(st.FlushedItems) / float64(st.Batches)
		st.MeanBufferWait = st.BufferWait / time.Duration(st.Batches)
	}
	return st
}

// abort fails every batch not yet handed to a flush and cancels the flushes
// in flight. It returns the number of items failed here.
func (b *Batcher[T]) abort(cause error) int {
	b.mu.Lock()
	if b.aborted {
		b.mu.Unlock()
		return 0
	}
	b.aborted = true
	b.cancel()
	var dropped []*batcherBatch[T]
	dropped = append(dropped, b.ready.all()...)
	b.ready.reset()
	for _, p := range b.parts {
		dropped = append(dropped, p.pending...)
		p.pending = nil
	}
	n := 0
	for _, bt := range dropped {
		n += len(bt.items)
		b.buffered -= len(bt.items)
	}
	b.waiting -= len(dropped)
	b.wakeSpaceLocked()
	b.mu.Unlock()

	err := fmt.Errorf("%w before the batch was flushed: %w", ErrClosed, cause)
	for _, bt := range dropped {
		bt.err = err
		b.report(bt.items, err)
		b.mu.Lock()
		b.st.FailedBatches++
		b.st.FailedItems += uint64(len(bt.items))
		b.completeLocked(bt)
		b.mu.Unlock()
	}
	b.mu.Lock()
	b.checkDrainedLocked()
	b.mu.Unlock()
	return n
}

func (b *Batcher[T]) stopLinger() {
	b.stopOnce.Do(func() { close(b.stop) })
	<-b.lingerEnd
}

// release drops a reference taken by AddWait or Flush.
func (b *Batcher[T]) release(bt *batcherBatch[T]) {
	b.mu.Lock()
	bt.refs--
	if bt.refs == 0 && bt.completed {
		b.recycleLocked(bt)
	}
	b.mu.Unlock()
}

// openLocked starts a new batch for p.
func (b *Batcher[T]) openLocked(p *batcherPart[T]) *batcherBatch[T] {
	bt, _ := b.pool.Get().(*batcherBatch[T])
	if bt == nil {
		// One stream: its batches fill up, size them for that. Partitions:
		// many may hold a few items each, let them grow (pooled batches keep
		// their capacity).
		c := min(b.maxItems, 1024)
		if b.key != nil {
			c = min(b.maxItems, 8)
		}
		bt = &batcherBatch[T]{items: make([]T, 0, c)}
	}
	b.gen++
	bt.gen = b.gen
	bt.part = p
	bt.opened = time.Now()
	if b.maxWait > 0 {
		first := b.open.len() == 0
		b.open.push(batcherOpen[T]{b: bt, gen: bt.gen, deadline: bt.opened.Add(b.maxWait)})
		if first {
			select {
			case b.wake <- struct{}{}:
			default:
			}
		}
	}
	p.cur = bt
	return bt
}

// sealLocked closes p's open batch to new items and queues it for a flush.
func (b *Batcher[T]) sealLocked(p *batcherPart[T]) {
	bt := p.cur
	p.cur = nil
	bt.sealed = true
	b.waiting++
	if b.key != nil {
		if p.busy {
			p.pending = append(p.pending, bt)
			return
		}
		p.busy = true
	}
	b.pushReadyLocked(bt)
}

func (b *Batcher[T]) sealAllLocked() {
	if b.key == nil {
		if b.single.cur != nil {
			b.sealLocked(&b.single)
		}
		return
	}
	for _, p := range b.parts {
		if p.cur != nil {
			b.sealLocked(p)
		}
	}
}

// pushReadyLocked queues bt for a flush, starting a flush goroutine if fewer
// than conc are running.
func (b *Batcher[T]) pushReadyLocked(bt *batcherBatch[T]) {
	b.ready.push(bt)
	if b.workers < b.conc && !b.aborted {
		b.workers++
		b.workersWG.Add(1)
		go b.work()
	}
}

func (b *Batcher[T]) wakeSpaceLocked() {
	if b.spaceCh != nil {
		close(b.spaceCh)
		b.spaceCh = nil
	}
}

func (b *Batcher[T]) checkDrainedLocked() {
	if b.drained == nil || !b.closed || b.workers > 0 || b.ready.len() > 0 {
		return
	}
	select {
	case <-b.drained:
	default:
		close(b.drained)
	}
}

// work is a flush goroutine: it flushes ready batches until none is left.
func (b *Batcher[T]) work() {
	defer b.workersWG.Done()
	b.mu.Lock()
	for b.ready.len() > 0 && !b.aborted {
		bt := b.ready.pop()
		b.waiting--
		b.buffered -= len(bt.items)
		b.inflight[bt] = struct{}{}
		b.wakeSpaceLocked()
		wait := time.Since(bt.opened)
		b.st.BufferWait += wait
		b.st.MaxBufferWait = max(b.st.MaxBufferWait, wait)
		b.mu.Unlock()

		calls, errs := b.run(bt)

		b.mu.Lock()
		delete(b.inflight, bt)
		b.st.Retries += uint64(calls - 1)
		b.st.FlushErrors += uint64(errs)
		if p := bt.part; b.key != nil {
			if len(p.pending) > 0 {
				next := p.pending[0]
				p.pending[0] = nil
				p.pending = p.pending[1:]
				b.ready.push(next) // this goroutine takes it next
			} else {
				p.busy = false
				if p.cur == nil {
					delete(b.parts, p.key)
				}
			}
		}
		b.completeLocked(bt)
	}
	b.workers--
	b.checkDrainedLocked()
	b.mu.Unlock()
}

// completeLocked records bt's completion, releases its waiters and recycles
// it when nobody holds a reference.
func (b *Batcher[T]) completeLocked(bt *batcherBatch[T]) {
	b.st.Batches++
	b.st.FlushedItems += uint64(len(bt.items))
	bt.completed = true
	if bt.done != nil {
		close(bt.done)
	}
	if bt.refs == 0 {
		b.recycleLocked(bt)
	}
}

func (b *Batcher[T]) recycleLocked(bt *batcherBatch[T]) {
	clear(bt.items) // do not pin the caller's values
	*bt = batcherBatch[T]{items: bt.items[:0]}
	b.pool.Put(bt)
}

// run flushes bt with retries and stores its result. It returns the number
// of flush calls made and how many of them failed.
func (b *Batcher[T]) run(bt *batcherBatch[T]) (calls, errs int) {
	items := bt.items
	var orig []int           // orig[j] is the index in bt.items of items[j]; nil: identity
	var failed map[int]error // per-item failures of the last call, indexes into items
	var wholeErr error       // or the last call failed as a whole
	for attempt := 1; ; attempt++ {
		calls++
		err := b.call(items)
		if err == nil {
			return calls, errs
		}
		errs++
		perItem, ok := batcherSplit(err, len(items))
		if ok && len(perItem) == 0 { // a BatchError with nothing failed
			return calls, errs
		}
		if ok {
			b.logger.Warn("queue: batch flush failed for some items", "items", len(items), "failed", len(perItem), "attempt", attempt, "err", err)
			idx := BatchError{Failed: perItem}.indexes()
			sub := make([]T, len(idx))
			subOrig := make([]int, len(idx))
			subFailed := make(map[int]error, len(idx))
			for j, i := range idx {
				sub[j] = items[i]
				subOrig[j] = i
				if orig != nil {
					subOrig[j] = orig[i]
				}
				subFailed[j] = perItem[i]
				if subFailed[j] == nil {
					subFailed[j] = errBatchNilItemErr
				}
			}
			items, orig, failed, wholeErr = sub, subOrig, subFailed, nil
		} else {
			b.logger.Warn("queue: batch flush failed", "items", len(items), "attempt", attempt, "err", err)
			failed, wholeErr = nil, err
		}
		if attempt >= b.attempts || !b.sleep(attempt) {
			break
		}
	}

	// Report exactly the items still failed: items, with wholeErr for all of
	// them or failed per item.
	switch {
	case wholeErr != nil && orig == nil:
		bt.err = wholeErr
		b.report(items, wholeErr)
	case wholeErr != nil:
		res := make(map[int]error, len(items))
		for j := range items {
			res[orig[j]] = wholeErr
		}
		bt.failed = res
		b.report(items, wholeErr)
	default:
		res := make(map[int]error, len(items))
		for j, e := range failed {
			res[orig[j]] = e
		}
		bt.failed = res
		b.report(items, BatchError{Failed: failed})
	}
	b.mu.Lock()
	b.st.FailedBatches++
	b.st.FailedItems += uint64(len(items))
	b.mu.Unlock()
	return calls, errs
}

// call runs the flush function, turning a panic into an error.
func (b *Batcher[T]) call(items []T) (err error) {
	defer func() {
		if r := recover(); r != nil {
			b.logger.Error("queue: batch flush panicked", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("%w: %v", ErrBatchPanic, r)
		}
	}()
	ctx := b.baseCtx
	if b.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.timeout)
		defer cancel()
	}
	return b.flush(ctx, items)
}

// report calls OnError, recovering a panic.
func (b *Batcher[T]) report(items []T, err error) {
	if b.onError == nil {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			b.logger.Error("queue: OnError panicked", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	b.onError(items, err)
}

// sleep waits the backoff after the given failed attempt. It returns false
// if Close gave up meanwhile.
func (b *Batcher[T]) sleep(attempt int) bool {
	if b.backoff == nil {
		return b.baseCtx.Err() == nil
	}
	d := b.backoff(attempt)
	if d <= 0 {
		return b.baseCtx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-b.baseCtx.Done():
		return false
	}
}

// batcherSplit reports whether err is a BatchError and, if so, its failed
// indexes. A BatchError with an index outside [0, n) is treated as a
// failure of the whole batch: no item is reported as successful on a
// malformed answer.
func batcherSplit(err error, n int) (map[int]error, bool) {
	var be BatchError
	var pbe *BatchError
	var failed map[int]error
	switch {
	case errors.As(err, &be):
		failed = be.Failed
	case errors.As(err, &pbe) && pbe != nil:
		failed = pbe.Failed
	default:
		return nil, false
	}
	for i := range failed {
		if i < 0 || i >= n {
			return nil, false
		}
	}
	return failed, true
}

// linger is the MaxWait goroutine: it seals each open batch when its oldest
// item has waited MaxWait. It sleeps on one timer set for the earliest
// deadline and is woken through b.wake only when the first batch opens.
func (b *Batcher[T]) linger() {
	defer close(b.lingerEnd)
	t := time.NewTimer(time.Hour)
	t.Stop()
	for {
		select {
		case <-b.stop:
			t.Stop()
			return
		case <-b.wake:
		case <-t.C:
		}
		b.mu.Lock()
		next := b.expireLocked(time.Now())
		b.mu.Unlock()
		if next > 0 {
			t.Reset(next)
		}
	}
}

// expireLocked seals the open batches whose deadline has passed and returns
// the time until the next deadline (0 when no batch is open).
func (b *Batcher[T]) expireLocked(now time.Time) time.Duration {
	for b.open.len() > 0 {
		e := b.open.peek()
		if e.b.gen == e.gen && !e.b.sealed {
			if d := e.deadline.Sub(now); d > 0 {
				return d
			}
			b.sealLocked(e.b.part)
		}
		b.open.pop()
	}
	return 0
}

// batcherFIFO is a slice-backed FIFO queue that reuses its memory.
type batcherFIFO[E any] struct {
	buf  []E
	head int
}

func (q *batcherFIFO[E]) len() int { return len(q.buf) - q.head }

// all returns the queued elements, oldest first, without removing them.
func (q *batcherFIFO[E]) all() []E { return q.buf[q.head:] }

func (q *batcherFIFO[E]) peek() E { return q.buf[q.head] }

func (q *batcherFIFO[E]) push(e E) {
	if q.head >= 32 && q.head*2 >= len(q.buf) { // compact: amortised O(1)
		n := copy(q.buf, q.buf[q.head:])
		clear(q.buf[n:])
		q.buf, q.head = q.buf[:n], 0
	}
	q.buf = append(q.buf, e)
}

func (q *batcherFIFO[E]) pop() E {
	var zero E
	e := q.buf[q.head]
	q.buf[q.head] = zero
	q.head++
	if q.head == len(q.buf) {
		q.buf, q.head = q.buf[:0], 0
	}
	return e
}

func (q *batcherFIFO[E]) reset() {
	clear(q.buf)
	q.buf, q.head = q.buf[:0], 0
}
