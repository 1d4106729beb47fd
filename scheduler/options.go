package scheduler

import (
	"fmt"
	"log/slog"
	"time"
)

// Option configures a Scheduler in New or NewLocal.
type Option func(*config) error

type config struct {
	namespace string
	loc       *time.Location
	logger    *slog.Logger
	nodeID    string
	now       func() time.Time
	leaseTTL  time.Duration
	history   int
	dst       DSTPolicy
	maxTimer  time.Duration
	ownClock  bool // WithClock was given: poll it
	hooks     Hooks
}

func defaultConfig() config {
	return config{
		namespace: "outrigger:scheduler:",
		loc:       time.Local,
		logger:    slog.New(slog.DiscardHandler),
		now:       time.Now,
		leaseTTL:  10 * time.Second,
		history:   100,
		maxTimer:  time.Minute,
	}
}

// WithNamespace sets the prefix of every Redis key the scheduler writes
// (default "outrigger:scheduler:"). Replicas that must share jobs use the same
// namespace.
func WithNamespace(ns string) Option {
	return func(c *config) error {
		if ns == "" {
			return fmt.Errorf("scheduler: WithNamespace: namespace must not be empty")
		}
		c.namespace = ns
		return nil
	}
}

// WithLocation sets the time zone cron specs are evaluated in (default
// time.Local). A spec's own "TZ=" or "CRON_TZ=" prefix overrides it.
func WithLocation(loc *time.Location) Option {
	return func(c *config) error {
		if loc == nil {
			return fmt.Errorf("scheduler: WithLocation: location must not be nil")
		}
		c.loc = loc
		return nil
	}
}

// WithLogger sets the logger (default: silent).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("scheduler: WithLogger: logger must not be nil")
		}
		c.logger = l
		return nil
	}
}

// WithNodeID names this replica in run records (default host:pid:random).
func WithNodeID(id string) Option {
	return func(c *config) error {
		if id == "" {
			return fmt.Errorf("scheduler: WithNodeID: node id must not be empty")
		}
		c.nodeID = id
		return nil
	}
}

// WithClock replaces time.Now as the scheduler's clock: ticks, lateness,
// run records and the in-process backend's expiries follow it (tests use it
// to simulate skewed replicas, clock jumps and DST days). Timers sleep in
// real time for the difference between now() and the next due tick, and the
// dispatcher also re-reads the clock every 10ms, so a test may move it by
// hand. Leases (the lock package) keep using real time.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return fmt.Errorf("scheduler: WithClock: clock must not be nil")
		}
		c.now = now
		c.ownClock = true
		return nil
	}
}

// WithLeaseTTL sets the time-to-live of a run's claim and lease (default
// 10s); both are refreshed every ttl/3 while the job runs. When a replica
// dies, its run is considered abandoned after at most ttl: with Overlap
// Skip, ticks are skipped until then, and with CatchUp the run is caught up
// soon after (by the job's next claim, or by a scan every ttl/2). A replica
// cut off from Redis for longer than ttl has its runs' contexts cancelled.
func WithLeaseTTL(d time.Duration) Option {
	return func(c *config) error {
		if d < 10*time.Millisecond {
			return fmt.Errorf("scheduler: WithLeaseTTL: ttl must be >= 10ms, got %v", d)
		}
		c.leaseTTL = d
		return nil
	}
}

// WithHistory sets how many run records are kept per job (default 100; 0
// keeps none). A job's history expires a week after its last record (or
// after its completed-claim retention, if longer).
func WithHistory(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return fmt.Errorf("scheduler: WithHistory: n must be >= 0, got %d", n)
		}
		c.history = n
		return nil
	}
}

// WithDST sets the default DST policy of cron jobs (default DSTVixie); the
// DST job option overrides it per job.
func WithDST(p DSTPolicy) Option {
	return func(c *config) error {
		if !p.valid() {
			return fmt.Errorf("scheduler: WithDST: unknown policy %d", int(p))
		}
		c.dst = p
		return nil
	}
}

// OverlapPolicy says what happens when a tick is due while an earlier run of
// the same job is still running, on any replica.
type OverlapPolicy int

