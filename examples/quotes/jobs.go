package main

import (
	"context"
	"time"

	"github.com/outrigger-dev/outrigger/scheduler"
)

// registerJobs sets up the singleton jobs: each runs once per tick on
// whichever replica claims the tick.
func (s *service) registerJobs() error {
	rollup := func(ctx context.Context, run scheduler.Run) error {
		// Recompute the bars of the last two minutes: idempotent, so a
		// caught-up or retried run does no harm, and late quotes land.
		end := run.Tick.Truncate(time.Minute).Add(time.Minute)
		n, err := s.db.rollup(ctx, end.Add(-2*time.Minute), end)
		s.jobDone("rollup", err)
		if err == nil {
			s.metrics.rollupRuns.Inc()
			s.log.Debug("rollup", "tick", run.Tick, "bars", n, "token", run.Token)
		}
		return err
	}
	var err error
	if s.cfg.rollupInterval > 0 {
		err = s.sched.Every("rollup", s.cfg.rollupInterval, rollup, scheduler.Timeout(30*time.Second))
	} else {
		err = s.sched.Cron("rollup", "0 * * * * *", rollup, scheduler.Timeout(30*time.Second), scheduler.CatchUp(5*time.Minute))
	}
	if err != nil {
		return err
	}
	return s.sched.Cron("purge", "0 30 3 * * *", func(ctx context.Context, run scheduler.Run) error {
		n, err := s.db.purge(ctx, run.Tick.Add(-s.cfg.retention))
		s.jobDone("purge", err)
		if err == nil {
			s.log.Info("purged old quotes", "rows", n)
		}
		return err
	}, scheduler.Timeout(10*time.Minute), scheduler.CatchUp(6*time.Hour))
}

func (s *service) jobDone(job string, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
		s.log.Error("job failed", "job", job, "err", err)
	}
	s.metrics.jobRuns.WithLabelValues(job, outcome).Inc()
}
