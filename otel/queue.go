package otel

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/outrigger-dev/outrigger/queue"
)

// Messaging attributes of the OpenTelemetry semantic conventions.
const (
	attrSystem    = attribute.Key("messaging.system")
	attrDest      = attribute.Key("messaging.destination.name")
	attrOpType    = attribute.Key("messaging.operation.type")
	attrOpName    = attribute.Key("messaging.operation.name")
	attrMessageID = attribute.Key("messaging.message.id")
	attrBodySize  = attribute.Key("messaging.message.body.size")
	attrErrorType = attribute.Key("error.type")
	attrOutcome   = attribute.Key("outrigger.queue.outcome")
	attrAttempt   = attribute.Key("outrigger.queue.attempt")
)

// System is the messaging.system attribute of queue spans and metrics.
const System = "outrigger"

// InstrumentQueue returns queue.Hooks that trace every message across
// processes and record the semantic conventions' messaging metrics, for
// any backend:
//
//   - Publish: a PRODUCER span "send <queue>" (child of the caller's
//     span), whose trace context the propagator (WithPropagator; default the
//     global one, e.g. propagation.TraceContext{} for W3C traceparent) writes
//     into the message's headers.
//   - Processing: a CONSUMER span "process <queue>" per delivered message,
//     child of the publisher's span (so one trace goes from the code that
//     published to the handler and what it does with the handler's ctx) and
//     linked to it, with the outcome (ack, retry, dead, release).
//   - Metrics: messaging.client.sent.messages, messaging.client.consumed.messages,
//     messaging.process.duration (s), and outrigger.queue.reclaimed.
func InstrumentQueue(opts ...Option) (queue.Hooks, error) {
	cfg := newConfig(opts)
	m := cfg.meter()
	tr := cfg.tracer()
	prop := cfg.prop
	sent, err1 := m.Int64Counter("messaging.client.sent.messages", metric.WithUnit("{message}"), metric.WithDescription("Messages published."))
	consumed, err2 := m.Int64Counter("messaging.client.consumed.messages", metric.WithUnit("{message}"), metric.WithDescription("Messages delivered to handlers."))
	procDur, err3 := m.Float64Histogram("messaging.process.duration", metric.WithUnit("s"), metric.WithDescription("Duration of handler runs."))
	reclaimed, err4 := m.Int64Counter("outrigger.queue.reclaimed", metric.WithUnit("{message}"), metric.WithDescription("Messages taken over from stalled consumers."))
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return queue.Hooks{}, err
	}
	sys := attrSystem.String(System)
	return queue.Hooks{
		OnPublish: func(ctx context.Context, q string, headers map[string]string) context.Context {
			ctx, _ = tr.Start(ctx, "send "+q, trace.WithSpanKind(trace.SpanKindProducer),
				trace.WithAttributes(sys, attrDest.String(q), attrOpType.String("send"), attrOpName.String("publish")))
			prop.Inject(ctx, propagation.MapCarrier(headers))
			return ctx
		},
		OnPublished: func(ctx context.Context, q, id string, err error) {
			span := trace.SpanFromContext(ctx)
			attrs := []attribute.KeyValue{sys, attrDest.String(q), attrOpName.String("publish")}
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
				attrs = append(attrs, attrErrorType.String(errorType(err, queueErrs)))
			} else {
				span.SetAttributes(attrMessageID.String(id))
			}
			span.End()
			sent.Add(context.Background(), 1, metric.WithAttributes(attrs...))
		},
		OnProcess: func(ctx context.Context, q string, msg *queue.Message) context.Context {
			pctx := prop.Extract(context.Background(), propagation.MapCarrier(msg.Headers))
			start := []trace.SpanStartOption{
				trace.WithSpanKind(trace.SpanKindConsumer),
				trace.WithAttributes(sys, attrDest.String(q), attrOpType.String("process"), attrOpName.String("process"),
					attrMessageID.String(msg.ID), attrBodySize.Int(len(msg.Body)), attrAttempt.Int(msg.Attempt)),
			}
			if sc := trace.SpanContextFromContext(pctx); sc.IsValid() {
				start = append(start, trace.WithLinks(trace.Link{SpanContext: sc}))
				// the publisher's span is the parent: one trace end to end
				ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
			}
			ctx, _ = tr.Start(ctx, "process "+q, start...)
			consumed.Add(context.Background(), 1, metric.WithAttributes(sys, attrDest.String(q)))
			return ctx
		},
		OnProcessed: func(ctx context.Context, q string, msg *queue.Message, d time.Duration, err error, o queue.Outcome) {
			span := trace.SpanFromContext(ctx)
			attrs := []attribute.KeyValue{sys, attrDest.String(q), attrOpName.String("process"), attrOutcome.String(outcomeName(o))}
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
				attrs = append(attrs, attrErrorType.String(errorType(err, queueErrs)))
			}
			span.SetAttributes(attrOutcome.String(outcomeName(o)))
			span.End()
			if o != queue.OutcomeRelease || d > 0 {
				procDur.Record(context.Background(), d.Seconds(), metric.WithAttributes(attrs...))
			}
		},
		OnReclaim: func(q string, n int) {
			reclaimed.Add(context.Background(), int64(n), metric.WithAttributes(sys, attrDest.String(q)))
		},
	}, nil
}

func outcomeName(o queue.Outcome) string {
	switch o {
	case queue.OutcomeAck:
		return "ack"
	case queue.OutcomeRetry:
		return "retry"
	case queue.OutcomeDeadLetter:
		return "dead"
	case queue.OutcomeRelease:
		return "release"
	}
	return "unknown"
}

// namedErr is a sentinel error and its error.type name.
type namedErr struct {
	err  error
	name string
}

// queueErrs are the queue's sentinel errors named in error.type.
var queueErrs = []namedErr{{queue.ErrFull, "full"}, {queue.ErrDuplicate, "duplicate"}}

// errorType is a low-cardinality name for err (error.type): "canceled",
// "timeout", the name of the first of known that err matches, or "_OTHER".
func errorType(err error, known []namedErr) string {
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	for _, k := range known {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return "_OTHER"
}
