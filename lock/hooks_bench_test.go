package lock_test

import (
	"context"
	"testing"
	"time"

	"github.com/outrigger-dev/outrigger/lock"
)

// BenchmarkHooks measures the hot path of the in-process Locker, Acquire
// and Release of a free lock, with no hooks set (hooks=unset) and with every
// hook a no-op (hooks=noop). The Redis Locker calls the same hooks around a
// round trip that costs a thousand times more. Compare hooks=unset with the
// same benchmark at a commit before hooks existed (BENCHMARKS.md, "Hooks
// overhead").
func BenchmarkHooks(b *testing.B) {
	for _, hc := range hookCases() {
		b.Run("hooks="+hc.name, func(b *testing.B) {
			l := lock.NewLocal(hc.opts...)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				lk, err := l.Acquire(ctx, "k", time.Minute)
				if err != nil {
					b.Fatal(err)
				}
				if err := lk.Release(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
