package otel

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of every meter and tracer this
// package makes.
const ScopeName = "github.com/outrigger-dev/outrigger/otel"

// Option configures an Instrument… function.
type Option func(*config)

type config struct {
	mp   metric.MeterProvider
	tp   trace.TracerProvider
	prop propagation.TextMapPropagator

	chanTemplate func(string) string // InstrumentBroadcast
}

func newConfig(opts []Option) config {
	c := config{mp: otel.GetMeterProvider(), tp: otel.GetTracerProvider(), prop: otel.GetTextMapPropagator(), chanTemplate: defaultChannelTemplate}
	for _, o := range opts {
		o(&c)
	}
	return c
}

func (c *config) meter() metric.Meter  { return c.mp.Meter(ScopeName) }
func (c *config) tracer() trace.Tracer { return c.tp.Tracer(ScopeName) }

// WithMeterProvider sets the meter provider (default: the global one).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) {
		if mp != nil {
			c.mp = mp
		}
	}
}

// WithTracerProvider sets the tracer provider (default: the global one).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) {
		if tp != nil {
			c.tp = tp
		}
	}
}

// WithPropagator sets the propagator that carries trace context in queue
// and broadcast messages (default: the global one; set it to
// propagation.TraceContext{} for W3C trace context).
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(c *config) {
		if p != nil {
			c.prop = p
		}
	}
}

// addOpts and recOpts wrap an attribute set in option slices built once, so
// that recording a measurement allocates nothing.
func addOpts(kv ...attribute.KeyValue) []metric.AddOption {
	return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(kv...))}
}

func recOpts(kv ...attribute.KeyValue) []metric.RecordOption {
	return []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(kv...))}
}
