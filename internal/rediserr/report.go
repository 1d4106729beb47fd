package rediserr

import (
	"context"
	"log/slog"
	"sync"
)

// maxKinds bounds the kinds a Reporter remembers; past it every error is
// logged again (better noisy than silent).
const maxKinds = 256

// Reporter logs an [Invalid] error once per operation and kind, at Error
// level, so a bug is loud in the log without flooding it at the request
// rate. The zero value is ready to use; it is safe for concurrent use.
type Reporter struct {
	mu   sync.Mutex // protects seen
	seen map[string]struct{}
}

// Report logs err (with op, the operation, and attrs) on logger the first
// time this op and [Kind] of error are seen, and reports whether it logged.
// A nil logger logs nothing (but the kind is still remembered).
func (r *Reporter) Report(logger *slog.Logger, msg, op string, err error, attrs ...any) bool {
	k := op + "\x00" + Kind(err)
	r.mu.Lock()
	if r.seen == nil {
		r.seen = make(map[string]struct{})
	}
	_, dup := r.seen[k]
	if !dup && len(r.seen) < maxKinds {
		r.seen[k] = struct{}{}
	}
	r.mu.Unlock()
	if dup {
		return false
	}
	if logger != nil {
		args := append([]any{"op", op, "kind", Kind(err), "err", err}, attrs...)
		logger.Log(context.Background(), slog.LevelError, msg, args...)
	}
	return true
}
