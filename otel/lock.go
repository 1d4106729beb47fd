package otel

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/outrigger-dev/outrigger/lock"
)

// InstrumentLock returns lock.Hooks that record the metrics of the Locker
// called name (attribute outrigger.lock.name):
//
//	outrigger.lock.acquire.duration s        outcome (acquired, not_acquired, canceled, error): the wait
//	outrigger.lock.hold.duration    s        how long released locks were held
//	outrigger.lock.lost             {lock}   locks lost before they were released
func InstrumentLock(name string, opts ...Option) (lock.Hooks, error) {
	cfg := newConfig(opts)
	m := cfg.meter()
	acq, err1 := m.Float64Histogram("outrigger.lock.acquire.duration", metric.WithUnit("s"), metric.WithDescription("Time Acquire and TryAcquire took."))
	hold, err2 := m.Float64Histogram("outrigger.lock.hold.duration", metric.WithUnit("s"), metric.WithDescription("Time released locks were held."))
	lost, err3 := m.Int64Counter("outrigger.lock.lost", metric.WithUnit("{lock}"), metric.WithDescription("Locks lost before they were released."))
	if err := errors.Join(err1, err2, err3); err != nil {
		return lock.Hooks{}, err
	}
	base := attribute.String("outrigger.lock.name", name)
	outcome := map[string][]metric.RecordOption{}
	for _, o := range []string{"acquired", "not_acquired", "canceled", "error"} {
		outcome[o] = recOpts(base, attribute.String("outcome", o))
	}
	only, onlyAdd := recOpts(base), addOpts(base)
	ctx := context.Background()
	return lock.Hooks{
		OnAcquire: func(_ string, wait time.Duration, _ uint64, err error) {
			o := "acquired"
			switch {
			case errors.Is(err, lock.ErrNotAcquired):
				o = "not_acquired"
			case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
				o = "canceled"
			case err != nil:
				o = "error"
			}
			acq.Record(ctx, wait.Seconds(), outcome[o]...)
		},
		OnRelease: func(_ string, held time.Duration) { hold.Record(ctx, held.Seconds(), only...) },
		OnLost:    func(string, error) { lost.Add(ctx, 1, onlyAdd...) },
	}, nil
}
