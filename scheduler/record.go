package scheduler

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
)

// Sentinel errors. Match them with errors.Is; returned errors wrap them with
// the job's name and detail.
var (
	// ErrInvalidJob is wrapped by Cron and Every errors for bad input: empty
	// or duplicate name, nil job, bad spec, interval <= 0, bad option.
	ErrInvalidJob = errors.New("scheduler: invalid job")
	// ErrUnknownJob is returned for a name no job was registered under.
	ErrUnknownJob = errors.New("scheduler: unknown job")
	// ErrStopped is returned by calls on a stopped scheduler.
	ErrStopped = errors.New("scheduler: stopped")
	// ErrAlreadyStarted is returned by a second Start.
	ErrAlreadyStarted = errors.New("scheduler: already started")
	// ErrNotStarted is returned by Stop before Start.
	ErrNotStarted = errors.New("scheduler: not started")
	// ErrNoNextTick is returned by NextAfter when a schedule has no tick
	// within the search horizon (nine years).
	ErrNoNextTick = errors.New("scheduler: no next tick")
	// ErrPanic is wrapped by the error of a run whose job panicked.
	ErrPanic = errors.New("scheduler: job panicked")
	// ErrOverlap is returned by Trigger when the job is still running and
	// its Overlap policy is Skip.
	ErrOverlap = errors.New("scheduler: previous run still running")
	// ErrLeaseLost is the cause of a run's context when its lease was lost
	// (e.g. Redis was unreachable for longer than the lease TTL), or when
	// Redis refused to refresh its claim or lease with an error that means a
	// bug or bad data (the cause then wraps that error too).
	ErrLeaseLost = errors.New("scheduler: lease lost")
)

// JobFunc is a job. ctx is cancelled when the run's Timeout passes, its
// lease is lost, or Stop gives up waiting. A returned error or a panic
// fails the run (and triggers Retry, if set).
type JobFunc func(ctx context.Context, run Run) error

// Kind says why a run happened.
type Kind string

// Kinds of runs.
const (
	KindTick    Kind = "tick"     // a scheduled tick
	KindCatchUp Kind = "catch-up" // a tick whose earlier run was abandoned, or missed
	KindTrigger Kind = "trigger"  // Trigger
	KindStart   Kind = "start"    // RunOnStart
)

// Run describes one run of a job, passed to the job.
type Run struct {
	// Job is the job's name.
	Job string
	// Tick is the scheduled instant this run is for (for a Trigger, the
	// instant Trigger was called, truncated to the second).
	Tick time.Time
	// Attempt counts attempts of this run from 1 (see Retry).
	Attempt int
	// Token is the fencing token of the run's lease: it increases with
	// every run of the job that takes the lease (Overlap Skip or Wait) or
	// with every run (Allow). Pass it to storage that rejects stale writers.
	Token uint64
	// Node is the replica running it (WithNodeID).
	Node string
	// Kind says why the run happened.
	Kind Kind
}

// RunRecord is a finished run, as returned by History.
type RunRecord struct {
	Job     string    `json:"job"`
	Tick    time.Time `json:"tick"`
	Node    string    `json:"node"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Error   string    `json:"error,omitempty"` // empty when the run succeeded
	Attempt int       `json:"attempt"`         // attempts made (0 when skipped)
	Token   uint64    `json:"token,omitempty"`
	Kind    Kind      `json:"kind"`
	// Skipped reports that the tick was claimed but not run because an
	// earlier run still held the job's lease (Overlap Skip, or Wait timed
	// out at the next tick).
	Skipped bool `json:"skipped,omitempty"`
}

// Stats are counters of this Scheduler (this replica) since New.
type Stats struct {
	Claimed   uint64 // ticks, triggers and catch-ups this replica claimed
	Lost      uint64 // claims another replica won
	Runs      uint64 // runs started (a run with retries counts once)
	Succeeded uint64
	Failed    uint64 // runs whose last attempt failed
	Panics    uint64 // attempts that panicked
	Retries   uint64
	Skipped   uint64 // claimed ticks skipped for overlap
	CatchUps  uint64 // catch-up runs started
	Missed    uint64 // ticks this replica saw go by without being able to claim them in time
	// Errors counts backend calls that failed because Redis was unavailable
	// (a network error or timeout, LOADING, READONLY after a failover, …)
	// after the retries of their path: a claim, a lease, recording a run,
	// a catch-up scan.
	Errors uint64
	// Invalid counts backend calls that Redis answered with an error that
	// means the scheduler's script, its keys' data or the reply is wrong (a
	// script error, WRONGTYPE, a reply of the wrong shape): a claim, a
	// lease, recording a run, refreshing a claim, a catch-up scan, History.
	// They are never retried; each is logged once per kind at Error level.
	// A non-zero count is a bug to look at.
	Invalid uint64
}

type stats struct {
	claimed, lost, runs, succeeded, failed, panics, retries, skipped, catchUps, missed, errors, invalid atomic.Uint64
}

func (s *stats) snapshot() Stats {
	return Stats{
		Claimed: s.claimed.Load(), Lost: s.lost.Load(), Runs: s.runs.Load(),
		Succeeded: s.succeeded.Load(), Failed: s.failed.Load(), Panics: s.panics.Load(),
		Retries: s.retries.Load(), Skipped: s.skipped.Load(), CatchUps: s.catchUps.Load(),
		Missed: s.missed.Load(), Errors: s.errors.Load(), Invalid: s.invalid.Load(),
	}
}
