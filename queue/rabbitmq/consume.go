package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/outrigger-dev/outrigger/queue"
)

// Consume runs handler on the queue's messages until ctx is done or Close is
// called, then drains: it stops taking messages, hands back the ones not
// started, waits up to ShutdownTimeout for running handlers and
// acknowledges what finished. handler is a queue.Handler or a
// queue.BatchHandler (or a func literal of one of those shapes).
//
// The consumer channel has basic.qos prefetch = Prefetch and manual acks: a
// message is acknowledged only after its handler returned nil. A failure is
// republished (confirmed) to a delay queue with Attempt+1, then the original
// is acknowledged; after MaxAttempts (or at once for queue.Permanent) it is
// republished to the dead-letter queue instead. If the connection or channel
// is lost, the broker redelivers every unacknowledged message (at least
// once) and Consume reopens its channel as soon as the connection is back;
// it returns only when ctx is done. VisibilityTimeout is not used: the
// broker detects dead consumers by their connection.
func (q *Queue) Consume(ctx context.Context, handler any, opts ...queue.ConsumeOption) error {
	spec, err := queue.NewConsumeSpec(handler, opts...)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	key := new(int)
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return fmt.Errorf("rabbitmq: %w", queue.ErrClosed)
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
	tag := spec.ConsumerName()
	if tag == "" {
		host, _ := os.Hostname()
		tag = host + "-" + strconv.Itoa(os.Getpid()) + "-" + q.newID()
	}
	d := &driver{q: q, prefetch: spec.Prefetch(), tag: tag}
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

// driver is the AMQP side of one Consume call. Fetch and Settle run on
// different goroutines; the channel fields are only used by Fetch and
// Leave (which runs after the last Fetch), handles carry their own channel.
type driver struct {
	q        *Queue
	prefetch int
	tag      string

	ch         *amqp.Channel
	deliveries <-chan amqp.Delivery
}

// handle is a delivery's settling state. Settle may be called again for the
// same handles after an error, so it remembers what was already done.
type handle struct {
	d      amqp.Delivery
	ch     *amqp.Channel
	copied atomic.Bool // the retry or dead-letter copy was confirmed
	done   atomic.Bool // acked or nacked
}

var errChannelLost = errors.New("rabbitmq: consumer channel lost; reopening")

// open opens the consumer channel with its prefetch.
func (d *driver) open(ctx context.Context) error {
	ch, err := d.q.cm.channel(ctx)
	if err != nil {
		return err
	}
	if err := ch.Qos(d.prefetch, 0, false); err != nil {
		_ = ch.Close()
		return fmt.Errorf("rabbitmq: qos: %w", err)
	}
	ds, err := ch.Consume(d.q.name, d.tag, false, false, false, false, nil)
	if err != nil {
		_ = ch.Close()
		return fmt.Errorf("rabbitmq: consume: %w", err)
	}
	d.ch, d.deliveries = ch, ds
	return nil
}

func (d *driver) reset() {
	if d.ch != nil {
		_ = d.ch.Close()
	}
	d.ch, d.deliveries = nil, nil
}

// Fetch implements queue.Driver. When the channel is lost (with the
// connection, or closed by the broker) it reopens it at once, once per
// call: the broker has put the unacknowledged deliveries back, and they
// come again on the new channel as soon as the connection is.
func (d *driver) Fetch(ctx context.Context, max int) ([]*queue.Delivery, error) {
	var dels []amqp.Delivery
	for reopened := false; len(dels) == 0; {
		if ctx.Err() != nil {
			return nil, nil // no new consumer once the cancel is seen
		}
		if d.deliveries == nil {
			if err := d.open(ctx); err != nil {
				if ctx.Err() != nil {
					return nil, nil
				}
				return nil, err
			}
		}
		select {
		case del, ok := <-d.deliveries:
			if ok {
				dels = append(dels, del)
				break
			}
			d.reset()
			if reopened {
				return nil, errChannelLost
			}
			reopened = true
		case <-ctx.Done():
			return nil, nil
		}
	}
more:
	for len(dels) < max {
		select {
		case del, ok := <-d.deliveries:
			if !ok {
				break more
			}
			dels = append(dels, del)
		default:
			break more
		}
	}
	if d.ch.IsClosed() {
		// The broker has already taken these back with the channel: running
		// them would only add duplicates.
		d.reset()
		return nil, errChannelLost
	}
	out := make([]*queue.Delivery, len(dels))
	for i := range dels {
		out[i] = d.delivery(dels[i])
	}
	return out, nil
}

func (d *driver) delivery(del amqp.Delivery) *queue.Delivery {
	d.q.inFlight.Add(1)
	x := &queue.Delivery{Message: message(&del), Handle: &handle{d: del, ch: d.ch}}
	if n, ok := toInt64(del.Headers["x-delivery-count"]); ok {
		// Quorum queues count the deliveries that ended without an ack
		// (consumer crashed, channel lost, or released at shutdown).
		x.Stalled = int(n)
	}
	return x
}

// Settle implements queue.Driver: copies for retries, dead letters (and
// releases on quorum queues) are published (pipelined) and confirmed first, then the originals are
// acknowledged, so a crash in between duplicates a message but never loses
// one. Deliveries whose channel is gone are skipped: the broker has already
// put them back.
func (d *driver) Settle(ctx context.Context, ss []queue.Settlement) error {
	type copyWait struct {
		h *handle
		p pending
	}
	var waits []copyWait
	var first error
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, s := range ss {
		h := s.Delivery.Handle.(*handle)
		if h.done.Load() || h.copied.Load() || h.ch.IsClosed() {
			continue
		}
		var key string
		m := *s.Delivery.Message
		switch s.Outcome {
		case queue.OutcomeRetry:
			m.Attempt++
			m.LastError = s.Err
			key = d.q.name
			if s.Delay > 0 {
				dq, err := d.q.delayQueue(pctx, s.Delay)
				if err != nil {
					first = cmp(first, err)
					continue
				}
				key = dq.name
			}
		case queue.OutcomeDeadLetter:
			m.LastError = s.Err
			key = d.q.dead
		case queue.OutcomeRelease:
			if !d.requeueCounts() {
				continue // nacked with requeue below
			}
			key = d.q.name // a fresh copy: its delivery count starts again
		default:
			continue
		}
		p, err := d.q.send(pctx, key, publishing(&m))
		if err != nil {
			first = cmp(first, err)
			continue
		}
		waits = append(waits, copyWait{h, p})
	}
	for _, w := range waits {
		if err := d.q.wait(pctx, w.p, false); err != nil {
			first = cmp(first, err)
			continue
		}
		w.h.copied.Store(true)
	}
	for _, s := range ss {
		h := s.Delivery.Handle.(*handle)
		if h.done.Load() {
			continue
		}
		if h.ch.IsClosed() {
			// The broker requeued it with its channel; not ours any more.
			h.done.Store(true)
			d.q.inFlight.Add(-1)
			continue
		}
		var err error
		switch s.Outcome {
		case queue.OutcomeAck:
			err = h.d.Ack(false)
		case queue.OutcomeRelease:
			if !d.requeueCounts() {
				err = h.d.Nack(false, true)
				break
			}
			if !h.copied.Load() {
				continue
			}
			err = h.d.Ack(false)
		default:
			if !h.copied.Load() {
				continue // its copy failed; the whole settle is retried
			}
			err = h.d.Ack(false)
		}
		if err != nil && !h.ch.IsClosed() {
			first = cmp(first, fmt.Errorf("rabbitmq: ack: %w", err))
			continue
		}
		h.done.Store(true)
		d.q.inFlight.Add(-1)
	}
	return first
}

// requeueCounts reports whether the broker counts a requeue as a failed
// delivery (quorum queues' x-delivery-count): then a release republishes a
// copy and acks the original instead of nacking it, so that graceful
// shutdowns do not make a message look like it crashes its consumers.
func (d *driver) requeueCounts() bool { return d.q.cfg.QueueType == Quorum }

func cmp(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// Leave implements queue.Driver: closing the channel cancels the consumer
// and hands every delivery not settled (prefetched after the stop) back to
// the broker, in one round trip (a basic.cancel before it would add one).
func (d *driver) Leave(context.Context) { d.reset() }
