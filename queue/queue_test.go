package queue_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/queue"
	"github.com/outrigger-dev/outrigger/queue/queuetest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// noLeaks checks, when the test and all its cleanups are done, that no
// goroutine started during the test is left, if b asks for it. Call it first.
func noLeaks(t *testing.T, b backend) {
	t.Helper()
	if !b.leaks {
		return
	}
	opts := []goleak.Option{
		goleak.IgnoreCurrent(),
		// Servers the harness starts on first use live as long as the binary.
		goleak.IgnoreAnyFunction("github.com/outrigger-dev/outrigger/internal/redistest.(*Server).start.func1"),
	}
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}

// backend builds a fresh queue for a test.
type backend struct {
	name  string
	new   func(t *testing.T, opts ...queue.Option) queue.Queue
	leaks bool // check for goroutine leaks (the test must not run in parallel)
}

func redisBackend(mk func(testing.TB) *redistest.DB) func(t *testing.T, opts ...queue.Option) queue.Queue {
	return func(t *testing.T, opts ...queue.Option) queue.Queue {
		db := mk(t)
		c := db.NewClient(t)
		cnt := redistest.NewCounter()
		c.AddHook(cnt)
		q, err := queue.NewRedis(c, "q", append([]queue.Option{queue.WithPrefix(db.Prefix)}, opts...)...)
		require.NoError(t, err)
		t.Cleanup(func() { _ = q.Close() })
		t.Cleanup(func() {
			// Redis really carried the work: a backend that silently
			// stopped using it must fail its own contract suite
			st := q.Counters()
			assert.Zerof(t, st.Invalid, "invalid Redis answers: %+v", st)
			if st.Published > 0 {
				assert.Positive(t, cnt.Commands(), "messages published without a Redis command")
			}
		})
		return q
	}
}

func backends() []backend {
	return []backend{
		{"memory", func(t *testing.T, opts ...queue.Option) queue.Queue {
			q := queue.NewMemory("q", opts...)
			t.Cleanup(func() { _ = q.Close() })
			return q
		}, false},
		{"redis", redisBackend(redistest.New), false},
		{"cluster", redisBackend(redistest.NewCluster), false},
	}
}

// contractBackends adapts backends to the shared suite in queue/queuetest.
func contractQueue(b backend) queuetest.NewQueue {
	return func(t *testing.T, _ string, opts ...queue.Option) queue.Queue { return b.new(t, opts...) }
}

// TestContract runs the shared contract suite (queue/queuetest, also run by
// queue/rabbitmq) on every backend, the backends in parallel.
func TestContract(t *testing.T) {
	for _, b := range backends() {
		t.Run("backend="+b.name, func(t *testing.T) {
			t.Parallel()
			queuetest.Run(t, contractQueue(b), queuetest.Full)
		})
	}
}

// TestNoGoroutineLeaks runs part of the contract suite serially, checking
// that every goroutine the queue started has ended.
func TestNoGoroutineLeaks(t *testing.T) {
	for _, b := range backends() {
		t.Run("backend="+b.name, func(t *testing.T) {
			queuetest.RunLeakCheck(t, contractQueue(b), queuetest.Full,
				// Servers the harness starts on first use live as long as the binary.
				goleak.IgnoreAnyFunction("github.com/outrigger-dev/outrigger/internal/redistest.(*Server).start.func1"))
		})
	}
}

func TestNewRedisValidation(t *testing.T) {
	db := redistest.New(t)
	tests := []struct {
		name string
		c    func() (*queue.Redis, error)
		want string
	}{
		{"nil client", func() (*queue.Redis, error) { return queue.NewRedis(nil, "q") }, "client"},
		{"empty name", func() (*queue.Redis, error) { return queue.NewRedis(db.Client, "") }, "name"},
		{"hash tag in name", func() (*queue.Redis, error) { return queue.NewRedis(db.Client, "a{b}") }, "name"},
		{"max len", func() (*queue.Redis, error) { return queue.NewRedis(db.Client, "q", queue.MaxLen(-1)) }, "MaxLen"},
		{"retry window", func() (*queue.Redis, error) {
			return queue.NewRedis(db.Client, "q", queue.PublishRetryWindow(0))
		}, "PublishRetryWindow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := tt.c()
			require.Error(t, err)
			assert.Nil(t, q)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	m := queue.NewMemory("")
	_, err := m.Publish(context.Background(), []byte("x"))
	require.ErrorContains(t, err, "name")
	_, err = queue.NewMemoryChecked("q", queue.MaxLen(-2))
	require.ErrorContains(t, err, "MaxLen")
}
