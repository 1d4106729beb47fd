package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/outrigger-dev/outrigger/queue"
)

// pubChannel is one confirm-mode channel shared by concurrent publishes.
// Publishes are pipelined: amqp091-go numbers them under the channel's lock
// and each caller waits for its own confirm.
type pubChannel struct {
	cm *connManager
	mu sync.Mutex    // protects ch
	ch *amqp.Channel // nil until first use, replaced when closed
}

// get returns the channel, opening a new one if it is closed.
func (p *pubChannel) get(ctx context.Context) (*amqp.Channel, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ch != nil && !p.ch.IsClosed() {
		return p.ch, nil
	}
	ch, err := p.cm.channel(ctx)
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("rabbitmq: confirm mode: %w", err)
	}
	p.ch = ch
	return ch, nil
}

func (p *pubChannel) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ch != nil {
		_ = p.ch.Close()
		p.ch = nil
	}
}

// pending is one sent publish waiting for its confirm.
type pending struct {
	dc *amqp.DeferredConfirmation
	ch *amqp.Channel
}

// send publishes msg to the default exchange with routing key key, on one
// of the publish channels, without waiting for the confirm. A publish that
// fails before anything was sent (the channel was closed) is retried on a
// fresh channel until ctx is done.
func (q *Queue) send(ctx context.Context, key string, msg amqp.Publishing) (pending, error) {
	p := q.pubs[int(q.next.Add(1)%uint64(len(q.pubs)))]
	for {
		ch, err := p.get(ctx)
		if err != nil {
			return pending{}, err
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", key, false, false, msg)
		if err == nil {
			return pending{dc: dc, ch: ch}, nil
		}
		if !errors.Is(err, amqp.ErrClosed) {
			return pending{}, fmt.Errorf("rabbitmq: publish: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return pending{}, fmt.Errorf("rabbitmq: publish: %w", err)
		}
		// Nothing was sent: try again on a new channel.
	}
}

// wait waits for the confirm of one publish.
func (q *Queue) wait(ctx context.Context, p pending, full bool) error {
	select {
	case <-p.dc.Done():
	case <-ctx.Done():
		return fmt.Errorf("rabbitmq: waiting for the publish confirm (the message may or may not be queued): %w", ctx.Err())
	}
	if p.dc.Acked() {
		return nil
	}
	if p.ch.IsClosed() {
		return ErrNotConfirmed
	}
	if full {
		return queue.ErrFull
	}
	return ErrNacked
}

// Reserved header names. User headers must not start with headerPrefix.
const (
	headerPrefix    = "x-outrigger-"
	headerAttempt   = headerPrefix + "attempt"
	headerPublished = headerPrefix + "published" // unix nanoseconds
	headerError     = headerPrefix + "error"
)

// publishing builds the AMQP message for m.
func publishing(m *queue.Message) amqp.Publishing {
	h := make(amqp.Table, len(m.Headers)+3)
	for k, v := range m.Headers {
		h[k] = v
	}
	h[headerAttempt] = int64(m.Attempt)
	h[headerPublished] = m.PublishedAt.UnixNano()
	if m.LastError != "" {
		h[headerError] = m.LastError
	}
	return amqp.Publishing{
		Headers:      h,
		DeliveryMode: amqp.Persistent,
		MessageId:    m.ID,
		Timestamp:    m.PublishedAt,
		Body:         m.Body,
	}
}

// message decodes a delivery.
func message(d *amqp.Delivery) *queue.Message {
	m := &queue.Message{ID: d.MessageId, Body: d.Body, Attempt: 1}
	if d.Body == nil {
		m.Body = []byte{}
	}
	for k, v := range d.Headers {
		switch k {
		case headerAttempt:
			if n, ok := toInt64(v); ok && n >= 1 {
				m.Attempt = int(n)
			}
		case headerPublished:
			if n, ok := toInt64(v); ok {
				m.PublishedAt = time.Unix(0, n)
			}
		case headerError:
			m.LastError, _ = v.(string)
		default:
			s, ok := v.(string)
			if !ok || strings.HasPrefix(k, headerPrefix) || isBrokerHeader(k) {
				continue
			}
			if m.Headers == nil {
				m.Headers = make(map[string]string)
			}
			m.Headers[k] = s
		}
	}
	if m.PublishedAt.IsZero() {
		m.PublishedAt = d.Timestamp
	}
	return m
}

// isBrokerHeader reports headers RabbitMQ adds when it dead-letters a
// message (our delay queues) or redelivers it from a quorum queue.
func isBrokerHeader(k string) bool {
	return strings.HasPrefix(k, "x-death") || strings.HasPrefix(k, "x-first-death-") ||
		strings.HasPrefix(k, "x-last-death-") || k == "x-delivery-count"
}

func toInt64(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int32:
		return int64(n), true
	case int16:
		return int64(n), true
	case int8:
		return int64(n), true
	case int:
		return int64(n), true
	case uint8:
		return int64(n), true
	case uint16:
		return int64(n), true
	case uint32:
		return int64(n), true
	}
	return 0, false
}

// Publish adds one message and returns its ID once the broker confirmed it
// (publisher confirms: the message is on disk, and on a quorum of nodes for
// a quorum queue). WithDedupKey and WithID return queue.ErrUnsupported.
// With MaxLen, a message refused because the queue is full returns
// queue.ErrFull (or waits, polling, with BlockWhenFull). If the connection
// is lost before the confirm, Publish returns ErrNotConfirmed: the message
// may or may not be queued, never silently dropped.
func (q *Queue) Publish(ctx context.Context, body []byte, opts ...queue.PublishOption) (string, error) {
	ps, err := queue.ResolvePublishOptions(opts...)
	if err != nil {
		return "", err
	}
	switch {
	case ps.DedupKey != "":
		return "", fmt.Errorf("rabbitmq: WithDedupKey: %w", queue.ErrUnsupported)
	case ps.ID != "":
		return "", fmt.Errorf("rabbitmq: WithID (deduplicated IDs): %w", queue.ErrUnsupported)
	}
	for k := range ps.Headers {
		if strings.HasPrefix(k, headerPrefix) {
			return "", fmt.Errorf("rabbitmq: WithHeaders key %q: the prefix %q is reserved", k, headerPrefix)
		}
	}
	if q.isClosed() {
		return "", fmt.Errorf("rabbitmq: %w", queue.ErrClosed)
	}
	ctx = q.set.Hooks.BeforePublish(ctx, q.name, &ps)
	id, err := q.publish(ctx, body, ps)
	q.set.Hooks.AfterPublish(ctx, q.name, id, err)
	return id, err
}

func (q *Queue) publish(ctx context.Context, body []byte, ps queue.PublishSettings) (string, error) {
	m := &queue.Message{ID: q.newID(), Body: body, Headers: ps.Headers, Attempt: 1, PublishedAt: time.Now()}
	key := q.name
	full := q.set.MaxLen > 0
	if ps.Delay > 0 {
		dq, err := q.delayQueue(ctx, ps.Delay)
		if err != nil {
			return "", err
		}
		key = dq.name
		full = false
	}
	var poll time.Duration
	for {
		p, err := q.send(ctx, key, publishing(m))
		if err == nil {
			err = q.wait(ctx, p, full)
		}
		q.cnt.CountPublish(err)
		if err == nil {
			return m.ID, nil
		}
		if !errors.Is(err, queue.ErrFull) || !q.set.BlockWhenFull {
			return "", err
		}
		poll = min(max(2*poll, 5*time.Millisecond), 200*time.Millisecond)
		t := time.NewTimer(poll)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return "", ctx.Err()
		}
	}
}

