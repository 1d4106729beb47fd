package kafka

import (
	"testing"

	"github.com/outrigger-dev/outrigger/queue"
	"github.com/outrigger-dev/outrigger/queue/queuetest"
)

// kafkaCaps is what Kafka gives of the contract: no deduplication and no
// bounded backlog (both return queue.ErrUnsupported).
var kafkaCaps = queuetest.Capabilities{Dedup: false, MaxLen: false}

// contractQueue makes a queue for the suite, with a ghost reaper on its
// group (see ghostReaper): the suite stops consumers at every moment of
// their life, also in the middle of a rebalance's join, where kfake keeps
// the member forever and its partitions unread.
func contractQueue(t *testing.T, name string, opts ...queue.Option) queue.Queue {
	q := newTestQueue(t, testConfig(testBrokers(t)), name, opts...)
	reapGhosts(t, q)
	return q
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
