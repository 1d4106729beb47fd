package ratelimit_test

import (
	"context"
	"testing"

	"github.com/outrigger-dev/outrigger/ratelimit"
)

// BenchmarkLocalAllow is the in-package version of the bench module's local
// benchmark, for profiling.
func BenchmarkLocalAllow(b *testing.B) {
	l, err := ratelimit.NewLocal(ratelimit.PerSecond(1_000_000_000))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	_, _ = l.Allow(ctx, "user:1")
	b.ReportAllocs()
	for b.Loop() {
		_, _ = l.Allow(ctx, "user:1")
	}
}
