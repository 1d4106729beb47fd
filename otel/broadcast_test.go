package otel_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/outrigger-dev/outrigger/broadcast"
	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/otel"
)

// TestInstrumentBroadcast: one trace from the publisher's span through the
// producer span and the subscriber Hub's consumer span to a span the Go
// subscriber starts with BroadcastContext, on the local backend and across
// two Redis Hubs; the messaging attributes, the link, and the metrics.
func TestInstrumentBroadcast(t *testing.T) {
	for _, backend := range []string{"local", "redis"} {
		t.Run(backend, func(t *testing.T) {
			tp, exp := tracerProvider(t)
			mp, r := meterProvider(t)
			prop := otel.WithPropagator(propagation.TraceContext{})
			hooks, err := otel.InstrumentBroadcast(otel.WithTracerProvider(tp), otel.WithMeterProvider(mp), prop)
			require.NoError(t, err)
			var pubHub, subHub *broadcast.Hub
			if backend == "local" {
				pubHub, err = broadcast.NewLocal(broadcast.WithHooks(hooks))
				require.NoError(t, err)
				subHub = pubHub
			} else {
				db := redistest.New(t)
				pubHub, err = broadcast.New(db.Client, broadcast.WithPrefix(db.Prefix), broadcast.WithHooks(hooks))
				require.NoError(t, err)
				subHub, err = broadcast.New(db.NewClient(t), broadcast.WithPrefix(db.Prefix), broadcast.WithHooks(hooks))
				require.NoError(t, err)
				t.Cleanup(func() { _ = subHub.Close() })
			}
			t.Cleanup(func() { _ = pubHub.Close() })
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			sub, err := subHub.Subscribe(ctx, "quotes:ACME", broadcast.AsMember(broadcast.Member{ClientID: "c1"}))
			require.NoError(t, err)
			pctx, root := tp.Tracer("test").Start(ctx, "feed callback")
			pos, err := pubHub.Publish(pctx, "quotes:ACME", []byte(`{"bid":101.5}`))
			require.NoError(t, err)
			root.End()
			msg, err := sub.Next(ctx)
			require.NoError(t, err)
			_, render := tp.Tracer("test").Start(otel.BroadcastContext(ctx, msg, prop), "render")
			render.End()
			require.Eventually(t, func() bool { return spanByName(exp.GetSpans(), "process quotes") != nil }, 10*time.Second, 5*time.Millisecond)

			spans := exp.GetSpans()
			feed, send, proc, rend := spanByName(spans, "feed callback"), spanByName(spans, "send quotes"), spanByName(spans, "process quotes"), spanByName(spans, "render")
			require.NotNil(t, feed)
			require.NotNil(t, send)
			require.NotNil(t, proc)
			require.NotNil(t, rend)
			tid := feed.SpanContext.TraceID()
			for _, s := range []*tracetest.SpanStub{send, proc, rend} {
				assert.Equal(t, tid, s.SpanContext.TraceID(), "%s is in the publisher's trace", s.Name)
			}
			assert.Equal(t, feed.SpanContext.SpanID(), send.Parent.SpanID())
			assert.Equal(t, send.SpanContext.SpanID(), proc.Parent.SpanID(), "the process span's parent is the producer span")
			assert.Equal(t, send.SpanContext.SpanID(), rend.Parent.SpanID(), "the subscriber's span continues the producer span")
			assert.True(t, rend.Parent.IsRemote())
			assert.Equal(t, trace.SpanKindProducer, send.SpanKind)
			assert.Equal(t, trace.SpanKindConsumer, proc.SpanKind)
			require.Len(t, proc.Links, 1)
			assert.Equal(t, send.SpanContext.SpanID(), proc.Links[0].SpanContext.SpanID())
			assert.Equal(t, "outrigger", attr(send, "messaging.system").AsString())
			assert.Equal(t, "quotes:ACME", attr(send, "messaging.destination.name").AsString())
			assert.Equal(t, "quotes", attr(send, "messaging.destination.template").AsString())
			assert.Equal(t, "send", attr(send, "messaging.operation.type").AsString())
			assert.Equal(t, pos.String(), attr(send, "messaging.message.id").AsString())
			assert.Equal(t, int64(13), attr(send, "messaging.message.body.size").AsInt64())
			assert.Equal(t, "process", attr(proc, "messaging.operation.type").AsString())
			assert.Equal(t, "deliver", attr(proc, "messaging.operation.name").AsString())
			assert.Equal(t, pos.String(), attr(proc, "messaging.message.id").AsString())
			assert.Equal(t, int64(1), attr(proc, "outrigger.broadcast.subscribers").AsInt64())
			assert.False(t, proc.StartTime.After(proc.EndTime))

			// A resync and a recovery, for their metrics.
			stale, err := subHub.Subscribe(ctx, "quotes:ACME", broadcast.Since(broadcast.Position{Epoch: "stale", Offset: 1}))
			require.NoError(t, err)
			_, err = stale.Next(ctx)
			require.ErrorIs(t, err, broadcast.ErrResync)
			back, err := subHub.Subscribe(ctx, "quotes:ACME", broadcast.Since(broadcast.Position{Epoch: pos.Epoch, Offset: pos.Offset - 1}))
			require.NoError(t, err)
			require.True(t, back.Recovered())
			require.NoError(t, sub.Close())
			cctx, stop := context.WithCancel(ctx)
			stop()
			_, err = pubHub.Publish(cctx, "quotes:ACME", []byte(`1`))
			require.True(t, errors.Is(err, context.Canceled), "got %v, want context.Canceled", err)

			ms := collect(t, r)
			tmpl := attribute.String("messaging.destination.template", "quotes")
			assert.Equal(t, int64(2), sum(t, ms["messaging.client.sent.messages"], tmpl, attribute.String("messaging.operation.name", "publish")), "one sent, one failed")
			assert.Equal(t, int64(1), sum(t, ms["messaging.client.sent.messages"], tmpl, attribute.String("error.type", "canceled")))
			assert.Equal(t, int64(1), sum(t, ms["messaging.client.consumed.messages"], tmpl))
			assert.Equal(t, int64(2), sum(t, ms["outrigger.broadcast.deliveries"], tmpl, attribute.String("kind", "publication")), "live to sub, recovered to back")
			assert.Equal(t, int64(1), sum(t, ms["outrigger.broadcast.recoveries"], tmpl))
			assert.Equal(t, int64(1), sum(t, ms["outrigger.broadcast.recovered.messages"], tmpl))
			assert.Equal(t, int64(1), sum(t, ms["outrigger.broadcast.resyncs"], tmpl, attribute.String("reason", "since")))
			assert.Equal(t, int64(0), sum(t, ms["outrigger.broadcast.members"], tmpl), "joined and left")
			for name, unit := range map[string]string{"messaging.client.operation.duration": "s", "messaging.process.duration": "s", "outrigger.broadcast.members": "{member}"} {
				assert.Equal(t, unit, ms[name].Unit, name)
			}
			h, ok := ms["messaging.process.duration"].Data.(metricdata.Histogram[float64])
			require.True(t, ok)
			require.Len(t, h.DataPoints, 1)
			assert.Equal(t, uint64(1), h.DataPoints[0].Count)
		})
	}
}

// TestChannelTemplate: WithChannelTemplate names the span and the metrics'
// template.
func TestChannelTemplate(t *testing.T) {
	tp, exp := tracerProvider(t)
	hooks, err := otel.InstrumentBroadcast(otel.WithTracerProvider(tp), otel.WithChannelTemplate(func(string) string { return "all" }))
	require.NoError(t, err)
	h, err := broadcast.NewLocal(broadcast.WithHooks(hooks))
	require.NoError(t, err)
	t.Cleanup(func() { _ = h.Close() })
	_, err = h.Publish(context.Background(), "user:42", []byte(`1`))
	require.NoError(t, err)
	require.NotNil(t, spanByName(exp.GetSpans(), "send all"))
}
