package kafka

import (
	"testing"

	"github.com/outrigger-dev/outrigger/queue"
	"github.com/outrigger-dev/outrigger/queue/queuetest"
)

// kafkaCaps is what Kafka gives of the contract: no deduplication and no
// bounded backlog (both return queue.ErrUnsupported).
var kafkaCaps = queuetest.Capabilities{Dedup: false, MaxLen: false}

func contractQueue(t *testing.T, name string, opts ...queue.Option) queue.Queue {
	return newTestQueue(t, testConfig(testBrokers(t)), name, opts...)
}

// TestContract runs the shared queue contract suite.
func TestContract(t *testing.T) {
	queuetest.Run(t, contractQueue, kafkaCaps)
}

// TestNoGoroutineLeaks runs part of the suite serially with a leak check.
func TestNoGoroutineLeaks(t *testing.T) {
	testBrokers(t) // start the shared cluster before the leak baseline
	queuetest.RunLeakCheck(t, contractQueue, kafkaCaps, leakOpts...)
}
