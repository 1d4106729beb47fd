package queue

import (
	"context"
	"maps"
	"time"
)

// Hooks are optional callbacks for metrics and tracing, set with
// [WithHooks] on any backend (Redis, Memory, queue/rabbitmq, queue/kafka).
// Each is called synchronously, so it must be fast and must not block or
// panic; a nil field costs nothing (no allocation). The module
// github.com/outrigger-dev/outrigger/otel turns them into OpenTelemetry
// spans and metrics and carries W3C trace context in message headers.
type Hooks struct {
	// OnPublish is called before each message is published, with the
	// caller's ctx and the message's headers: a copy of those given with
	// WithHeaders, never nil, which it may add to (trace context). The
	// context it returns is the one OnPublished gets.
	OnPublish func(ctx context.Context, queue string, headers map[string]string) context.Context
	// OnPublished is called after each message was published (or not),
	// with its ID and the error.
	OnPublished func(ctx context.Context, queue, id string, err error)
	// OnProcess is called before the handler runs a delivered message; the
	// context it returns is the handler's (for a batch handler it is not
	// passed on). m.Headers hold what OnPublish added.
	OnProcess func(ctx context.Context, queue string, m *Message) context.Context
	// OnProcessed is called when a delivered message's outcome is decided:
	// with the context OnProcess returned, how long the handler ran, its
	// error and the outcome (acknowledged, retried, dead-lettered, or
	// released at shutdown without running). A message dead-lettered
	// because its consumers kept dying on it is reported with
	// OutcomeDeadLetter and no OnProcess.
	OnProcessed func(ctx context.Context, queue string, m *Message, d time.Duration, err error, outcome Outcome)
	// OnReclaim is called when a consumer takes over n messages of a
	// stalled or dead consumer.
	OnReclaim func(queue string, n int)
}

// WithHooks sets callbacks for metrics and tracing (see [Hooks]).
func WithHooks(h Hooks) Option { return func(c *queueConfig) { c.hooks = h } }

// BeforePublish runs OnPublish for one message whose resolved options are
// ps (ps.Headers is replaced by the hook's copy) and returns the context to
// give AfterPublish. Backends outside this package call it from Publish.
func (h *Hooks) BeforePublish(ctx context.Context, queue string, ps *PublishSettings) context.Context {
	if h == nil || h.OnPublish == nil {
		return ctx
	}
	ps.Headers = copyHeaders(ps.Headers)
	return h.OnPublish(ctx, queue, ps.Headers)
}

// AfterPublish runs OnPublished.
func (h *Hooks) AfterPublish(ctx context.Context, queue, id string, err error) {
	if h != nil && h.OnPublished != nil {
		h.OnPublished(ctx, queue, id, err)
	}
}

// Reclaimed runs OnReclaim (for n > 0).
func (h *Hooks) Reclaimed(queue string, n int) {
	if h != nil && h.OnReclaim != nil && n > 0 {
		h.OnReclaim(queue, n)
	}
}

// beforePublish is BeforePublish on this package's publishConfig.
func (h *Hooks) beforePublish(ctx context.Context, queue string, pc *publishConfig) context.Context {
	if h == nil || h.OnPublish == nil {
		return ctx
	}
	pc.headers = copyHeaders(pc.headers)
	return h.OnPublish(ctx, queue, pc.headers)
}

func copyHeaders(h map[string]string) map[string]string {
	out := make(map[string]string, len(h)+2)
	maps.Copy(out, h)
	return out
}

// process runs OnProcess for d, returning the handler's context.
func (e *engine) process(ctx context.Context, d *delivery) context.Context {
	if h := e.cc.hooks; h != nil && h.OnProcess != nil {
		return h.OnProcess(ctx, e.cc.queue, d.msg)
	}
	return ctx
}

// processed runs OnProcessed for s, whose handler ran since start.
func (e *engine) processed(ctx context.Context, s settlement, start time.Time, err error) {
	if h := e.cc.hooks; h != nil && h.OnProcessed != nil {
		var d time.Duration
		if !start.IsZero() {
			d = time.Since(start)
		}
		h.OnProcessed(ctx, e.cc.queue, s.d.msg, d, err, Outcome(s.kind))
	}
}

// settleUnrun settles a delivery whose handler did not run.
func (e *engine) settleUnrun(ctx context.Context, s settlement) {
	e.processed(ctx, s, time.Time{}, nil)
	e.push(s)
}
