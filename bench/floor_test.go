package bench

import (
	"context"
	"testing"

	"github.com/outrigger-dev/outrigger/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// BenchmarkRedisFloor measures a bare go-redis round trip on the benchmark's
// Redis: the floor under every Redis-backed operation measured here.
func BenchmarkRedisFloor(b *testing.B) {
	db := redistest.New(b)
	c := db.NewClient(b)
	cnt := redistest.NewCounter()
	c.AddHook(cnt)
	ctx := context.Background()
	key := db.Key("floor")
	for _, mode := range []string{"seq", "par"} {
		b.Run("op=get/mode="+mode, func(b *testing.B) {
			b.ReportAllocs()
			cnt.Reset()
			if mode == "seq" {
				for b.Loop() {
					_ = c.Get(ctx, key).Err()
				}
			} else {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						_ = c.Get(ctx, key).Err()
					}
				})
			}
			cnt.Report(b)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}
