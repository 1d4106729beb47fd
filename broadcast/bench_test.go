package broadcast_test

import (
	"context"
	"testing"

	"github.com/outrigger-dev/outrigger/broadcast"
	"github.com/outrigger-dev/outrigger/internal/redistest"
)

// BenchmarkPublish: Publish with one subscriber draining the channel, the
// hot path the Hooks sit on (no hooks set), in process and on Redis.
func BenchmarkPublish(b *testing.B) {
	data := []byte(`{"symbol":"ACME","bid":101.5,"ask":101.6}`)
	for _, impl := range []string{"local", "redis"} {
		b.Run("impl="+impl, func(b *testing.B) {
			var h *broadcast.Hub
			var err error
			if impl == "local" {
				h, err = broadcast.NewLocal(broadcast.WithClientBuffer(1<<20, 1<<30))
			} else {
				db := redistest.New(b)
				h, err = broadcast.New(db.Client, broadcast.WithPrefix(db.Prefix), broadcast.WithClientBuffer(1<<20, 1<<30))
			}
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close()
			ctx := context.Background()
			sub, err := h.Subscribe(ctx, "bench")
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					if _, err := sub.Next(ctx); err != nil {
						return
					}
				}
			}()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := h.Publish(ctx, "bench", data); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			_ = sub.Close()
			<-done
		})
	}
}
