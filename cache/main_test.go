package cache_test

import (
	"log/slog"
	"testing"

	"go.uber.org/goleak"

	"github.com/outrigger-dev/outrigger/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// leakCheck fails t if goroutines started during the test outlive it. Call
// it first, so that its check runs after every other cleanup.
func leakCheck(t *testing.T) {
	t.Helper()
	opts := []goleak.Option{
		goleak.IgnoreCurrent(),
		// Servers the harness starts on first use and keeps for the binary.
		goleak.IgnoreAnyFunction("github.com/outrigger-dev/outrigger/internal/redistest.(*Server).start.func1"),
	}
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}

// testLogger logs through t.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }
