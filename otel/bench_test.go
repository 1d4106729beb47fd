package otel_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/outrigger-dev/outrigger/broadcast"
	"github.com/outrigger-dev/outrigger/otel"
)

// BenchmarkBroadcastPublish: what InstrumentBroadcast costs per message on
// an in-process Hub with one subscriber: no hooks, metrics only (tracing
// off: the API's no-op tracer), and metrics with every span recorded by the
// SDK (a producer span, trace context in the headers, a consumer span).
func BenchmarkBroadcastPublish(b *testing.B) {
	data := []byte(`{"symbol":"ACME","bid":101.5,"ask":101.6}`)
	for _, mode := range []string{"none", "metrics", "traces"} {
		b.Run("hooks="+mode, func(b *testing.B) {
			var opts []broadcast.Option
			if mode != "none" {
				mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
				defer mp.Shutdown(context.Background())
				oo := []otel.Option{otel.WithMeterProvider(mp), otel.WithPropagator(propagation.TraceContext{})}
				if mode == "traces" {
					tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sdktrace.NewSimpleSpanProcessor(tracetest.NewNoopExporter())))
					defer tp.Shutdown(context.Background())
					oo = append(oo, otel.WithTracerProvider(tp))
				}
				hooks, err := otel.InstrumentBroadcast(oo...)
				if err != nil {
					b.Fatal(err)
				}
				opts = append(opts, broadcast.WithHooks(hooks))
			}
			h, err := broadcast.NewLocal(append(opts, broadcast.WithClientBuffer(1<<20, 1<<30))...)
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close()
			ctx := context.Background()
			sub, err := h.Subscribe(ctx, "quotes:ACME")
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					if _, err := sub.Next(ctx); err != nil {
						return
					}
				}
			}()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := h.Publish(ctx, "quotes:ACME", data); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			_ = sub.Close()
			<-done
		})
	}
}
