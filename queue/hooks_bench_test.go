package queue_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outrigger-dev/outrigger/queue"
)

// BenchmarkHooks measures the hot path of the in-memory queue, Publish and
// the processing of the message by a running consumer (no-op handler), with
// no hooks set (hooks=unset) and with every hook a no-op (hooks=noop). One
// op is one message published and processed. Compare hooks=unset with the
// same benchmark at a commit before hooks existed (BENCHMARKS.md, "Hooks
// overhead").
func BenchmarkHooks(b *testing.B) {
	for _, hc := range hookCases() {
		b.Run("hooks="+hc.name, func(b *testing.B) {
			q := queue.NewMemory("bench", hc.opts...)
			defer q.Close()
			ctx, cancel := context.WithCancel(context.Background())
			var done atomic.Int64
			stopped := make(chan struct{})
			go func() {
				defer close(stopped)
				_ = q.Consume(ctx, func(context.Context, *queue.Message) error {
					done.Add(1)
					return nil
				})
			}()
			body := []byte(`{"symbol":"ACME","bid":101.25}`)
			b.ReportAllocs()
			n := int64(0)
			for b.Loop() {
				if _, err := q.Publish(ctx, body); err != nil {
					b.Fatal(err)
				}
				n++
			}
			deadline := time.Now().Add(time.Minute)
			for done.Load() < n {
				if time.Now().After(deadline) {
					b.Fatalf("processed %d of %d", done.Load(), n)
				}
				time.Sleep(50 * time.Microsecond)
			}
			b.StopTimer()
			cancel()
			<-stopped
		})
	}
}
