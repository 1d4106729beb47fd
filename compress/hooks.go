package compress

// Hooks are optional callbacks for metrics, set with [WithHooks]. Each is
// called synchronously on the request's goroutine with plain values, so it
// must be fast and must not block or panic; a nil field costs nothing (no
// allocation). The module github.com/outrigger-dev/outrigger/otel turns
// them into OpenTelemetry metrics.
type Hooks struct {
	// OnResponse is called when a response ends (not for hijacked
	// connections) with the encoding it was sent with (Identity when it was
	// not compressed), the body bytes the handler wrote and the bytes sent
	// (padding included; the same as in when not compressed): out/in is the
	// compression ratio.
	OnResponse func(enc Encoding, in, out int64)
}

// WithHooks sets callbacks for metrics (see [Hooks]).
func WithHooks(h Hooks) Option {
	return func(c *config) error {
		c.hooks = h
		return nil
	}
}

// counting reports whether the middleware counts bytes (for Stats or Hooks).
func (c *config) counting() bool { return c.stats != nil || c.hooks.OnResponse != nil }
