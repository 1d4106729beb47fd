package queue

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Queue is an at-least-once message queue. [*Redis] and [*Memory] implement
// it and pass the same contract tests. Implementations are safe for
// concurrent use by multiple goroutines.
type Queue interface {
	// Publish adds one message and returns its ID once the backend holds it.
	// With WithDedupKey, a second publish of the same key within the window
	// returns the first message's ID and an error matching ErrDuplicate.
	Publish(ctx context.Context, body []byte, opts ...PublishOption) (string, error)
	// PublishBatch adds several messages in one round trip. It returns one ID
	// per body; on error the IDs of the messages that were not added are "".
	PublishBatch(ctx context.Context, bodies [][]byte) ([]string, error)
	// Consume runs handler on messages until ctx is done, then drains the
	// handlers in flight and returns. handler is a [Handler], a
	// [BatchHandler], or a func literal of one of those two shapes.
	Consume(ctx context.Context, handler any, opts ...ConsumeOption) error
	// ConsumeBatch is Consume with a typed [BatchHandler].
	ConsumeBatch(ctx context.Context, handler BatchHandler, opts ...ConsumeOption) error
	// Stats reports the queue's counts.
	Stats(ctx context.Context) (Stats, error)
	// DeadLetters returns up to n dead-lettered messages, oldest first
	// (n <= 0: all of them).
	DeadLetters(ctx context.Context, n int) ([]*Message, error)
	// Requeue moves the dead letters with the given message IDs back to the
	// queue with a fresh attempt count; with no IDs it requeues all of them.
	Requeue(ctx context.Context, ids ...string) error
	// Close stops the queue: later calls fail with ErrClosed, running
	// Consume calls drain and return, and Close waits for them.
	Close() error
}

// Compile-time checks that both backends implement Queue.
var (
	_ Queue = (*Redis)(nil)
	_ Queue = (*Memory)(nil)
)

// Message is one message as a handler sees it.
type Message struct {
	// ID identifies the message. It is chosen at publish time (or given with
	// WithID) and stays the same across retries, dead-lettering and requeue.
	ID string
	// Body is the payload as published.
	Body []byte
	// Headers are the headers given with WithHeaders (nil when none).
	Headers map[string]string
	// Attempt is 1 on the first delivery and grows by one on each retry
	// after a failure.
	Attempt int
	// PublishedAt is when the message was first published (backend clock).
	PublishedAt time.Time
	// LastError is the error of the previous failed attempt ("" when there
	// was none); for a dead letter it is the error that killed it.
	LastError string
}

// Handler processes one message. Returning nil acknowledges it; an error (or
// a panic) makes it fail: it is retried after [Backoff] until [MaxAttempts],
// then dead-lettered. Wrap the error with [Permanent] to dead-letter at once.
type Handler func(ctx context.Context, m *Message) error

// BatchHandler processes several messages at once. It returns one result per
// message, in order; a nil slice means all succeeded. Messages whose result
// is nil are acknowledged, the others fail as with [Handler]. A panic, or a
// result slice of the wrong length, fails the whole batch.
type BatchHandler func(ctx context.Context, ms []*Message) []error

// Stats is a snapshot of a queue's counts.
type Stats struct {
	// Ready is the number of messages waiting to be delivered.
	Ready int64
	// InFlight is the number of messages delivered to a consumer and not yet
	// acknowledged (the consumer group's pending entries).
	InFlight int64
	// Pending equals InFlight, under the name Redis gives it.
	Pending int64
	// Delayed is the number of messages waiting for their delay or their
	// retry backoff to pass.
	Delayed int64
	// Dead is the number of dead letters.
	Dead int64
	// OldestAge is the age of the oldest ready or in-flight message (zero
	// when there is none).
	OldestAge time.Duration
}

// Errors returned by the queue. Match them with errors.Is.
var (
	// ErrFull is returned by Publish when the queue holds MaxLen messages.
	ErrFull = errors.New("queue: full")
	// ErrDuplicate is returned by Publish when a message with the same
	// dedup key was published within the dedup window. The ID returned with
	// it is the first message's.
	ErrDuplicate = errors.New("queue: duplicate")
	// ErrNotFound is returned by Requeue for IDs that are not dead letters.
	ErrNotFound = errors.New("queue: not found")
	// ErrInvalidHandler is returned by Consume for a handler of another type.
	ErrInvalidHandler = errors.New("queue: invalid handler")
	// ErrNotReplicated is returned by Publish and PublishBatch of a queue
	// with [WaitReplicas] when fewer replicas than asked acknowledged the
	// message in time. The primary holds it: it is delivered unless a
	// failover loses it.
	ErrNotReplicated = errors.New("queue: publish not acknowledged by enough replicas")
	// ErrPermanent marks a handler error that must not be retried; see
	// [Permanent].
	ErrPermanent = errors.New("queue: permanent failure")
)

// Permanent wraps err so that the message is dead-lettered at once instead
// of retried. errors.Is(Permanent(err), err) and
// errors.Is(Permanent(err), ErrPermanent) both hold. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() []error {
	return []error{e.err, ErrPermanent}
}

// toHandlers turns Consume's handler argument into one of the two shapes.
func toHandlers(h any) (Handler, BatchHandler, error) {
	switch f := h.(type) {
	case Handler:
		if f != nil {
			return f, nil, nil
		}
	case func(context.Context, *Message) error:
		if f != nil {
			return f, nil, nil
		}
	case BatchHandler:
		if f != nil {
			return nil, f, nil
		}
	case func(context.Context, []*Message) []error:
		if f != nil {
			return nil, f, nil
		}
	case nil:
	default:
		return nil, nil, fmt.Errorf("%w: handler must be a queue.Handler or a queue.BatchHandler, got %T", ErrInvalidHandler, h)
	}
	return nil, nil, fmt.Errorf("%w: handler is nil", ErrInvalidHandler)
}
