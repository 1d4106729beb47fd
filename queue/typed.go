package queue

import (
	"context"
	"encoding/json"
	"fmt"
)

// Codec turns values of T into message bodies and back.
type Codec[T any] interface {
	Encode(v T) ([]byte, error)
	Decode(b []byte) (T, error)
}

// JSONCodec is a [Codec] using encoding/json. Its zero value is ready to use.
type JSONCodec[T any] struct{}

// Encode returns the JSON encoding of v.
func (JSONCodec[T]) Encode(v T) ([]byte, error) { return json.Marshal(v) }

// Decode parses b as JSON into a T.
func (JSONCodec[T]) Decode(b []byte) (T, error) {
	var v T
	err := json.Unmarshal(b, &v)
	return v, err
}

// TypedQueue publishes and consumes values of T on a [Queue]. It is safe for
// concurrent use when the codec is.
type TypedQueue[T any] struct {
	q     Queue
	codec Codec[T]
}

// Typed wraps q so that it carries values of T encoded by codec (nil: JSON).
func Typed[T any](q Queue, codec Codec[T]) *TypedQueue[T] {
	if codec == nil {
		codec = JSONCodec[T]{}
	}
	return &TypedQueue[T]{q: q, codec: codec}
}

// Queue returns the underlying queue.
func (t *TypedQueue[T]) Queue() Queue { return t.q }

// Publish encodes v and publishes it.
func (t *TypedQueue[T]) Publish(ctx context.Context, v T, opts ...PublishOption) (string, error) {
	b, err := t.codec.Encode(v)
	if err != nil {
		return "", fmt.Errorf("queue: encode: %w", err)
	}
	return t.q.Publish(ctx, b, opts...)
}

// PublishBatch encodes vs and publishes them in one round trip.
func (t *TypedQueue[T]) PublishBatch(ctx context.Context, vs []T) ([]string, error) {
	bodies := make([][]byte, len(vs))
	for i, v := range vs {
		b, err := t.codec.Encode(v)
		if err != nil {
			return nil, fmt.Errorf("queue: encode value %d: %w", i, err)
		}
		bodies[i] = b
	}
	return t.q.PublishBatch(ctx, bodies)
}

// Consume decodes each message and runs handler on it, as [Queue.Consume]
// does. A message that does not decode is dead-lettered at once (the error
// is [Permanent]).
func (t *TypedQueue[T]) Consume(ctx context.Context, handler func(ctx context.Context, v T, m *Message) error, opts ...ConsumeOption) error {
	if handler == nil {
		return fmt.Errorf("%w: handler is nil", ErrInvalidHandler)
	}
	return t.q.Consume(ctx, Handler(func(ctx context.Context, m *Message) error {
		v, err := t.codec.Decode(m.Body)
		if err != nil {
			return Permanent(fmt.Errorf("queue: decode message %s: %w", m.ID, err))
		}
		return handler(ctx, v, m)
	}), opts...)
}

// ConsumeBatch decodes batches of messages and runs handler on them, as
// [Queue.ConsumeBatch] does. vs[i] is the value of ms[i]; messages that do
// not decode are dead-lettered at once and not passed to handler.
func (t *TypedQueue[T]) ConsumeBatch(ctx context.Context, handler func(ctx context.Context, vs []T, ms []*Message) []error, opts ...ConsumeOption) error {
	if handler == nil {
		return fmt.Errorf("%w: handler is nil", ErrInvalidHandler)
	}
	return t.q.ConsumeBatch(ctx, func(ctx context.Context, ms []*Message) []error {
		errs := make([]error, len(ms))
		vs := make([]T, 0, len(ms))
		ok := make([]*Message, 0, len(ms))
		idx := make([]int, 0, len(ms))
		for i, m := range ms {
			v, err := t.codec.Decode(m.Body)
			if err != nil {
				errs[i] = Permanent(fmt.Errorf("queue: decode message %s: %w", m.ID, err))
				continue
			}
			vs, ok, idx = append(vs, v), append(ok, m), append(idx, i)
		}
		if len(ok) > 0 {
			res := handler(ctx, vs, ok)
			if res != nil && len(res) != len(ok) {
				err := fmt.Errorf("queue: batch handler returned %d results for %d messages", len(res), len(ok))
				for _, i := range idx {
					errs[i] = err
				}
			} else if res != nil {
				for j, i := range idx {
					errs[i] = res[j]
				}
			}
		}
		return errs
	}, opts...)
}
