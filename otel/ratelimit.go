package otel

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/outrigger-dev/outrigger/ratelimit"
)

// InstrumentRateLimit returns ratelimit.Hooks that record the decisions of
// the limiter called name (attribute outrigger.ratelimit.name):
//
//	outrigger.ratelimit.decisions          {decision} allowed, source (redis, local, deny-cache, fallback, batch), shadowed
//	outrigger.ratelimit.errors             {error}    Redis errors (the fallback answered, or the call failed)
//	outrigger.ratelimit.breaker.changes    {change}   state (the new one: closed, half-open, open)
func InstrumentRateLimit(name string, opts ...Option) (ratelimit.Hooks, error) {
	cfg := newConfig(opts)
	m := cfg.meter()
	dec, err1 := m.Int64Counter("outrigger.ratelimit.decisions", metric.WithUnit("{decision}"), metric.WithDescription("Rate-limit decisions."))
	errs, err2 := m.Int64Counter("outrigger.ratelimit.errors", metric.WithUnit("{error}"), metric.WithDescription("Redis errors of the limiter."))
	br, err3 := m.Int64Counter("outrigger.ratelimit.breaker.changes", metric.WithUnit("{change}"), metric.WithDescription("Circuit breaker state changes."))
	if err := errors.Join(err1, err2, err3); err != nil {
		return ratelimit.Hooks{}, err
	}
	base := attribute.String("outrigger.ratelimit.name", name)
	const sources = int(ratelimit.SourceBatch) + 1
	var sets [sources][2][2][]metric.AddOption // source, allowed, shadowed
	for s := range sources {
		for a := range 2 {
			for sh := range 2 {
				sets[s][a][sh] = addOpts(base, attribute.String("source", ratelimit.Source(s).String()),
					attribute.Bool("allowed", a == 1), attribute.Bool("shadowed", sh == 1))
			}
		}
	}
	only := addOpts(base)
	states := map[string][]metric.AddOption{}
	for _, st := range []string{"closed", "half-open", "open"} {
		states[st] = addOpts(base, attribute.String("state", st))
	}
	ctx := context.Background()
	return ratelimit.Hooks{
		OnDecision: func(_ string, r ratelimit.Result) {
			s := int(r.Source)
			if s < 0 || s >= sources {
				dec.Add(ctx, 1, metric.WithAttributes(base, attribute.String("source", r.Source.String()), attribute.Bool("allowed", r.Allowed)))
				return
			}
			dec.Add(ctx, 1, sets[s][b2i(r.Allowed)][b2i(r.Shadowed)]...)
		},
		OnError: func(string, error) { errs.Add(ctx, 1, only...) },
		OnBreakerChange: func(_, to string) {
			set, ok := states[to]
			if !ok {
				set = addOpts(base, attribute.String("state", to))
			}
			br.Add(ctx, 1, set...)
		},
	}, nil
}
