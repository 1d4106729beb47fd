package otel_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/otel"
	"github.com/outrigger-dev/outrigger/queue"
)

func tracerProvider(t *testing.T) (*sdktrace.TracerProvider, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, exp
}

func spanByName(spans tracetest.SpanStubs, name string) *tracetest.SpanStub {
	for i := range spans {
		if spans[i].Name == name {
			return &spans[i]
		}
	}
	return nil
}

func attr(s *tracetest.SpanStub, k string) attribute.Value {
	for _, kv := range s.Attributes {
		if string(kv.Key) == k {
			return kv.Value
		}
	}
	return attribute.Value{}
}

// TestInstrumentQueue: one trace from the publisher's span through the
// producer span and the consumer span to a span the handler starts, on the
// memory and Redis backends, with the messaging attributes and a link.
func TestInstrumentQueue(t *testing.T) {
	for _, backend := range []string{"memory", "redis"} {
		t.Run(backend, func(t *testing.T) {
			tp, exp := tracerProvider(t)
			mp, r := meterProvider(t)
			hooks, err := otel.InstrumentQueue(otel.WithTracerProvider(tp), otel.WithMeterProvider(mp), otel.WithPropagator(propagation.TraceContext{}))
			require.NoError(t, err)
			var q queue.Queue
			if backend == "memory" {
				q = queue.NewMemory("quotes", queue.WithHooks(hooks))
			} else {
				db := redistest.New(t)
				rq, err := queue.NewRedis(db.Client, "quotes", queue.WithPrefix(db.Prefix), queue.WithHooks(hooks))
				require.NoError(t, err)
				q = rq
			}
			t.Cleanup(func() { _ = q.Close() })
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			pctx, root := tp.Tracer("test").Start(ctx, "feed callback")
			id, err := q.Publish(pctx, []byte(`{"symbol":"ACME"}`))
			require.NoError(t, err)
			root.End()

			cctx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			handled := make(chan struct{})
			go func() {
				done <- q.Consume(cctx, func(ctx context.Context, m *queue.Message) error {
					_, s := tp.Tracer("test").Start(ctx, "db write")
					s.End()
					close(handled)
					return nil
				})
			}()
			select {
			case <-handled:
			case <-ctx.Done():
				t.Fatal("message not handled")
			}
			require.Eventually(t, func() bool { return spanByName(exp.GetSpans(), "process quotes") != nil }, 10*time.Second, 5*time.Millisecond)
			stop()
			require.NoError(t, <-done)

			spans := exp.GetSpans()
			feed, send, proc, db := spanByName(spans, "feed callback"), spanByName(spans, "send quotes"), spanByName(spans, "process quotes"), spanByName(spans, "db write")
			require.NotNil(t, feed)
			require.NotNil(t, send)
			require.NotNil(t, proc)
			require.NotNil(t, db)
			tid := feed.SpanContext.TraceID()
			for _, s := range []*tracetest.SpanStub{send, proc, db} {
				assert.Equal(t, tid, s.SpanContext.TraceID(), "%s is in the publisher's trace", s.Name)
			}
			assert.Equal(t, feed.SpanContext.SpanID(), send.Parent.SpanID())
			assert.Equal(t, send.SpanContext.SpanID(), proc.Parent.SpanID(), "process span's parent is the producer span")
			assert.Equal(t, proc.SpanContext.SpanID(), db.Parent.SpanID(), "the handler's span is a child of the process span")
			assert.Equal(t, trace.SpanKindProducer, send.SpanKind)
			assert.Equal(t, trace.SpanKindConsumer, proc.SpanKind)
			require.Len(t, proc.Links, 1)
			assert.Equal(t, send.SpanContext.SpanID(), proc.Links[0].SpanContext.SpanID())
			assert.Equal(t, "outrigger", attr(send, "messaging.system").AsString())
			assert.Equal(t, "quotes", attr(send, "messaging.destination.name").AsString())
			assert.Equal(t, "send", attr(send, "messaging.operation.type").AsString())
			assert.Equal(t, id, attr(send, "messaging.message.id").AsString())
			assert.Equal(t, "process", attr(proc, "messaging.operation.type").AsString())
			assert.Equal(t, id, attr(proc, "messaging.message.id").AsString())
			assert.Equal(t, "ack", attr(proc, "outrigger.queue.outcome").AsString())

			ms := collect(t, r)
			assert.Equal(t, int64(1), sum(t, ms["messaging.client.sent.messages"], attribute.String("messaging.destination.name", "quotes")))
			assert.Equal(t, int64(1), sum(t, ms["messaging.client.consumed.messages"]))
			assert.Equal(t, "s", ms["messaging.process.duration"].Unit)
		})
	}
}
