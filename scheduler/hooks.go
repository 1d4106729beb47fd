package scheduler

import "time"

// Hooks are optional callbacks for metrics and tracing, set with
// [WithHooks]. Each is called synchronously with plain values, so it must
// be fast and must not block or panic; a nil field costs nothing (no
// allocation). The module github.com/outrigger-dev/outrigger/otel turns
// them into OpenTelemetry metrics.
type Hooks struct {
	// OnClaim is called for each tick, trigger or catch-up this replica
	// tried to claim: won reports that it claimed it, else another replica
	// did (an error is reported as a miss, see OnMissed).
	OnClaim func(job string, tick time.Time, kind Kind, won bool)
	// OnRunStart is called when a claimed run starts, after its lease, with
	// the delay from the tick's time to the start.
	OnRunStart func(job string, tick time.Time, kind Kind, delay time.Duration)
	// OnRunEnd is called when a run ends, with its duration, the attempts it
	// made and its last error (nil when it succeeded).
	OnRunEnd func(job string, tick time.Time, kind Kind, d time.Duration, attempts int, err error)
	// OnSkip is called for a claimed tick that did not run because an
	// earlier run still held the job's lease (Overlap Skip, or Wait timed
	// out).
	OnSkip func(job string, tick time.Time)
	// OnMissed is called for ticks this replica saw go by without being
	// able to claim them in time (tick is the first of them).
	OnMissed func(job string, tick time.Time)
}

// WithHooks sets callbacks for metrics and tracing (see [Hooks]).
func WithHooks(h Hooks) Option {
	return func(c *config) error {
		c.hooks = h
		return nil
	}
}

// missed counts a missed tick of job.
func (s *Scheduler) missed(job string, tick time.Time) {
	s.st.missed.Add(1)
	if h := s.cfg.hooks.OnMissed; h != nil {
		h(job, tick)
	}
}