// PublishBatch publishes the bodies pipelined (one confirm wait for all)
// and returns their IDs once the broker confirmed them all. On error, the
// IDs of the messages that were not confirmed are "" (they may still be
// queued if the connection was lost: see ErrNotConfirmed).
func (q *Queue) PublishBatch(ctx context.Context, bodies [][]byte) ([]string, error) {
	ids := make([]string, len(bodies))
	if len(bodies) == 0 {
		return ids, nil
	}
	if q.isClosed() {
		return ids, fmt.Errorf("rabbitmq: %w", queue.ErrClosed)
	}
	now := time.Now()
	ps := make([]pending, len(bodies))
	msgIDs := make([]string, len(bodies))
	var ctxs []context.Context // per message, with publish hooks
	errs := make([]error, len(bodies))
	if h := q.set.Hooks; h.OnPublish != nil || h.OnPublished != nil {
		ctxs = make([]context.Context, len(bodies))
		defer func() {
			for i, c := range ctxs {
				if c == nil {
					continue
				}
				err := errs[i]
				if err == nil && ids[i] == "" {
					err = errBatchCut
				}
				h.AfterPublish(c, q.name, ids[i], err)
			}
		}()
	}
	var first error
	for i, b := range bodies {
		msgIDs[i] = q.newID()
		var headers map[string]string
		if ctxs != nil {
			var s queue.PublishSettings
			ctxs[i] = q.set.Hooks.BeforePublish(ctx, q.name, &s)
			headers = s.Headers
		}
		p, err := q.send(ctx, q.name, publishing(&queue.Message{ID: msgIDs[i], Body: b, Headers: headers, Attempt: 1, PublishedAt: now}))
		if err != nil {
			first = err
			break
		}
		ps[i] = p
	}
	for i, p := range ps {
		if p.dc == nil {
			break
		}
		err := q.wait(ctx, p, q.set.MaxLen > 0)
		q.cnt.CountPublish(err)
		errs[i] = err
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		ids[i] = msgIDs[i]
	}
	return ids, first
}

