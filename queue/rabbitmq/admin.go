package rabbitmq

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/outrigger-dev/outrigger/queue"
)

// Stats reports the queue's counts as far as AMQP can tell:
//   - Ready: the main queue's ready messages (queue.declare-ok count).
//   - InFlight and Pending: messages delivered to THIS process's consumers
//     and not yet settled. AMQP does not report other consumers'
//     unacknowledged messages (the management HTTP API does).
//   - Delayed: messages in the delay queues this process declared (its own
//     WithDelay publishes and retries); other processes' are not seen.
//   - Dead: the dead-letter queue's messages.
//   - OldestAge: always zero (AMQP gives no message ages without consuming).
//
// The counts are read one after another while messages move on (delay
// queue → main queue → a consumer → a delay queue again), so they are read
// in that order, with the in-flight count taken before and after: a message
// that moves during the call is counted twice rather than missed. What
// Stats cannot see is a message inside the broker between two queues: a
// delivery not yet received by the client, or a delay queue's expired
// message on its way to the main queue, which on quorum queues (dead-lettered
// at least once, through the broker's confirm round trip) lasts
// milliseconds. So an empty Stats is not proof that no retry is coming.
func (q *Queue) Stats(ctx context.Context) (queue.Stats, error) {
	if q.isClosed() {
		return queue.Stats{}, fmt.Errorf("rabbitmq: %w", queue.ErrClosed)
	}
	var st queue.Stats
	inFlight := q.inFlight.Load()
	ch, err := q.cm.channel(ctx)
	if err != nil {
		return st, err
	}
	defer func() { _ = ch.Close() }()
	q.delayMu.Lock()
	var names []string
	for ms, d := range q.delays {
		if time.Since(d.declared) > delayExpiry(d.ttl) {
			delete(q.delays, ms) // expired on the broker
			continue
		}
		names = append(names, d.name)
	}
	q.delayMu.Unlock()
	for _, n := range names {
		dq, err := ch.QueueDeclarePassive(n, true, false, false, false, nil)
		if err != nil {
			// Gone (a 404 closes the channel): count nothing for it.
			_ = ch.Close()
			if ch, err = q.cm.channel(ctx); err != nil {
				return st, err
			}
			continue
		}
		st.Delayed += int64(dq.Messages)
	}
	main, err := ch.QueueDeclarePassive(q.name, true, false, false, false, nil)
	if err != nil {
		return st, fmt.Errorf("rabbitmq: stats of %q: %w", q.name, err)
	}
	dead, err := ch.QueueDeclarePassive(q.dead, true, false, false, false, nil)
	if err != nil {
		return st, fmt.Errorf("rabbitmq: stats of %q: %w", q.dead, err)
	}
	st.Ready = int64(main.Messages)
	st.Dead = int64(dead.Messages)
	st.InFlight = max(inFlight, q.inFlight.Load())
	st.Pending = st.InFlight
	return st, nil
}

// DeadLetters returns up to n dead letters, oldest first (n <= 0: all of
// them). It reads them with basic.get without acknowledging and hands them
// back when done, so while it runs those messages are invisible to another
// DeadLetters or Requeue call.
func (q *Queue) DeadLetters(ctx context.Context, n int) ([]*queue.Message, error) {
	if q.isClosed() {
		return nil, fmt.Errorf("rabbitmq: %w", queue.ErrClosed)
	}
	ch, err := q.cm.channel(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = ch.Close() }() // hands the messages back
	var out []*queue.Message
	for n <= 0 || len(out) < n {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		d, ok, err := ch.Get(q.dead, false)
		if err != nil {
			return nil, fmt.Errorf("rabbitmq: read dead letters: %w", err)
		}
		if !ok {
			break
		}
		out = append(out, message(&d))
	}
	return out, nil
}

// Requeue moves the dead letters with the given IDs back to the main queue
// with a fresh attempt count (LastError keeps the error that killed them);
// with no IDs it requeues all of them. Each is republished (confirmed)
// before its dead letter is removed, so a failure in between duplicates it
// rather than losing it. IDs that are not dead letters are reported with
// queue.ErrNotFound after the others were requeued.
func (q *Queue) Requeue(ctx context.Context, ids ...string) error {
	if q.isClosed() {
		return fmt.Errorf("rabbitmq: %w", queue.ErrClosed)
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	ch, err := q.cm.channel(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = ch.Close() }() // hands back the ones not requeued
	type moved struct {
		d amqp.Delivery
		p pending
	}
	var ms []moved
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		d, ok, err := ch.Get(q.dead, false)
		if err != nil {
			return fmt.Errorf("rabbitmq: read dead letters: %w", err)
		}
		if !ok {
			break
		}
		m := message(&d)
		if len(ids) > 0 && !want[m.ID] {
			continue
		}
		delete(want, m.ID)
		m.Attempt = 1
		p, err := q.send(ctx, q.name, publishing(m))
		if err != nil {
			return err
		}
		ms = append(ms, moved{d, p})
		if len(ids) > 0 && len(want) == 0 {
			break
		}
	}
	for _, mv := range ms {
		if err := q.wait(ctx, mv.p, false); err != nil {
			return err
		}
		if err := mv.d.Ack(false); err != nil {
			return fmt.Errorf("rabbitmq: remove requeued dead letter: %w", err)
		}
	}
	if len(ids) > 0 && len(want) > 0 {
		missing := make([]string, 0, len(want))
		for id := range want {
			missing = append(missing, id)
		}
		sort.Strings(missing)
		return fmt.Errorf("%w: %s", queue.ErrNotFound, strings.Join(missing, ", "))
	}
	return nil
}
