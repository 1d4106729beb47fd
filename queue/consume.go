package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/outrigger-dev/outrigger/internal/rediserr"
)

// delivery is one message handed to a consumer, with the backend's handle
// for settling it.
type delivery struct {
	msg   *Message
	entry string // Redis stream entry ID
	mem   *memEntry
	// stalled is how many times the entry was delivered without being
	// settled (its consumers crashed or stalled), when that exceeds
	// MaxAttempts: it is dead-lettered without running the handler again.
	stalled int64
	ext     *Delivery // set for deliveries of a Driver

	// The engine's list of held deliveries, in fetch order (protected by
	// engine.mu).
	prev, next *delivery
	fetchedAt  time.Time
}

// settleKind says how a delivery ends.
type settleKind uint8

const (
	settleAck     settleKind = iota // handler succeeded
	settleRetry                     // failed: retry after delay with attempt+1
	settleDead                      // failed for the last time: dead-letter
	settleRelease                   // not processed (shutdown): back to the queue as is
)

// settlement is the outcome of one delivery.
type settlement struct {
	d     *delivery
	kind  settleKind
	delay time.Duration
	err   string // handler error (retry, dead)
}

// consumerBackend is what the consume engine needs from a backend. One
// value serves one Consume call.
type consumerBackend interface {
	// fetch returns up to max deliveries, waiting at most about cc.block
	// for the first one. It may return early, with nothing, when ctx is done.
	fetch(ctx context.Context, max int) ([]*delivery, error)
	// settle acks, retries, dead-letters or releases deliveries.
	settle(ctx context.Context, ss []settlement) error
	// renew extends the lease of deliveries still being worked on.
	renew(ctx context.Context, ds []*delivery) error
	// background runs housekeeping (delayed-message mover) until stop closes.
	background(stop <-chan struct{})
	// leave is called once at the end of Consume.
	leave(ctx context.Context)
}

// engine runs one Consume call: a fetcher, a worker pool, a settler that
// batches acks, and a lease renewer. Every goroutine it starts has returned
// when run returns.
type engine struct {
	be   consumerBackend
	cnt  *counters
	cc   consumeConfig
	h    Handler
	bh   BatchHandler
	log  *slog.Logger
	gate Gate // the Driver's, if it is one

	// Fetched deliveries waiting for a worker: wq for a Handler, work for
	// a BatchHandler (whose workers collect batches with a timer).
	wq   *workQueue
	work chan *delivery

	mu       sync.Mutex
	nheld    int           // deliveries fetched and not settled, at most Prefetch (protected by mu)
	oldest   *delivery     // the held deliveries, oldest first (protected by mu)
	newest   *delivery     // (protected by mu)
	roomWait bool          // the fetcher waits for room (protected by mu)
	room     chan struct{} // wakes the fetcher when roomWait was set

	// Outcomes waiting for the settler: workers append and wake the settler
	// only when it waits, so that it is woken once per batch rather than
	// once per message.
	smu         sync.Mutex
	outcomes    []settlement  // (protected by smu)
	settlerIdle bool          // the settler waits on settleWake (protected by smu)
	settleEnd   bool          // no more outcomes will come (protected by smu)
	settleWake  chan struct{} // wakes the settler when settlerIdle was set
	timed       bool          // OnProcessed is set: handler runs are timed

	stopping chan struct{} // closed when Consume's ctx is done
	hardStop chan struct{} // closed when the shutdown deadline has passed

	failOnce sync.Once
	fatal    error                   // the first invalid answer, set once by fail
	stop     context.CancelCauseFunc // ends the fetch loop when fail is called
}

