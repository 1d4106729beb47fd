package queuetest

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/queue"
)

// LogRecord is one record a [LogRecorder] received.
type LogRecord struct {
	Level slog.Level
	// Text is the message followed by every attribute as key=value.
	Text string
}

// LogRecorder is a slog.Handler that keeps every record, for tests of what
// a queue logs and at which level. Use it with slog.New and
// queue.WithLogger. It is safe for concurrent use.
type LogRecorder struct {
	attrs []slog.Attr // from WithAttrs; prefixes are not kept for groups
	state *logState
}

type logState struct {
	mu   sync.Mutex
	recs []LogRecord // protected by mu
}

var _ slog.Handler = (*LogRecorder)(nil)

// NewLogRecorder returns an empty recorder.
func NewLogRecorder() *LogRecorder { return &LogRecorder{state: new(logState)} }

// Enabled implements slog.Handler: every level is recorded.
func (*LogRecorder) Enabled(context.Context, slog.Level) bool { return true }

// Handle implements slog.Handler.
func (r *LogRecorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Message)
	add := func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	}
	for _, a := range r.attrs {
		add(a)
	}
	rec.Attrs(add)
	r.state.mu.Lock()
	r.state.recs = append(r.state.recs, LogRecord{Level: rec.Level, Text: b.String()})
	r.state.mu.Unlock()
	return nil
}

// WithAttrs implements slog.Handler.
func (r *LogRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &LogRecorder{attrs: append(append([]slog.Attr{}, r.attrs...), as...), state: r.state}
}

// WithGroup implements slog.Handler (groups are flattened).
func (r *LogRecorder) WithGroup(string) slog.Handler { return r }

// Above returns the records above level, oldest first.
func (r *LogRecorder) Above(level slog.Level) []LogRecord {
	r.state.mu.Lock()
	defer r.state.mu.Unlock()
	var out []LogRecord
	for _, rec := range r.state.recs {
		if rec.Level > level {
			out = append(out, rec)
		}
	}
	return out
}

// MentionsCancel reports whether a record's text speaks of a cancelled or
// expired context: what a clean shutdown must not log above DEBUG.
func (rec LogRecord) MentionsCancel() bool {
	t := strings.ToLower(rec.Text)
	return strings.Contains(t, "context canceled") || strings.Contains(t, "context deadline exceeded") ||
		strings.Contains(t, "cancel")
}

// CheckQuiet fails t for every record above DEBUG: what a clean start and
// stop must not log, naming those that speak of a cancellation.
func (r *LogRecorder) CheckQuiet(t testing.TB) {
	t.Helper()
	for _, rec := range r.Above(slog.LevelDebug) {
		assert.False(t, rec.MentionsCancel(), "a cancellation logged at %v: %s", rec.Level, rec.Text)
		t.Errorf("a clean start and stop logged at %v: %s", rec.Level, rec.Text)
	}
}

// StartStop runs n Consume calls on q one after another, each cancelled
// right after it starts (every other one after a random pause of up to
// 20 ms, so that the cancel finds it opening, reading or moving delayed
// messages), and fails t if one returns an error or does not return within
// 30 s.
func StartStop(t testing.TB, q queue.Queue, n int) {
	t.Helper()
	for i := range n {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- q.Consume(ctx, func(context.Context, *queue.Message) error { return nil }) }()
		if i%2 == 1 {
			time.Sleep(rand.N(20 * time.Millisecond))
		}
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			require.FailNow(t, "Consume did not return within 30s of its ctx being cancelled")
		}
	}
}
