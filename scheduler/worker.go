package scheduler

import "time"

// Runs go to workers: goroutines that wait a little for another run once
// theirs is over, so that a busy scheduler reuses goroutines whose stacks
// have already grown to what a run needs (a new goroutine's stack is
// copied several times on its way through go-redis).

// workerIdle is how long a worker waits for another run before it exits.
const workerIdle = 2 * time.Second

// spawn runs fn in a worker: one waiting for work, else a new one.
func (s *Scheduler) spawn(fn func()) {
	select {
	case s.idle <- fn:
	default:
		s.workers.Add(1)
		go s.worker(fn)
	}
}

// worker runs fn, then the runs spawn hands it, until it has waited
// workerIdle for one or the Scheduler stopped (s.quit).
func (s *Scheduler) worker(fn func()) {
	defer s.workers.Done()
	var t *time.Timer
	for {
		fn()
		fn = nil // let it be collected while we wait
		if t == nil {
			t = time.NewTimer(workerIdle)
		} else {
			t.Reset(workerIdle)
		}
		select {
		case fn = <-s.idle:
		case <-t.C:
			return
		case <-s.quit:
			t.Stop()
			return
		}
	}
}
