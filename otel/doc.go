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
// an encoding, an outcome), never a key. Queues follow the OpenTelemetry
// semantic conventions for messaging.
package otel
