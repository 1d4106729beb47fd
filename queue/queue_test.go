package queue_test

import (
	"context"
	"sync"
	"testing"
	"time"

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
		q, err := queue.NewRedis(db.Client, "q", append([]queue.Option{queue.WithPrefix(db.Prefix)}, opts...)...)
		require.NoError(t, err)
		t.Cleanup(func() { _ = q.Close() })
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

// consumer runs Consume in the background; stop cancels it and returns its
// error.
type consumer struct {
	cancel context.CancelFunc
	done   chan error
}

func startConsumer(t *testing.T, q queue.Queue, h any, opts ...queue.ConsumeOption) *consumer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &consumer{cancel: cancel, done: make(chan error, 1)}
	go func() { c.done <- q.Consume(ctx, h, opts...) }()
	t.Cleanup(func() { c.stop(t) })
	return c
}

func (c *consumer) stop(t *testing.T) error {
	t.Helper()
	c.cancel()
	select {
	case err, ok := <-c.done:
		if ok {
			close(c.done)
		}
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Consume did not return within 30s of its ctx being cancelled")
		return nil
	}
}

// recorder collects handled messages.
type recorder struct {
	mu   sync.Mutex
	seen map[string][]*queue.Message
}

func newRecorder() *recorder { return &recorder{seen: make(map[string][]*queue.Message)} }

func (r *recorder) add(m *queue.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen[m.ID] = append(r.seen[m.ID], m)
}

func (r *recorder) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

func (r *recorder) get(id string) []*queue.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*queue.Message(nil), r.seen[id]...)
}

func waitStats(t *testing.T, q queue.Queue, want func(queue.Stats) bool, msg string) queue.Stats {
	t.Helper()
	var st queue.Stats
	require.Eventually(t, func() bool {
		var err error
		st, err = q.Stats(context.Background())
		return err == nil && want(st)
	}, 20*time.Second, 10*time.Millisecond, "%s; last stats %+v", msg, st)
	return st
}

func empty(st queue.Stats) bool {
	return st.Ready == 0 && st.InFlight == 0 && st.Delayed == 0
}

//lint:ignore U1000 kept for the fault tests in this package
func fastRetry(int) time.Duration { return 10 * time.Millisecond }

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
