package ratelimit_test

import (
	"context"
	"testing"

	"github.com/outrigger-dev/outrigger/ratelimit"
)

// BenchmarkHooks measures the hot path of the local limiter, Allow on one
// key, with no hooks set (hooks=unset) and with every hook a no-op
// (hooks=noop). ratelimit had Hooks from its first commit, so there is no
// "before hooks" to compare with (BENCHMARKS.md, "Hooks overhead").
func BenchmarkHooks(b *testing.B) {
	noop := ratelimit.Hooks{
		OnDecision:      func(string, ratelimit.Result) {},
		OnError:         func(string, error) {},
		OnBreakerChange: func(string, string) {},
	}
	for _, hc := range []struct {
		name string
		opts []ratelimit.Option
	}{{name: "unset"}, {name: "noop", opts: []ratelimit.Option{ratelimit.WithHooks(noop)}}} {
		b.Run("hooks="+hc.name, func(b *testing.B) {
			l, err := ratelimit.NewLocal(ratelimit.PerSecond(1_000_000_000), hc.opts...)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			_, _ = l.Allow(ctx, "user:1")
			b.ReportAllocs()
			for b.Loop() {
				if _, err := l.Allow(ctx, "user:1"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
