package cache_test

import (
	"context"
	"testing"

	"github.com/outrigger-dev/outrigger/cache"
)

// BenchmarkHooks measures the hot path, a local-tier hit, with no hooks set
// (hooks=unset) and with every hook set to a no-op (hooks=noop): what the
// hooks cost when nobody listens, and when somebody does. Compare
// hooks=unset with the same benchmark at a commit before hooks existed
// (BENCHMARKS.md, "Hooks overhead").
func BenchmarkHooks(b *testing.B) {
	for _, hc := range hookCases() {
		b.Run("hooks="+hc.name, func(b *testing.B) {
			c, err := cache.New[string](hc.opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			ctx := context.Background()
			if err := c.Set(ctx, "k", "v"); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, ok, err := c.Get(ctx, "k"); !ok || err != nil {
					b.Fatalf("Get: %v %v", ok, err)
				}
			}
		})
	}
}
