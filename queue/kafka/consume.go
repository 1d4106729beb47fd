package kafka

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/outrigger-dev/outrigger/queue"
)

// errGivenUp is the result, in a batch, of a message whose partition was
// given up before the batch handler started; it is dropped, never
// committed or retried. (A Handler's such message is not run: Enter.)
var errGivenUp = errors.New("kafka: partition given up in a rebalance")

// Consume runs handler on the queue's messages until ctx is done or Close is
// called, then drains: it stops fetching at once, hands back the messages
// not started, waits up to ShutdownTimeout for running handlers, commits
// what finished and leaves the group. handler is a queue.Handler or a
// queue.BatchHandler (or a func literal of one of those shapes).
//
// Each Consume call is one member of the queue's consumer group (its own
// franz-go client), reading the main topic and the retry topics. Messages
// with one key run one at a time in offset order; others run concurrently
// up to Concurrency. Offsets are committed every Config.CommitInterval, on
// every revoke and at the end, only up to the first message of each
// partition whose handler has not finished. A failure is written to the
// retry topic of its Backoff tier (with Attempt+1 and LastError) and then
// counts as finished; after MaxAttempts, or at once for queue.Permanent, it
// goes to the dead-letter topic. If the brokers become unreachable the
// client reconnects and the member resumes from the committed offsets; it
// returns only when ctx is done.
//
// Of the consume options, VisibilityTimeout is unused (the group's session
// timeout detects dead consumers) and ConsumerName is added to the client
// ID.
func (q *Queue) Consume(ctx context.Context, handler any, opts ...queue.ConsumeOption) error {
	spec, err := queue.NewConsumeSpec(handler, opts...)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d := newDriver(q, max(spec.Prefetch(), 2*spec.Concurrency()))
	wrapped := d.wrap(handler)
	if spec, err = queue.NewConsumeSpec(wrapped, opts...); err != nil {
		return err
	}
	name := spec.ConsumerName()
	if name == "" {
		host, _ := os.Hostname()
		name = host + "-" + strconv.Itoa(os.Getpid()) + "-" + q.newID()
	}
	q.mu.Lock()
	if q.closed.Load() {
		q.mu.Unlock()
		return errClosed
	}
	if d.cl, err = kgo.NewClient(d.clientOpts(name)...); err != nil {
		q.mu.Unlock()
		return fmt.Errorf("kafka: consumer client: %w", err)
	}
	q.consumers[d] = cancel
	q.running.Add(1)
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		delete(q.consumers, d)
		q.mu.Unlock()
		q.running.Done()
	}()
	d.start(ctx)
	spec.Observe(q.name, q.set.Hooks)
	return spec.Run(ctx, d, &q.cnt, q.log)
}

// ConsumeBatch is Consume with a queue.BatchHandler.
func (q *Queue) ConsumeBatch(ctx context.Context, handler queue.BatchHandler, opts ...queue.ConsumeOption) error {
	if handler == nil {
		return fmt.Errorf("%w: handler is nil", queue.ErrInvalidHandler)
	}
	return q.Consume(ctx, handler, opts...)
}

// wrap returns a batch handler run through enter: the messages whose
// partition was given up are not run, and the batch gets a ctx cancelled
// when one of its partitions is given up. A Handler is returned as it is:
// the engine runs it through Enter. NewConsumeSpec has validated handler's
// type.
func (d *driver) wrap(handler any) any {
	switch h := handler.(type) {
	case queue.BatchHandler:
		d.batch = true
		return d.wrapBatch(h)
	case func(context.Context, []*queue.Message) []error:
		d.batch = true
		return d.wrapBatch(h)
	}
	return handler
}

func (d *driver) wrapBatch(h queue.BatchHandler) queue.BatchHandler {
	return func(hctx context.Context, ms []*queue.Message) []error {
		errs := make([]error, len(ms))
		kept := make([]*queue.Message, 0, len(ms))
		idx := make([]int, 0, len(ms))
		ctx, cancel := context.WithCancel(hctx)
		defer cancel()
		seen := map[*pstate]bool{}
		for i, m := range ms {
			p, pctx, done, ok := d.enter(hctx, m)
			if !ok {
				errs[i] = errGivenUp
				continue
			}
			if done != nil {
				defer done()
			}
			if !seen[p] {
				seen[p] = true
				stop := context.AfterFunc(pctx, cancel)
				defer stop()
			}
			kept = append(kept, m)
			idx = append(idx, i)
		}
		if len(kept) == 0 {
			return errs
		}
		res := h(ctx, kept)
		if res == nil {
			return errs
		}
		if len(res) != len(kept) {
			err := fmt.Errorf("queue: batch handler returned %d results for %d messages", len(res), len(kept))
			for i := range errs {
				errs[i] = err
			}
			return errs
		}
		for j, i := range idx {
			errs[i] = res[j]
		}
		return errs
	}
}
