// Package logtest records slog output for tests that check what a package
// logs and at which level.
package logtest

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
)

// Recorder keeps every record logged through the loggers it made. It is safe
// for concurrent use.
type Recorder struct {
	mu   sync.Mutex // protects buf and recs
	buf  bytes.Buffer
	recs []Record
}

// Record is one logged line: its level, message and text rendering.
type Record struct {
	Level   slog.Level
	Message string
	Text    string
}

// New returns a logger that records every level, from Debug up, and its
// Recorder.
func New() (*slog.Logger, *Recorder) {
	r := &Recorder{}
	return slog.New(&handler{r: r}), r
}

// Records returns the records so far.
func (r *Recorder) Records() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Record(nil), r.recs...)
}

// Count returns how many records have at least level min.
func (r *Recorder) Count(min slog.Level) int {
	n := 0
	for _, rec := range r.Records() {
		if rec.Level >= min {
			n++
		}
	}
	return n
}

// String returns every record as text, one per line.
func (r *Recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

type handler struct {
	r     *Recorder
	attrs []slog.Attr
	group string
}

func (h *handler) Enabled(context.Context, slog.Level) bool { return true }

func (h *handler) Handle(_ context.Context, rec slog.Record) error {
	var line bytes.Buffer
	th := slog.Handler(slog.NewTextHandler(&line, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if len(h.attrs) > 0 {
		th = th.WithAttrs(h.attrs)
	}
	if h.group != "" {
		th = th.WithGroup(h.group)
	}
	if err := th.Handle(context.Background(), rec); err != nil {
		return err
	}
	h.r.mu.Lock()
	defer h.r.mu.Unlock()
	h.r.buf.Write(line.Bytes())
	h.r.recs = append(h.r.recs, Record{Level: rec.Level, Message: rec.Message, Text: line.String()})
	return nil
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &handler{r: h.r, attrs: append(append([]slog.Attr(nil), h.attrs...), as...), group: h.group}
}

func (h *handler) WithGroup(g string) slog.Handler {
	return &handler{r: h.r, attrs: h.attrs, group: g}
}
