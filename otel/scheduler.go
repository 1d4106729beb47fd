package otel

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/outrigger-dev/outrigger/scheduler"
)

// InstrumentScheduler returns scheduler.Hooks that record, per job
// (attribute outrigger.job.name; jobs are few and named by the program):
//
//	outrigger.scheduler.claims       {claim} won (true: this replica runs it)
//	outrigger.scheduler.run.delay    s       from the tick's time to the run's start
//	outrigger.scheduler.run.duration s       outcome (ok, error), kind (tick, catch-up, trigger, start)
//	outrigger.scheduler.skips        {tick}  ticks skipped because a run still held the lease
//	outrigger.scheduler.missed       {tick}  ticks that went by unclaimed
func InstrumentScheduler(opts ...Option) (scheduler.Hooks, error) {
	cfg := newConfig(opts)
	m := cfg.meter()
	claims, err1 := m.Int64Counter("outrigger.scheduler.claims", metric.WithUnit("{claim}"), metric.WithDescription("Claims of ticks, triggers and catch-ups."))
	delay, err2 := m.Float64Histogram("outrigger.scheduler.run.delay", metric.WithUnit("s"), metric.WithDescription("Delay from a tick to its run's start."))
	dur, err3 := m.Float64Histogram("outrigger.scheduler.run.duration", metric.WithUnit("s"), metric.WithDescription("Duration of runs."))
	skips, err4 := m.Int64Counter("outrigger.scheduler.skips", metric.WithUnit("{tick}"), metric.WithDescription("Ticks skipped for overlap."))
	missed, err5 := m.Int64Counter("outrigger.scheduler.missed", metric.WithUnit("{tick}"), metric.WithDescription("Ticks that went by unclaimed."))
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		return scheduler.Hooks{}, err
	}
	ctx := context.Background()
	job := func(name string) attribute.KeyValue { return attribute.String("outrigger.job.name", name) }
	kind := func(k scheduler.Kind) attribute.KeyValue { return attribute.String("kind", string(k)) }
	return scheduler.Hooks{
		OnClaim: func(name string, _ time.Time, k scheduler.Kind, won bool) {
			claims.Add(ctx, 1, metric.WithAttributes(job(name), kind(k), attribute.Bool("won", won)))
		},
		OnRunStart: func(name string, _ time.Time, k scheduler.Kind, d time.Duration) {
			delay.Record(ctx, d.Seconds(), metric.WithAttributes(job(name), kind(k)))
		},
		OnRunEnd: func(name string, _ time.Time, k scheduler.Kind, d time.Duration, _ int, err error) {
			o := "ok"
			if err != nil {
				o = "error"
			}
			dur.Record(ctx, d.Seconds(), metric.WithAttributes(job(name), kind(k), attribute.String("outcome", o)))
		},
		OnSkip:   func(name string, _ time.Time) { skips.Add(ctx, 1, metric.WithAttributes(job(name))) },
		OnMissed: func(name string, _ time.Time) { missed.Add(ctx, 1, metric.WithAttributes(job(name))) },
	}, nil
}
