package queue_test

import (
	"testing"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/queue"
	"github.com/outrigger-dev/outrigger/queue/queuetest"
)

// BenchmarkConsumeCancel measures how long Consume takes to return after
// its ctx is cancelled, beyond the handlers running at that moment
// (ns/op and stop-ms/op: the mean; p50-ms, p99-ms, max-ms), for an idle
// consumer (cancelled at a random moment of its read cycle) and a busy one
// (two 20 ms handlers running, more messages prefetched). The backend=rabbitmq
// variant is in queue/rabbitmq.
func BenchmarkConsumeCancel(b *testing.B) {
	backends := []struct {
		name string
		new  func(b *testing.B) queue.Queue
	}{
		{"memory", func(b *testing.B) queue.Queue {
			q := queue.NewMemory("cancel")
			b.Cleanup(func() { _ = q.Close() })
			return q
		}},
		{"redis", func(b *testing.B) queue.Queue {
			// A server of its own: on the shared one, other tests' commands
			// make the tail (the stop waits for two round trips).
			s := redistest.StartServer(b)
			q, err := queue.NewRedis(s.Client(b), "cancel")
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = q.Close() })
			return q
		}},
	}
	for _, be := range backends {
		for _, sc := range queuetest.StopCases {
			b.Run("backend="+be.name+"/state="+sc.Name, func(b *testing.B) {
				queuetest.BenchStop(b, be.new(b), sc)
			})
		}
	}
}