// errBatchCut is what the publish hooks report for the messages of a batch
// that were not sent because an earlier one failed.
var errBatchCut = errors.New("rabbitmq: not published: an earlier message of the batch failed")

// delayQueue is one queue holding messages for a fixed time: its
// x-message-ttl is the delay and its dead-letter exchange (the default
// exchange, routing key = the main queue) moves expired messages to the
// main queue. Each delay has its own queue, so expiry is FIFO and never
// blocked behind a longer delay.
type delayQueue struct {
	name     string
	ttl      time.Duration
	declared time.Time // last declaration by this process
}

// delayTTL rounds d up to whole milliseconds with 5 significant bits (at
// most 1/16 later), so a Backoff with jitter does not make a queue per
// value.
func delayTTL(d time.Duration) int64 {
	ms := int64((d + time.Millisecond - 1) / time.Millisecond)
	if ms < 1 {
		ms = 1
	}
	bits := 0
	for v := ms; v > 0; v >>= 1 {
		bits++
	}
	if bits > 5 {
		g := int64(1) << (bits - 5)
		ms = (ms + g - 1) / g * g
	}
	return ms
}

// delayExpiry is the x-expires of a delay queue: unused delay queues go
// away, and since the queue is redeclared (renewing the lease) at least
// every half of it and before each publish after that, a message (whose TTL
// is shorter than half of it) always reaches the main queue first.
func delayExpiry(ttl time.Duration) time.Duration { return 2*ttl + 10*time.Minute }

// delayQueue returns the delay queue for d, declaring it when this process
// has not done so within half its expiry.
func (q *Queue) delayQueue(ctx context.Context, d time.Duration) (*delayQueue, error) {
	ms := delayTTL(d)
	ttl := time.Duration(ms) * time.Millisecond
	q.delayMu.Lock()
	dq := q.delays[ms]
	if dq != nil && time.Since(dq.declared) < delayExpiry(ttl)/2 {
		q.delayMu.Unlock()
		return dq, nil
	}
	q.delayMu.Unlock()
	name := q.name + ".delay." + strconv.FormatInt(ms, 10)
	args := amqp.Table{
		"x-queue-type":              string(q.cfg.QueueType),
		"x-message-ttl":             ms,
		"x-expires":                 int64(delayExpiry(ttl) / time.Millisecond),
		"x-dead-letter-exchange":    "",
		"x-dead-letter-routing-key": q.name,
	}
	if q.cfg.QueueType == Quorum {
		// Quorum queues dead-letter at least once (the message stays until
		// the main queue confirmed it) only with reject-publish overflow.
		args["x-dead-letter-strategy"] = "at-least-once"
		args["x-overflow"] = "reject-publish"
	}
	ch, err := q.cm.channel(ctx)
	if err != nil {
		return nil, err
	}
	defer ch.Close()
	at := time.Now()
	if _, err := ch.QueueDeclare(name, true, false, false, false, args); err != nil {
		return nil, fmt.Errorf("rabbitmq: declare delay queue %q: %w", name, err)
	}
	q.delayMu.Lock()
	defer q.delayMu.Unlock()
	dq = q.delays[ms]
	if dq == nil {
		dq = &delayQueue{name: name, ttl: ttl}
		q.delays[ms] = dq
	}
	dq.declared = at
	return dq, nil
}
