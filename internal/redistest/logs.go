package redistest

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
)

// Logs keeps what a *slog.Logger logged, for tests that check how a package
// reports Redis errors (an invalid reply logged once at Error level, an
// outage at Warn). It is safe for concurrent use.
type Logs struct {
	mu   sync.Mutex // protects recs
	recs []LogRecord
}

// LogRecord is one kept record: its level, message and attributes (values
// formatted with %v; groups are ignored).
type LogRecord struct {
	Level slog.Level
	Msg   string
	Attrs map[string]string
}

// NewLogs returns a logger that logs at every level into the returned Logs.
func NewLogs() (*slog.Logger, *Logs) {
	l := &Logs{}
	return slog.New(&logsHandler{l: l}), l
}

// Records returns the records at level or above, oldest first.
func (l *Logs) Records(level slog.Level) []LogRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []LogRecord
	for _, r := range l.recs {
		if r.Level >= level {
			out = append(out, r)
		}
	}
	return out
}

// With returns the records at level or above whose attribute key has
// value (e.g. the Error records of one operation: With(slog.LevelError,
// "op", "acquire")).
func (l *Logs) With(level slog.Level, key, value string) []LogRecord {
	var out []LogRecord
	for _, r := range l.Records(level) {
		if r.Attrs[key] == value {
			out = append(out, r)
		}
	}
	return out
}

// Count returns how many records are at level or above.
func (l *Logs) Count(level slog.Level) int { return len(l.Records(level)) }

// String returns every record, one a line, for failure messages.
func (l *Logs) String() string {
	var b strings.Builder
	for _, r := range l.Records(slog.LevelDebug - 4) {
		fmt.Fprintf(&b, "%s %q %v\n", r.Level, r.Msg, r.Attrs)
	}
	return b.String()
}

type logsHandler struct {
	l     *Logs
	attrs []slog.Attr
}

func (h *logsHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *logsHandler) Handle(_ context.Context, r slog.Record) error {
	rec := LogRecord{Level: r.Level, Msg: r.Message, Attrs: make(map[string]string, len(h.attrs)+r.NumAttrs())}
	add := func(a slog.Attr) bool {
		rec.Attrs[a.Key] = fmt.Sprint(a.Value.Resolve().Any())
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	h.l.mu.Lock()
	h.l.recs = append(h.l.recs, rec)
	h.l.mu.Unlock()
	return nil
}

func (h *logsHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &logsHandler{l: h.l, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *logsHandler) WithGroup(string) slog.Handler { return h }
