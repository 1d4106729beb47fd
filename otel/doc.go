// Package otel turns the Hooks of Outrigger's packages into OpenTelemetry
// metrics and spans, through the OpenTelemetry API only: the application
// brings the SDK and its exporters (OTLP, Prometheus, stdout) and sets the
// global providers, or passes its own with [WithMeterProvider] and
// [WithTracerProvider].
//
// It is its own module, so that importing an Outrigger package never pulls
// in OpenTelemetry:
//
//	hooks, err := otel.InstrumentCache("users")
//	c, err := cache.New[User](cache.WithRedis(rdb), cache.WithHooks(hooks))
//
// Each Instrument… function returns the package's Hooks. Metric names start
// with "outrigger."; their attributes are low-cardinality (a name, a tier,
// an encoding, an outcome), never a key. Queues and broadcast follow the
// OpenTelemetry semantic conventions for messaging.
//
// # Traces across processes
//
// InstrumentQueue and InstrumentBroadcast carry the trace context of the
// publisher in the message (queue headers; broadcast's headers, which go
// through Redis to every Hub but never to browsers), with the propagator
// set by WithPropagator or the global one (propagation.TraceContext{} for
// W3C traceparent). A message published inside a span is one trace with
// what consumes it:
//
//	feed callback (your span)
//	├── send quotes            PRODUCER  queue.Publish
//	│   └── process quotes     CONSUMER  the queue handler (its ctx)
//	│       ├── db write       (your span, from the handler's ctx)
//	│       └── send quotes    PRODUCER  broadcast Hub.Publish
//	│           └── process quotes CONSUMER on every Hub with subscribers
//
// Consumer spans are children of the producer span and also link to it. A
// Go subscriber of a broadcast channel continues the trace with
// BroadcastContext(ctx, msg).
package otel
