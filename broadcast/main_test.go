package broadcast_test

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/outrigger-dev/outrigger/broadcast"
	"github.com/outrigger-dev/outrigger/internal/redistest"
)

func TestMain(m *testing.M) {
	if runChild() { // re-executed as a Hub in a child process
		return
	}
	redistest.Main(m)
}

// leakCheck fails the test if it leaves goroutines behind. Call it first:
// its clean-up runs last, after Hubs and clients are closed.
func leakCheck(t *testing.T) {
	t.Helper()
	opts := []goleak.Option{goleak.IgnoreCurrent(),
		// the harness's servers live until the binary exits
		goleak.IgnoreAnyFunction("github.com/outrigger-dev/outrigger/internal/redistest.(*Server).start.func1"),
		goleak.IgnoreTopFunction("github.com/redis/go-redis/v9/maintnotifications.(*CircuitBreakerManager).cleanupLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"), // idle keep-alive conns of http clients
	}
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}

// deployment makes Hubs that share one transport: Redis (single node or
// Cluster, each Hub with its own client, as replicas would have) or, for
// local, one Hub standing for every replica.
type deployment struct {
	name string
	// hubs returns n Hubs sharing a fresh prefix, closed when the test ends.
	hubs func(t *testing.T, n int, opts ...broadcast.Option) []*broadcast.Hub
}

func deployments(t *testing.T) []deployment {
	t.Helper()
	fromDB := func(db *redistest.DB) func(*testing.T, int, ...broadcast.Option) []*broadcast.Hub {
		return func(t *testing.T, n int, opts ...broadcast.Option) []*broadcast.Hub {
			prefix := db.Prefix + strings.ReplaceAll(t.Name(), "/", ".") + ":"
			var hubs []*broadcast.Hub
			for range n {
				c := db.NewClient(t)
				hopts, record := withRecorder(t, append([]broadcast.Option{broadcast.WithPrefix(prefix)}, opts...))
				h, err := broadcast.New(c, hopts...)
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				record(h)
				t.Cleanup(func() { _ = h.Close() })
				hubs = append(hubs, h)
			}
			return hubs
		}
	}
	single, cluster := redistest.New(t), redistest.NewCluster(t)
	return []deployment{
		{"local", func(t *testing.T, n int, opts ...broadcast.Option) []*broadcast.Hub {
			hopts, record := withRecorder(t, opts)
			h, err := broadcast.NewLocal(hopts...)
			if err != nil {
				t.Fatalf("NewLocal: %v", err)
			}
			record(h)
			t.Cleanup(func() { _ = h.Close() })
			hubs := make([]*broadcast.Hub, n)
			for i := range hubs {
				hubs[i] = h
			}
			return hubs
		}},
		{"redis", fromDB(single)},
		{"cluster", fromDB(cluster)},
	}
}

// hubOn returns a Hub on client with prefix, closed when the test ends.
func hubOn(t *testing.T, client redis.UniversalClient, prefix string, opts ...broadcast.Option) *broadcast.Hub {
	t.Helper()
	base := []broadcast.Option{broadcast.WithPrefix(prefix)}
	if os.Getenv("BROADCAST_TEST_LOG") != "" { // to debug a test: the Hubs' logs in its output
		base = append(base, broadcast.WithLogger(slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	}
	hopts, record := withRecorder(t, append(base, opts...))
	h, err := broadcast.New(client, hopts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	record(h)
	t.Cleanup(func() { _ = h.Close() })
	return h
}

type testLog struct{ t *testing.T }

func (w testLog) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// testCtx returns a context that ends with the test, bounded by d.
func testCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// subscribe subscribes or fails the test; the subscription is closed when
// the test ends.
func subscribe(t *testing.T, h *broadcast.Hub, ch string, opts ...broadcast.SubscribeOption) *broadcast.Subscription {
	t.Helper()
	s, err := h.Subscribe(testCtx(t, 30*time.Second), ch, opts...)
	if err != nil {
		t.Fatalf("Subscribe(%q): %v", ch, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// next returns the next message or fails the test after d.
func next(t *testing.T, s *broadcast.Subscription, d time.Duration) broadcast.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	m, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next on %q: %v", s.Channel(), err)
	}
	return m
}

// waitFor polls cond every 20ms until it is true or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
