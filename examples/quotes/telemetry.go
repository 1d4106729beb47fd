package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	outotel "github.com/outrigger-dev/outrigger/otel"
)

// tracerName is the instrumentation scope of the service's own spans (the
// feed callback, the database write).
const tracerName = "github.com/outrigger-dev/outrigger/examples/quotes"

// telemetry is the service's OpenTelemetry setup. Metrics are always on:
// the Outrigger packages' instruments (through the otel module) go to the
// Prometheus registry that /metrics serves, beside the service's own.
// Traces are on when -traces names an exporter: stdout (JSON lines on
// standard output) or otlp (OTLP over HTTP, configured by the standard
// OTEL_EXPORTER_OTLP_* variables, e.g. OTEL_EXPORTER_OTLP_ENDPOINT). Trace
// context crosses the queue and the live stream as W3C traceparent.
type telemetry struct {
	mp     *sdkmetric.MeterProvider
	tp     trace.TracerProvider     // a no-op one when tracing is off
	sdkTP  *sdktrace.TracerProvider // nil when tracing is off
	tracer trace.Tracer
	opts   []outotel.Option // for the otel.Instrument… functions
}

func newTelemetry(ctx context.Context, cfg config, reg *prometheus.Registry) (*telemetry, error) {
	res := resource.NewSchemaless(
		attribute.String("service.name", "quotes"),
		attribute.String("service.instance.id", cfg.replica),
	)
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("quotes: prometheus exporter: %w", err)
	}
	t := &telemetry{mp: sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp), sdkmetric.WithResource(res))}
	var spanOpt sdktrace.TracerProviderOption
	switch {
	case cfg.spanExporter != nil: // tests: spans are exported as they end
		spanOpt = sdktrace.WithSyncer(cfg.spanExporter)
	case cfg.traces == "stdout":
		se, err := stdouttrace.New(stdouttrace.WithWriter(os.Stdout))
		if err != nil {
			return nil, err
		}
		spanOpt = sdktrace.WithBatcher(se)
	case cfg.traces == "otlp":
		se, err := otlptracehttp.New(ctx) // OTEL_EXPORTER_OTLP_* from the environment
		if err != nil {
			return nil, fmt.Errorf("quotes: otlp exporter: %w", err)
		}
		spanOpt = sdktrace.WithBatcher(se)
	}
	if spanOpt != nil {
		t.sdkTP = sdktrace.NewTracerProvider(spanOpt, sdktrace.WithResource(res))
		t.tp = t.sdkTP
	} else {
		t.tp = noop.NewTracerProvider()
	}
	t.tracer = t.tp.Tracer(tracerName)
	t.opts = []outotel.Option{
		outotel.WithMeterProvider(t.mp),
		outotel.WithTracerProvider(t.tp),
		outotel.WithPropagator(propagation.TraceContext{}),
	}
	return t, nil
}

// close flushes and stops the exporters.
func (t *telemetry) close(ctx context.Context) error {
	var errs []error
	if t.sdkTP != nil {
		errs = append(errs, t.sdkTP.Shutdown(ctx))
	}
	errs = append(errs, t.mp.Shutdown(ctx))
	return errors.Join(errs...)
}

// startStore starts the span of a batch's database write, after the
// semantic conventions for databases: its parent is the consumer span of
// the batch's first quote, and it links to the consumer span of each quote
// (at most maxLinks), so that every quote's trace leads to the write that
// stored it.
func (t *telemetry) startStore(ctx context.Context, system string, batch []ingested) (context.Context, trace.Span) {
	const maxLinks = 128
	var links []trace.Link
	parent := ctx
	for _, it := range batch {
		if !it.span.IsValid() {
			continue
		}
		if len(links) == 0 {
			parent = trace.ContextWithSpanContext(ctx, it.span)
		}
		if len(links) < maxLinks {
			links = append(links, trace.Link{SpanContext: it.span})
		}
	}
	return t.tracer.Start(parent, "INSERT quotes",
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithLinks(links...),
		trace.WithAttributes(
			attribute.String("db.system.name", system),
			attribute.String("db.operation.name", "INSERT"),
			attribute.String("db.collection.name", "quotes"),
			attribute.Int("db.operation.batch.size", len(batch)),
		))
}

// dbSystem is the db.system.name of a dialect.
func dbSystem(dialect string) string {
	if dialect == "postgres" {
		return "postgresql"
	}
	return dialect
}

// endSpan records err (if any) on span and ends it.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
