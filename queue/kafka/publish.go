package kafka

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/outrigger-dev/outrigger/queue"
)

// produce sends the records and waits until the broker acknowledged each
// (acks=all, idempotent producer) or ctx is done. It returns one error per
// record (nil: acknowledged) and the first error. A record whose wait was
// cut short by ctx may still be written: its error says so.
func (q *Queue) produce(ctx context.Context, rs ...*kgo.Record) ([]error, error) {
	errs := make([]error, len(rs))
	if len(rs) == 0 {
		return errs, nil
	}
	var mu sync.Mutex // protects errs until every promise ran or ctx is done
	done := make(chan struct{})
	left := len(rs)
	for i, r := range rs {
		q.cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			mu.Lock()
			if errs != nil {
				errs[i] = err
				left--
				if left == 0 {
					close(done)
				}
			}
			mu.Unlock()
		})
	}
	select {
	case <-done:
	case <-ctx.Done():
		mu.Lock()
		select {
		case <-done:
		default:
			// Stop recording: the promises still run, into nothing.
			for i := range errs {
				if errs[i] == nil {
					errs[i] = fmt.Errorf("kafka: waiting for the broker's acknowledgement (the message may or may not be written): %w", ctx.Err())
				}
			}
			out := errs
			errs = nil
			mu.Unlock()
			return out, out[0]
		}
		mu.Unlock()
	}
	var first error
	for i, err := range errs {
		if err != nil {
			errs[i] = fmt.Errorf("kafka: produce to %q: %w", rs[i].Topic, err)
			if first == nil {
				first = errs[i]
			}
		}
	}
	return errs, first
}

// waiter is the promise of one produced record: the result is sent on done,
// which is buffered so that a promise running after its caller stopped
// waiting (ctx done) never blocks. Waiters are pooled: one is put back only
// after its promise ran.
type waiter struct {
	done    chan error
	promise func(*kgo.Record, error)
}

var waiters = sync.Pool{New: func() any {
	w := &waiter{done: make(chan error, 1)}
	w.promise = func(_ *kgo.Record, err error) { w.done <- err }
	return w
}}

// produceOne is produce for one record, without allocating.
func (q *Queue) produceOne(ctx context.Context, r *kgo.Record) error {
	w := waiters.Get().(*waiter)
	q.cl.Produce(ctx, r, w.promise)
	var err error
	if done := ctx.Done(); done == nil {
		err = <-w.done
	} else {
		select {
		case err = <-w.done:
		case <-done:
			select {
			case err = <-w.done:
			default:
				// The promise still runs, into w.done; w is not reused.
				return fmt.Errorf("kafka: waiting for the broker's acknowledgement (the message may or may not be written): %w", ctx.Err())
			}
		}
	}
	waiters.Put(w)
	if err != nil {
		return fmt.Errorf("kafka: produce to %q: %w", r.Topic, err)
	}
	return nil
}

// Publish adds one message and returns its ID once the broker acknowledged
// it (acks=all: every in-sync replica has it; the idempotent producer makes
// client retries write it once). With queue.WithKey the key picks the
// partition and messages with one key are handled in publish order.
// queue.WithDelay writes it to the retry topic of its delay tier, with its
// due time. queue.WithDedupKey and queue.WithID return
// queue.ErrUnsupported. If the brokers are unreachable Publish waits (the
// client retries) until ctx is done; an error then means the message may or
// may not be written, never that it was silently dropped.
func (q *Queue) Publish(ctx context.Context, body []byte, opts ...queue.PublishOption) (string, error) {
	var ps queue.PublishSettings
	if len(opts) > 0 {
		var err error
		if ps, err = queue.ResolvePublishOptions(opts...); err != nil {
			return "", err
		}
		switch {
		case ps.DedupKey != "":
			return "", fmt.Errorf("kafka: WithDedupKey: %w", queue.ErrUnsupported)
		case ps.ID != "":
			return "", fmt.Errorf("kafka: WithID (deduplicated IDs): %w", queue.ErrUnsupported)
		}
		if err := checkHeaders(ps.Headers); err != nil {
			return "", err
		}
	}
	if q.isClosed() {
		return "", errClosed
	}
	ctx = q.set.Hooks.BeforePublish(ctx, q.name, &ps)
	id, err := q.publish(ctx, body, ps)
	q.set.Hooks.AfterPublish(ctx, q.name, id, err)
	return id, err
}

func (q *Queue) publish(ctx context.Context, body []byte, ps queue.PublishSettings) (string, error) {
	now := time.Now()
	var r *kgo.Record
	if len(ps.Headers) == 0 && ps.Delay <= 0 {
		if body == nil {
			body = []byte{}
		}
		r = &kgo.Record{Topic: q.name, Key: keyBytes(ps.Key), Value: body, Timestamp: now}
	} else {
		m := &queue.Message{Body: body, Headers: ps.Headers, Attempt: 1, PublishedAt: now}
		topic := q.name
		var due time.Time
		if ps.Delay > 0 {
			topic = q.tiers[q.tierFor(ps.Delay)].topic
			due = now.Add(ps.Delay)
		}
		r = encode(topic, keyBytes(ps.Key), m, due, origin{})
	}
	err := q.produceOne(ctx, r)
	q.cnt.CountPublish(err)
	if err != nil {
		return "", err
	}
	if ps.Delay > 0 {
		q.wakeTier(r.Topic, r.Partition)
	}
	return positionID(r), nil
}

// PublishBatch publishes the bodies (without keys), all sent before waiting
// for the acknowledgements, and returns their IDs once the broker
// acknowledged them. On error, the IDs of the messages that were not
// acknowledged are "" (they may still be written if ctx ended the wait).
func (q *Queue) PublishBatch(ctx context.Context, bodies [][]byte) ([]string, error) {
	ids := make([]string, len(bodies))
	if len(bodies) == 0 {
		return ids, nil
	}
	if q.isClosed() {
		return ids, errClosed
	}
	now := time.Now()
	rs := make([]*kgo.Record, len(bodies))
	var ctxs []context.Context // per message, with publish hooks
	if h := q.set.Hooks; h.OnPublish != nil || h.OnPublished != nil {
		ctxs = make([]context.Context, len(bodies))
	}
	for i, b := range bodies {
		var headers map[string]string
		if ctxs != nil {
			var s queue.PublishSettings
			ctxs[i] = q.set.Hooks.BeforePublish(ctx, q.name, &s)
			headers = s.Headers
		}
		rs[i] = encode(q.name, nil, &queue.Message{Body: b, Headers: headers, Attempt: 1, PublishedAt: now}, time.Time{}, origin{})
	}
	errs, first := q.produce(ctx, rs...)
	for i, err := range errs {
		q.cnt.CountPublish(err)
		if err == nil {
			ids[i] = positionID(rs[i])
		}
		if ctxs != nil {
			q.set.Hooks.AfterPublish(ctxs[i], q.name, ids[i], err)
		}
	}
	return ids, first
}
