package otel

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/outrigger-dev/outrigger/cache"
)

// InstrumentCache returns cache.Hooks that record the metrics of the cache
// called name (attribute outrigger.cache.name):
//
//	outrigger.cache.hits          {hit}   tier (local, redis), stale
//	outrigger.cache.misses        {miss}
//	outrigger.cache.load.duration s       outcome (ok, not_found, error), a histogram of loader calls
//	outrigger.cache.refreshes     {refresh} early
//	outrigger.cache.errors        {error} operation, error.type (unavailable, invalid)
//	outrigger.cache.invalidations {message}
func InstrumentCache(name string, opts ...Option) (cache.Hooks, error) {
	cfg := newConfig(opts)
	m := cfg.meter()
	hits, err1 := m.Int64Counter("outrigger.cache.hits", metric.WithUnit("{hit}"), metric.WithDescription("Lookups a tier answered."))
	misses, err2 := m.Int64Counter("outrigger.cache.misses", metric.WithUnit("{miss}"), metric.WithDescription("Keys no tier could answer."))
	loads, err3 := m.Float64Histogram("outrigger.cache.load.duration", metric.WithUnit("s"), metric.WithDescription("Duration of loader calls."))
	refreshes, err4 := m.Int64Counter("outrigger.cache.refreshes", metric.WithUnit("{refresh}"), metric.WithDescription("Background refreshes started."))
	errs, err5 := m.Int64Counter("outrigger.cache.errors", metric.WithUnit("{error}"), metric.WithDescription("Failed Redis calls and undecodable values."))
	inval, err6 := m.Int64Counter("outrigger.cache.invalidations", metric.WithUnit("{message}"), metric.WithDescription("Invalidation messages from other replicas."))
	if err := errors.Join(err1, err2, err3, err4, err5, err6); err != nil {
		return cache.Hooks{}, err
	}
	base := attribute.String("outrigger.cache.name", name)
	var hitSets [2][2][]metric.AddOption // tier, stale
	for t, tier := range []cache.Tier{cache.TierLocal, cache.TierRedis} {
		for s, stale := range []bool{false, true} {
			hitSets[t][s] = addOpts(base, attribute.String("tier", tier.String()), attribute.Bool("stale", stale))
		}
	}
	only := addOpts(base)
	outcome := map[string][]metric.RecordOption{}
	for _, o := range []string{"ok", "not_found", "error"} {
		outcome[o] = recOpts(base, attribute.String("outcome", o))
	}
	early := [2][]metric.AddOption{addOpts(base, attribute.Bool("early", false)), addOpts(base, attribute.Bool("early", true))}
	errSets := map[[2]string][]metric.AddOption{}
	var errMu sync.Mutex
	ctx := context.Background()
	return cache.Hooks{
		OnHit: func(_ string, tier cache.Tier, stale bool) {
			hits.Add(ctx, 1, hitSets[min(int(tier), 1)][b2i(stale)]...)
		},
		OnMiss: func(string) { misses.Add(ctx, 1, only...) },
		OnLoad: func(_ int, d time.Duration, err error) {
			o := "ok"
			switch {
			case errors.Is(err, cache.ErrNotFound):
				o = "not_found"
			case err != nil:
				o = "error"
			}
			loads.Record(ctx, d.Seconds(), outcome[o]...)
		},
		OnRefresh: func(_ string, e bool) { refreshes.Add(ctx, 1, early[b2i(e)]...) },
		OnError: func(op string, _ error, invalid bool) {
			kind := "unavailable"
			if invalid {
				kind = "invalid"
			}
			k := [2]string{op, kind}
			errMu.Lock()
			set, ok := errSets[k]
			if !ok {
				set = addOpts(base, attribute.String("operation", op), attribute.String("error.type", kind))
				errSets[k] = set
			}
			errMu.Unlock()
			errs.Add(ctx, 1, set...)
		},
		OnInvalidation: func(string) { inval.Add(ctx, 1, only...) },
	}, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
