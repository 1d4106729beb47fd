// Package queuetest is the contract suite every [queue.Queue] backend
// passes: the Redis and memory backends in package queue, and
// queue/rabbitmq. A backend that cannot give a feature declares it in
// [Capabilities]; the suite then checks that the feature fails with
// [queue.ErrUnsupported] instead of testing it.
//
//	func TestContract(t *testing.T) {
//		queuetest.Run(t, func(t *testing.T, name string, opts ...queue.Option) queue.Queue {
//			q, err := mybackend.New(..., name, opts...)
//			require.NoError(t, err)
//			t.Cleanup(func() { _ = q.Close() })
//			return q
//		}, queuetest.Capabilities{Dedup: true, MaxLen: true})
//	}
package queuetest

import (
	"fmt"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/outrigger-dev/outrigger/queue"
)

// NewQueue builds a fresh, empty queue for one test. It must isolate the
// queue from every other test (a unique prefix or name) and close it and
// delete its data at t's cleanup. name is distinct among the queues of one
// test.
type NewQueue func(t *testing.T, name string, opts ...queue.Option) queue.Queue

// Capabilities lists the optional features of a backend.
type Capabilities struct {
	// Dedup: WithDedupKey drops duplicates within the window and WithID
	// drops a second publish of the same ID. Without it both must fail with
	// queue.ErrUnsupported.
	Dedup bool
	// MaxLen: MaxLen bounds ready + in-flight + delayed messages exactly,
	// with ErrFull and BlockWhenFull. Without it the MaxLen test is skipped
	// (the backend documents what MaxLen does, or fails with
	// queue.ErrUnsupported).
	MaxLen bool
}

// Full is the capability set of the Redis and memory backends.
var Full = Capabilities{Dedup: true, MaxLen: true}

// suite is one backend under test.
type suite struct {
	newQ  NewQueue
	caps  Capabilities
	leaks []goleak.Option // non-nil: check for goroutine leaks (serial tests only)
	n     atomic.Int64
}

func (s *suite) newQueue(t *testing.T, opts ...queue.Option) queue.Queue {
	t.Helper()
	return s.newQ(t, fmt.Sprintf("q%d", s.n.Add(1)), opts...)
}

// Test is one contract test.
type Test struct {
	Name string
	fn   func(*testing.T, *suite)
}

// Tests are the contract tests, in the order Run runs them.
var Tests = []Test{
	{"PublishConsume", testPublishConsume},
	{"PublishBatch", testPublishBatch},
	{"RetryBackoff", testRetry},
	{"DeadLetterRequeue", testDeadLetter},
	{"PermanentAndPanic", testPermanentAndPanic},
	{"Delay", testDelay},
	{"Dedup", testDedup},
	{"MaxLen", testMaxLen},
	{"GracefulDrain", testDrain},
	{"ShutdownTimeout", testShutdownTimeout},
	{"BatchHandler", testBatch},
	{"Typed", testTyped},
	{"Close", testClose},
	{"Validation", testValidation},
	{"ManyConsumers", testManyConsumers},
	{"CancelLatency", testCancelLatency},
	{"Hooks", testHooks},
	{"HooksConcurrentContexts", testHooksConcurrentContexts},
}

// Run runs every contract test as a subtest of t.
func Run(t *testing.T, newQueue NewQueue, caps Capabilities) {
	s := &suite{newQ: newQueue, caps: caps}
	for _, tc := range Tests {
		t.Run(tc.Name, func(t *testing.T) { tc.fn(t, s) })
	}
}

// LeakChecked are the tests RunLeakCheck runs.
var LeakChecked = []string{"PublishConsume", "DeadLetterRequeue", "ShutdownTimeout", "Close"}

// RunLeakCheck runs the LeakChecked tests, checking after each (and its
// cleanups) that every goroutine started during it has ended. The tests
// must not run in parallel with others; ignore lists goroutines that may
// legitimately outlive a test (shared test servers).
func RunLeakCheck(t *testing.T, newQueue NewQueue, caps Capabilities, ignore ...goleak.Option) {
	s := &suite{newQ: newQueue, caps: caps, leaks: append([]goleak.Option{}, ignore...)}
	for _, tc := range Tests {
		for _, name := range LeakChecked {
			if tc.Name == name {
				t.Run(tc.Name, func(t *testing.T) { tc.fn(t, s) })
			}
		}
	}
}

// noLeaks checks, when the test and all its cleanups are done, that no
// goroutine started during the test is left, if the suite asks for it.
// Call it first.
func noLeaks(t *testing.T, b *suite) {
	t.Helper()
	if b.leaks == nil {
		return
	}
	opts := append([]goleak.Option{goleak.IgnoreCurrent()}, b.leaks...)
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}
