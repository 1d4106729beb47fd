package scheduler

import (
	"fmt"

	"github.com/outrigger-dev/outrigger/internal/rediserr"
)

// invalidMsg is the log message of an invalid backend error.
const invalidMsg = "scheduler: redis refused the scheduler's script or data: a bug or bad data, not an outage (not retried)"

// isInvalid reports whether err, returned by the backend or the lease
// locker, means that a script, the keys' data or a reply is wrong, rather
// than Redis being unavailable (see rediserr). Such errors are never
// retried.
func isInvalid(err error) bool { return err != nil && rediserr.IsInvalid(err) }

// invalid counts err, an invalid error of op on job, and logs it once per
// op and kind at Error level.
func (s *Scheduler) invalid(op, job string, err error) {
	s.st.invalid.Add(1)
	s.faults.Report(s.cfg.logger, invalidMsg, op, err, "job", job)
}

// leaseLost is the cause of a run's context when its claim or lease is
// lost because of err (nil: lost for an ordinary reason, such as an expiry
// while Redis was unreachable).
func leaseLost(err error) error {
	if err == nil {
		return ErrLeaseLost
	}
	return fmt.Errorf("%w: %w", ErrLeaseLost, err)
}
