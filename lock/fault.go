package lock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/outrigger-dev/outrigger/internal/rediserr"
)

// faults classifies, counts and reports the Redis errors of one Locker
// (see rediserr): an error that means Redis is unavailable may be absorbed
// by a degrade path (a waiter polls, an auto-refresh retries, a Redlock
// majority answers without a node); an error that means the lock's script,
// the key's data or a reply is wrong never is. It is safe for concurrent
// use.
type faults struct {
	st     *stats
	logger *slog.Logger
	seen   rediserr.Reporter // logs each operation and kind of invalid error once
}

// invalidMsg is the log message of an invalid error.
const invalidMsg = "lock: redis refused the lock's script or data: a bug or bad data, not an outage (not retried)"

// fail returns the error of Redis call op on key for the caller, wrapped
// ("lock: acquire "k": …"). An invalid error is counted and reported once
// per op and kind.
func (f *faults) fail(ctx context.Context, op, key string, err error) error {
	if err == nil {
		return nil
	}
	if rediserr.ClassifyCtx(ctx, err) == rediserr.Invalid {
		f.invalid(op, key, err)
	}
	return fmt.Errorf("lock: %s %q: %w", op, key, err)
}

// invalid counts and reports an invalid error of op on key.
func (f *faults) invalid(op, key string, err error) {
	f.st.invalid.Add(1)
	f.seen.Report(f.logger, invalidMsg, op, err, "key", key)
}

// absorb handles the error of a Redis call nobody waits for (a clean-up) or
// that a degrade path takes over (a wake-up read): it reports whether err
// may be absorbed, counting it in Stats.Errors and logging msg at Warn level
// if so, or counting and reporting it as invalid (it must not be).
func (f *faults) absorb(ctx context.Context, op, key, msg string, err error) bool {
	switch rediserr.ClassifyCtx(ctx, err) {
	case rediserr.OK:
		return true
	case rediserr.Invalid:
		f.invalid(op, key, err)
		return false
	}
	f.st.errors.Add(1)
	if f.logger != nil {
		f.logger.Warn(msg, "key", key, "err", err)
	}
	return true
}

// lostTo is the cause of a lock lost because Redis refused its refresh with
// an invalid error (err, already wrapped by fail).
func lostTo(err error) error {
	return fmt.Errorf("%w: redis refused the refresh (not retried): %w", ErrLockLost, err)
}

// isInvalid reports whether err, returned by a Redis call, means a bug or
// bad data rather than an unavailable Redis. Our own sentinel errors are
// not Redis errors.
func isInvalid(err error) bool {
	return err != nil && !errors.Is(err, ErrLockLost) && !errors.Is(err, ErrNotAcquired) && rediserr.IsInvalid(err)
}
