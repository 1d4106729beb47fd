package rabbitmq

import (
	"testing"

	"github.com/outrigger-dev/outrigger/queue/queuetest"
)

// BenchmarkConsumeCancel is the backend=rabbitmq variant of
// queue.BenchmarkConsumeCancel: how long Consume takes to return after its
// ctx is cancelled, beyond the handlers running at that moment, idle and
// busy, on classic and quorum queues.
func BenchmarkConsumeCancel(b *testing.B) {
	for _, qt := range []QueueType{Classic, Quorum} {
		for _, sc := range queuetest.StopCases {
			b.Run("backend=rabbitmq/type="+string(qt)+"/state="+sc.Name, func(b *testing.B) {
				queuetest.BenchStop(b, newTestQueue(b, Config{QueueType: qt}, "cancel"), sc)
			})
		}
	}
}
