package scheduler

import (
	"context"
	"time"

	"github.com/outrigger-dev/outrigger/internal/lockadopt"
)

// backend stores claims, pending ticks and history. Implemented by
// redisBackend (New) and localBackend (NewLocal).
type backend interface {
	// claim takes the claim id of job for owner for ttl. When pending is
	// set the claim is recorded as pending (a scheduled tick, caught up if
	// its owner dies) and the pending ticks since oldest whose claims
	// expired are returned. fence asks for a fencing token from the job's
	// own counter; lease (Redis only) asks for the job's lease in the same
	// step. ok is false when another owner holds or completed the claim.
	claim(ctx context.Context, c claimArgs) (claimResult, error)
	// refresh extends owner's claim; false when it is no longer owner's.
	refresh(ctx context.Context, job, id, owner string, ttl time.Duration) (bool, error)
	// complete marks the claim done for doneTTL, drops it from pending and
	// appends rec (when non-nil) to the job's history, keeping keep records.
	// With lease (Redis only) it releases the run's lease in the same step
	// when it is still the run's and nobody waits for it, and reports
	// whether it did.
	complete(ctx context.Context, c completeArgs) (released bool, err error)
	// abandoned returns pending claims of job not older than oldest whose
	// claim has expired, oldest first, and prunes older ones.
	abandoned(ctx context.Context, job string, oldest time.Time, limit int) ([]pendingTick, error)
	// history returns up to n records, newest first.
	history(ctx context.Context, job string, n int) ([][]byte, error)
}

type claimArgs struct {
	job, id, owner string
	ttl            time.Duration
	pending        bool
	tick           time.Time
	pendingTTL     time.Duration
	oldest         time.Time // with pending: report abandoned ticks from here on
	fence          bool
	lease          *leaseAsk // nil: no lease with the claim
}

// leaseAsk asks claim to take the job's lease too, as a TryAcquire of the
// Scheduler's locker would (see internal/lockadopt).
type leaseAsk struct {
	owner      string // a lock owner value (lockadopt.Owner)
	key, fence string // the lease's Redis keys (lockadopt.Keys)
}

// leaseOutcome is what a claim with a leaseAsk did with the lease.
type leaseOutcome int

const (
	leaseNotAsked leaseOutcome = iota
	leaseTaken                 // claimResult.token is the lease's token
	leaseHeld                  // another run holds it
	leaseRefused               // Redis refused the lease's keys: take it on its own
)

type claimResult struct {
	ok        bool
	token     uint64 // the fencing token (claimArgs.fence) or the lease's
	lease     leaseOutcome
	sent      time.Time // when the call that succeeded was sent
	abandoned []pendingTick
}

type completeArgs struct {
	job, id, owner string
	doneTTL        time.Duration
	rec            []byte
	keep           int
	lease          *lockadopt.ReleaseKeys // nil: no lease to release
}

type pendingTick struct {
	id   string
	tick time.Time
}