func runEngine(ctx context.Context, be consumerBackend, cnt *counters, cc consumeConfig, h Handler, bh BatchHandler, log *slog.Logger) error {
	e := &engine{
		be:         be,
		cnt:        cnt,
		cc:         cc,
		h:          h,
		bh:         bh,
		log:        log,
		room:       make(chan struct{}, 1),
		outcomes:   make([]settlement, 0, cc.prefetch),
		settleWake: make(chan struct{}, 1),
		stopping:   make(chan struct{}),
		hardStop:   make(chan struct{}),
		timed:      cc.hooks != nil && cc.hooks.OnProcessed != nil,
	}
	if db, ok := be.(*driverBackend); ok {
		e.gate = db.gate
	}
	if bh != nil {
		e.work = make(chan *delivery, cc.prefetch)
	} else {
		e.wq = newWorkQueue(cc.concurrency)
	}
	// An answer that means a bug or bad data ends Consume as a shutdown
	// does (see fail); Consume then returns it.
	ctx, e.stop = context.WithCancelCause(ctx)
	defer e.stop(nil)
	// Handlers keep running after ctx is done, until the shutdown deadline.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()

	var fetchWG, workWG, settleWG, bgWG sync.WaitGroup
	bgStop := make(chan struct{})
	bgWG.Add(2)
	go func() { defer bgWG.Done(); be.background(bgStop) }()
	go func() { defer bgWG.Done(); e.renewLoop(hctx, bgStop) }()
	settleWG.Add(1)
	go func() { defer settleWG.Done(); e.settleLoop(hctx) }()
	workWG.Add(cc.concurrency)
	for range cc.concurrency {
		go func() { defer workWG.Done(); e.workLoop(hctx) }()
	}
	fetchWG.Add(1)
	go func() { defer fetchWG.Done(); e.fetchLoop(ctx) }()

	<-ctx.Done()
	close(e.stopping)
	deadline := time.AfterFunc(cc.shutdownTimeout, func() {
		close(e.hardStop)
		hcancel()
	})
	fetchWG.Wait() // closes work
	workWG.Wait()
	e.endSettle()
	settleWG.Wait()
	close(bgStop)
	bgWG.Wait()
	if deadline.Stop() {
		close(e.hardStop)
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	be.leave(lctx)
	return e.fatal
}

// fail records err, an answer from Redis that means a bug or bad data
// (rediserr.Invalid), counts and logs it and stops the Consume: retrying it
// would only hide it. What is in flight settles as in a shutdown; what
// cannot be settled stays pending and is reclaimed later.
func (e *engine) fail(op string, err error) {
	e.cnt.invalid.Add(1)
	e.failOnce.Do(func() {
		e.fatal = fmt.Errorf("queue: consume: %s: %w", op, err)
		e.log.Error("queue: redis answer means a bug or bad data; consumer stopped", "op", op, "kind", rediserr.Kind(err), "err", err)
		e.stop(e.fatal)
	})
}

// invalid reports whether err, from a call made under ctx, is an answer
// that means a bug or bad data; if so it fails the Consume.
func (e *engine) invalid(ctx context.Context, op string, err error) bool {
	if rediserr.ClassifyCtx(ctx, err) != rediserr.Invalid {
		return false
	}
	e.fail(op, err)
	return true
}

// fetchLoop reads deliveries while fewer than Prefetch are held, until ctx
// is done. It checks ctx before every read, so no read starts once the
// cancel is seen; a read under way when ctx is cancelled ends promptly (the
// backend's fetch watches ctx) and what it returns is released.
func (e *engine) fetchLoop(ctx context.Context) {
	defer func() {
		if e.wq != nil {
			e.wq.close()
		} else {
			close(e.work)
		}
	}()
	var backoff time.Duration
	for {
		e.mu.Lock()
		n := e.cc.prefetch - e.nheld
		e.roomWait = n == 0
		e.mu.Unlock()
		if n == 0 {
			select {
			case <-e.room:
			case <-ctx.Done():
				return
			}
			continue
		}
		if ctx.Err() != nil {
			return
		}
		ds, err := e.be.fetch(ctx, n)
		if err != nil && e.invalid(ctx, "fetch", err) {
			continue // ctx is cancelled now: the loop ends
		}
		if err != nil {
			// At most a second between tries: a consumer must be back soon
			// after Redis (or the broker) is.
			backoff = min(max(2*backoff, 50*time.Millisecond), time.Second)
			e.log.Log(ctx, failureLevel(ctx, err), "queue: fetch failed", "err", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
			continue
		}
		backoff = 0
		if len(ds) == 0 {
			continue
		}
		now := time.Now()
		e.mu.Lock()
		e.nheld += len(ds)
		for _, d := range ds {
			d.fetchedAt, d.prev, d.next = now, e.newest, nil
			if e.newest == nil {
				e.oldest = d
			} else {
				e.newest.next = d
			}
			e.newest = d
		}
		e.mu.Unlock()
		if e.wq != nil {
			e.wq.push(ds)
			continue
		}
		for _, d := range ds {
			e.work <- d // never blocks: work has room for every held delivery
		}
	}
}

// failureLevel is the level at which to log err from work done under ctx:
// DEBUG when err only says that ctx is done (the consumer's own shutdown is
// no failure), WARN otherwise.
func failureLevel(ctx context.Context, err error) slog.Level {
	if ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}

func (e *engine) workLoop(hctx context.Context) {
	if e.bh != nil {
		e.batchLoop(hctx)
		return
	}
	for {
		d, ok := e.wq.pop()
		if !ok {
			return
		}
		if e.isStopping() {
			e.settleUnrun(hctx, settlement{d: d, kind: settleRelease})
			continue
		}
		if d.stalled > 0 {
			e.settleUnrun(hctx, e.stalledOut(d))
			continue
		}
		pctx := e.process(hctx, d)
		runCtx, done := pctx, func() {}
		if e.gate != nil {
			gctx, gdone, ok := e.gate.Enter(pctx, d.ext)
			if !ok {
				e.settleUnrun(pctx, settlement{d: d, kind: settleRelease})
				continue
			}
			runCtx = gctx
			if gdone != nil {
				done = gdone
			}
		}
		var start time.Time
		if e.timed {
			start = time.Now()
		}
		err := callHandler(runCtx, e.h, d.msg)
		done()
		e.logPanic(err)
		s := e.outcome(hctx, d, err)
		e.processed(pctx, s, start, err)
		e.push(s)
	}
}

func (e *engine) batchLoop(hctx context.Context) {
	batch := make([]*delivery, 0, e.cc.batchSize)
	var timer *time.Timer
	for d := range e.work {
		if e.isStopping() {
			e.settleUnrun(hctx, settlement{d: d, kind: settleRelease})
			continue
		}
		if d.stalled > 0 {
			e.settleUnrun(hctx, e.stalledOut(d))
			continue
		}
		batch = append(batch[:0], d)
		if e.cc.batchWait > 0 && e.cc.batchSize > 1 {
			if timer == nil {
				timer = time.NewTimer(e.cc.batchWait)
			} else {
				timer.Reset(e.cc.batchWait)
			}
		collect:
			for len(batch) < e.cc.batchSize {
				select {
				case d2, ok := <-e.work:
					if !ok {
						break collect
					}
					batch = append(batch, d2)
				case <-timer.C:
					break collect
				case <-e.stopping:
					break collect
				}
			}
			timer.Stop()
		} else {
		drain:
			for len(batch) < e.cc.batchSize {
				select {
				case d2, ok := <-e.work:
					if !ok {
						break drain
					}
					batch = append(batch, d2)
				default:
					break drain
				}
			}
		}
		kept := batch[:0]
		for _, d := range batch {
			if d.stalled > 0 {
				e.settleUnrun(hctx, e.stalledOut(d))
			} else {
				kept = append(kept, d)
			}
		}
		batch = kept
		if len(batch) == 0 {
			continue
		}
		msgs := make([]*Message, len(batch))
		for i, d := range batch {
			msgs[i] = d.msg
		}
		var ctxs []context.Context
		if e.cc.hooks != nil {
			ctxs = make([]context.Context, len(batch))
			for i, d := range batch {
				ctxs[i] = e.process(hctx, d)
			}
		}
		start := time.Now()
		errs := callBatchHandler(hctx, e.bh, msgs)
		if len(errs) > 0 {
			e.logPanic(errs[0]) // a panic fails every message with the same error
		}
		for i, d := range batch {
			s := e.outcome(hctx, d, errs[i])
			if ctxs != nil {
				e.processed(ctxs[i], s, start, errs[i])
			}
			e.push(s)
		}
	}
	if timer != nil {
		timer.Stop()
	}
}

// stalledOut dead-letters a message whose consumers kept dying on it.
func (e *engine) stalledOut(d *delivery) settlement {
	err := fmt.Sprintf("queue: delivered %d times without finishing: its consumers crashed or stalled (MaxAttempts %d)", d.stalled, e.cc.maxAttempts)
	e.log.Error("queue: dead-lettering a message that keeps stalling its consumers", "id", d.msg.ID, "deliveries", d.stalled)
	return settlement{d: d, kind: settleDead, err: err}
}

func (e *engine) isStopping() bool {
	select {
	case <-e.stopping:
		return true
	default:
		return false
	}
}

// outcome decides how a handled delivery settles.
func (e *engine) outcome(hctx context.Context, d *delivery, err error) settlement {
	if err == nil {
		return settlement{d: d, kind: settleAck}
	}
	if hctx.Err() != nil {
		// The shutdown deadline cancelled the handler: not the message's fault.
		return settlement{d: d, kind: settleRelease}
	}
	msg := err.Error()
	if errors.Is(err, ErrPermanent) || d.msg.Attempt >= e.cc.maxAttempts {
		return settlement{d: d, kind: settleDead, err: msg}
	}
	return settlement{d: d, kind: settleRetry, err: msg, delay: e.cc.backoff(d.msg.Attempt)}
}

// push hands s to the settler.
func (e *engine) push(s settlement) {
	e.smu.Lock()
	e.outcomes = append(e.outcomes, s)
	wake := e.settlerIdle
	e.settlerIdle = false
	e.smu.Unlock()
	if wake {
		e.settleWake <- struct{}{} // never blocks: sent once per wait
	}
}

// endSettle tells the settler that no more outcomes will come: it settles
// what it has and returns.
func (e *engine) endSettle() {
	e.smu.Lock()
	e.settleEnd = true
	wake := e.settlerIdle
	e.settlerIdle = false
	e.smu.Unlock()
	if wake {
		e.settleWake <- struct{}{}
	}
}

// maxSettle bounds the outcomes of one settle call.
const maxSettle = 1000

// settleLoop batches outcomes: everything waiting is settled in one call
// (of at most maxSettle).
func (e *engine) settleLoop(hctx context.Context) {
	sctx := context.WithoutCancel(hctx)
	spare := make([]settlement, 0, e.cc.prefetch)
	for {
		e.smu.Lock()
		for len(e.outcomes) == 0 {
			if e.settleEnd {
				e.smu.Unlock()
				return
			}
			e.settlerIdle = true
			e.smu.Unlock()
			<-e.settleWake
			e.smu.Lock()
		}
		all := e.outcomes
		e.outcomes = spare[:0]
		e.smu.Unlock()
		for rest := all; len(rest) > 0; {
			batch := rest[:min(len(rest), maxSettle)]
			rest = rest[len(batch):]
			e.settleBatch(sctx, batch)
		}
		clear(all) // drop the deliveries for the collector
		spare = all
	}
}

// settleBatch settles batch, retrying with backoff until the shutdown
// deadline, then frees the room its deliveries took.
func (e *engine) settleBatch(sctx context.Context, batch []settlement) {
	var backoff time.Duration
	for {
		err := e.be.settle(sctx, batch)
		if err == nil {
			e.cnt.countSettled(batch)
			break
		}
		if e.invalid(sctx, "settle", err) {
			break // the messages stay pending and are reclaimed
		}
		select {
		case <-e.hardStop:
			// Give up: the messages stay pending and are reclaimed by
			// another consumer after the visibility timeout.
			e.log.Error("queue: settle failed at shutdown; messages stay pending", "err", err, "n", len(batch))
		default:
			backoff = min(max(2*backoff, 20*time.Millisecond), time.Second)
			e.log.Warn("queue: settle failed", "err", err, "n", len(batch), "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-e.hardStop:
				t.Stop()
			}
			continue
		}
		break
	}
	e.mu.Lock()
	for _, s := range batch {
		d := s.d
		if d.prev == nil {
			e.oldest = d.next
		} else {
			d.prev.next = d.next
		}
		if d.next == nil {
			e.newest = d.prev
		} else {
			d.next.prev = d.prev
		}
		d.prev, d.next = nil, nil
	}
	e.nheld -= len(batch)
	wake := e.roomWait
	e.roomWait = false
	e.mu.Unlock()
	if wake {
		select {
		case e.room <- struct{}{}:
		default:
		}
	}
}

// renewLoop renews the leases of held deliveries every third of the
// visibility timeout.
func (e *engine) renewLoop(hctx context.Context, stop <-chan struct{}) {
	every := e.cc.visibility / 3
	t := time.NewTicker(every)
	defer t.Stop()
	ds := make([]*delivery, 0, e.cc.prefetch)
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		cutoff := time.Now().Add(-every)
		ds = ds[:0]
		e.mu.Lock()
		for d := e.oldest; d != nil && d.fetchedAt.Before(cutoff); d = d.next {
			ds = append(ds, d)
		}
		e.mu.Unlock()
		if len(ds) == 0 {
			continue
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(hctx), every)
		if err := e.be.renew(rctx, ds); err != nil && !e.invalid(rctx, "renew", err) {
			e.log.Warn("queue: lease renewal failed", "err", err, "n", len(ds))
		}
		cancel()
	}
}

// panicError is a recovered handler panic.
type panicError struct {
	value any
	stack []byte
}

func (p *panicError) Error() string { return fmt.Sprintf("queue: handler panicked: %v", p.value) }

func (e *engine) logPanic(err error) {
	if err == nil {
		return // (errors.As would allocate for nothing)
	}
	var p *panicError
	if errors.As(err, &p) {
		e.cnt.panics.Add(1)
		e.log.Error("queue: handler panicked", "panic", p.value, "stack", string(p.stack))
	}
}

// callHandler runs h, turning a panic into an error.
func callHandler(ctx context.Context, h Handler, m *Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = &panicError{value: r, stack: debug.Stack()}
		}
	}()
	return h(ctx, m)
}

// callBatchHandler runs h and returns exactly one result per message.
func callBatchHandler(ctx context.Context, h BatchHandler, ms []*Message) (errs []error) {
	defer func() {
		if r := recover(); r != nil {
			var err error = &panicError{value: r, stack: debug.Stack()}
			errs = make([]error, len(ms))
			for i := range errs {
				errs[i] = err
			}
		}
	}()
	res := h(ctx, ms)
	if res == nil {
		return make([]error, len(ms))
	}
	if len(res) != len(ms) {
		err := fmt.Errorf("queue: batch handler returned %d results for %d messages", len(res), len(ms))
		res = make([]error, len(ms))
		for i := range res {
			res[i] = err
		}
	}
	return res
}