const (
	// Skip skips the tick (recorded as skipped in History). The default.
	// This includes late ticks that become due together (e.g. after a Redis
	// outage): one runs, the others are skipped. Catch-ups of abandoned
	// runs are the exception: they wait for the lease, within the CatchUp
	// window.
	Skip OverlapPolicy = iota
	// Wait waits for the running run to finish, then runs the tick.
	Wait
	// Allow runs the tick concurrently with the earlier run.
	Allow
)

// Aliases with an Overlap prefix, for readability at call sites.
const (
	OverlapSkip  = Skip
	OverlapWait  = Wait
	OverlapAllow = Allow
)

// String returns the policy's name.
func (p OverlapPolicy) String() string {
	switch p {
	case Skip:
		return "skip"
	case Wait:
		return "wait"
	case Allow:
		return "allow"
	}
	return fmt.Sprintf("OverlapPolicy(%d)", int(p))
}

// JobOption configures one job in Cron or Every.
type JobOption func(*jobConfig) error

type jobConfig struct {
	timeout    time.Duration
	jitter     time.Duration
	overlap    OverlapPolicy
	catchUp    time.Duration
	retries    int
	backoff    time.Duration
	runOnStart bool
	offset     time.Duration
	dst        DSTPolicy
	dstSet     bool
}

// Timeout cancels a run's context after d (default: no timeout).
func Timeout(d time.Duration) JobOption {
	return func(c *jobConfig) error {
		if d <= 0 {
			return fmt.Errorf("Timeout must be > 0, got %v", d)
		}
		c.timeout = d
		return nil
	}
}

// Jitter delays each run by up to d. The delay is derived from a hash of
// the job's name and tick, so every replica computes the same one and the
// ticks of many jobs spread out.
func Jitter(d time.Duration) JobOption {
	return func(c *jobConfig) error {
		if d < 0 {
			return fmt.Errorf("Jitter must be >= 0, got %v", d)
		}
		c.jitter = d
		return nil
	}
}

// Overlap sets the overlap policy (default Skip).
func Overlap(p OverlapPolicy) JobOption {
	return func(c *jobConfig) error {
		if p < Skip || p > Allow {
			return fmt.Errorf("unknown Overlap policy %d", int(p))
		}
		c.overlap = p
		return nil
	}
}

// CatchUp runs missed ticks that are at most window old: a tick whose
// replica died mid-run (once its lease expired) and, on start-up, the most
// recent tick that no replica ran because all were down. Each is run once
// across all replicas. Without CatchUp a missed tick is not run.
func CatchUp(window time.Duration) JobOption {
	return func(c *jobConfig) error {
		if window <= 0 {
			return fmt.Errorf("CatchUp window must be > 0, got %v", window)
		}
		c.catchUp = window
		return nil
	}
}

// Retry re-runs a failed run (error or panic) up to n more times, waiting
// backoff, then twice as long each time (capped at one minute), before
// each retry. Run.Attempt counts from 1.
func Retry(n int, backoff time.Duration) JobOption {
	return func(c *jobConfig) error {
		if n < 0 {
			return fmt.Errorf("Retry count must be >= 0, got %d", n)
		}
		if backoff < 0 {
			return fmt.Errorf("Retry backoff must be >= 0, got %v", backoff)
		}
		c.retries, c.backoff = n, backoff
		return nil
	}
}

// RunOnStart runs the job once when the scheduler starts (or when the job
// is added to a started scheduler), in addition to its ticks, with
// Run.Kind == KindStart. Replicas that start between the same two ticks of
// the job run it once between them: the run is claimed like a tick, keyed by
// the job's next tick.
func RunOnStart() JobOption {
	return func(c *jobConfig) error {
		c.runOnStart = true
		return nil
	}
}

// Offset shifts an Every job's ticks: they fall on multiples of the
// interval since the Unix epoch plus d (e.g. Every(time.Hour) with
// Offset(15*time.Minute) runs at :15). Cron jobs reject it.
func Offset(d time.Duration) JobOption {
	return func(c *jobConfig) error {
		c.offset = d
		return nil
	}
}

// DST sets this cron job's daylight-saving policy (default: the
// scheduler's, see WithDST).
func DST(p DSTPolicy) JobOption {
	return func(c *jobConfig) error {
		if !p.valid() {
			return fmt.Errorf("unknown DST policy %d", int(p))
		}
		c.dst, c.dstSet = p, true
		return nil
	}
}
