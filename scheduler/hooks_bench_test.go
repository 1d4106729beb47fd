package scheduler_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outrigger-dev/outrigger/scheduler"
)

// BenchmarkHooks measures the hot path of one run, a Trigger on the
// in-process scheduler (claim, run the job, record it), with no hooks set
// (hooks=unset) and with every hook a no-op (hooks=noop). The clock moves
// 2 s at each reading so that every Trigger is a new run, not one coalesced
// with the last. Compare hooks=unset with the same benchmark at a commit
// before hooks existed (BENCHMARKS.md, "Hooks overhead").
func BenchmarkHooks(b *testing.B) {
	for _, hc := range hookCases() {
		b.Run("hooks="+hc.name, func(b *testing.B) {
			var ticks atomic.Int64
			base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			clock := func() time.Time { return base.Add(time.Duration(ticks.Add(1)) * 2 * time.Second) }
			s, err := scheduler.NewLocal(append([]scheduler.Option{scheduler.WithClock(clock)}, hc.opts...)...)
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Every("job", time.Hour, func(context.Context, scheduler.Run) error { return nil }); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Trigger(ctx, "job"); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if err := s.Stop(ctx); err != nil {
				b.Fatal(err)
			}
		})
	}
}
