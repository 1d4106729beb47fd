package scheduler

import (
	"container/heap"
	"context"
	"hash/fnv"
	"strconv"
	"time"
)

// grace is how late a tick may be dispatched (the host was busy, asleep or
// its clock jumped) and still run, for jobs without CatchUp. Older ticks are
// counted as missed.
const grace = 10 * time.Second

// jitterFor returns the job's jitter for tick: the same on every replica.
func jitterFor(j *job, tick time.Time) time.Duration {
	if j.cfg.jitter <= 0 {
		return 0
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(j.name))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write(strconv.AppendInt(nil, tick.UnixNano(), 10))
	return time.Duration(h.Sum64() % uint64(j.cfg.jitter))
}

// allowance is how late a tick of j may run.
func (j *job) allowance() time.Duration { return max(j.cfg.catchUp, grace) }

// initJobLocked sets j's first tick. At Start, jobs with CatchUp begin at
// the first tick inside the window (the dispatcher then runs only the most
// recent due one); others at the first tick not yet due. Caller holds s.mu.
func (s *Scheduler) initJobLocked(j *job, now time.Time, added bool) {
	from := now.Add(-j.cfg.jitter) // ticks whose jittered start is still ahead
	if j.cfg.catchUp > 0 && !added {
		from = now.Add(-j.cfg.catchUp)
	}
	for {
		n, ok := j.sched.next(from)
		if !ok {
			j.next = time.Time{}
			return
		}
		due := n.Add(jitterFor(j, n))
		if j.cfg.catchUp > 0 && !added || due.After(now) {
			j.next, j.due, j.dueNs = n, due, due.UnixNano()
			break
		}
		from = n
	}
	if j.index < 0 {
		s.pushLocked(j)
	} else {
		heap.Fix((*jobHeap)(&s.heap), j.index)
	}
	if j.cfg.runOnStart {
		s.startRunOnStartLocked(j, now)
	}
}

// jobHeap orders jobs by due time.
type jobHeap []*job

func (h jobHeap) Len() int           { return len(h) }
func (h jobHeap) Less(a, b int) bool { return h[a].dueNs < h[b].dueNs }
func (h jobHeap) Swap(a, b int) {
	h[a], h[b] = h[b], h[a]
	h[a].index, h[b].index = a, b
}
func (h *jobHeap) Push(x any) {
	j := x.(*job)
	j.index = len(*h)
	*h = append(*h, j)
}
func (h *jobHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	j.index = -1
	*h = old[:len(old)-1]
	return j
}

func (s *Scheduler) pushLocked(j *job) { heap.Push((*jobHeap)(&s.heap), j) }

// loop dispatches due ticks. It sleeps until the earliest due tick, at most
// cfg.maxTimer, and re-reads the clock on every wake-up, so a host that
// slept or a clock that jumped neither misses nor doubles ticks: each job's
// ticks are processed in order, at most once per replica, and the claim in
// the backend makes them once across replicas.
func (s *Scheduler) loop(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	scanEvery := max(s.cfg.leaseTTL/2, 50*time.Millisecond)
	nextScan := s.cfg.now().Add(scanEvery)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-s.wake:
		}
		now := s.cfg.now()
		s.mu.Lock()
		for len(s.heap) > 0 && !s.heap[0].due.After(now) {
			j := s.heap[0]
			s.dispatchLocked(j, now)
			if j.next.IsZero() {
				heap.Pop((*jobHeap)(&s.heap))
			} else {
				heap.Fix((*jobHeap)(&s.heap), 0)
			}
		}
		if !now.Before(nextScan) {
			nextScan = now.Add(scanEvery)
			s.startScanLocked(now)
		}
		wait := s.cfg.maxTimer
		if len(s.heap) > 0 {
			wait = min(wait, s.heap[0].due.Sub(now))
		}
		wait = min(wait, nextScan.Sub(now))
		if s.cfg.ownClock {
			wait = min(wait, 10*time.Millisecond)
		}
		s.mu.Unlock()
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(max(wait, time.Millisecond))
	}
}

// dispatchLocked handles j's due ticks: it runs the most recent one still
// within the job's allowance and counts older ones as missed, then moves j
// to its next tick. Caller holds s.mu.
func (s *Scheduler) dispatchLocked(j *job, now time.Time) {
	tick, due := j.next, j.due
	// Skip straight past ticks too old to run, without enumerating them.
	if now.Sub(due) > j.allowance() {
		if n, ok := j.sched.next(now.Add(-j.allowance())); ok && n.After(tick) {
			s.missed(j.name, tick)
			s.cfg.logger.Warn("scheduler: ticks missed", "job", j.name, "from", tick, "to", n)
			tick, due = n, n.Add(jitterFor(j, n))
		}
	}
	for {
		n, ok := j.sched.next(tick)
		if !ok {
			j.next = time.Time{}
			break
		}
		nd := n.Add(jitterFor(j, n))
		if nd.After(now) {
			j.next, j.due, j.dueNs = n, nd, nd.UnixNano()
			break
		}
		s.missed(j.name, tick)
		tick, due = n, nd
	}
	if due.After(now) || now.Sub(due) > j.allowance() {
		if !due.After(now) {
			s.missed(j.name, tick)
		}
		return
	}
	kind := KindTick
	if now.Sub(due) > grace {
		kind = KindCatchUp
	}
	s.launchLocked(j, tick, tickID(tick), kind, j.cfg.catchUp > 0)
}

func tickID(t time.Time) string { return strconv.FormatInt(t.UnixMicro(), 10) }

// startScanLocked looks, in the background, for abandoned runs of jobs with
// CatchUp and catches them up. Caller holds s.mu.
func (s *Scheduler) startScanLocked(now time.Time) {
	var jobs []*job
	for _, j := range s.jobs {
		if j.cfg.catchUp > 0 {
			jobs = append(jobs, j)
		}
	}
	if len(jobs) == 0 || s.scanning {
		return
	}
	s.scanning = true
	s.runs.Add(1)
	go func() {
		defer s.runs.Done()
		defer func() {
			s.mu.Lock()
			s.scanning = false
			s.mu.Unlock()
		}()
		for _, j := range jobs {
			if s.runCtx.Err() != nil {
				return
			}
			ctx, cancel := context.WithTimeout(s.runCtx, s.cfg.leaseTTL)
			ab, err := s.b.abandoned(ctx, j.name, now.Add(-j.cfg.catchUp), 16)
			cancel()
			if err != nil {
				if isInvalid(err) {
					s.invalid("scan", j.name, err)
				} else {
					s.st.errors.Add(1)
					s.cfg.logger.Warn("scheduler: catch-up scan failed", "job", j.name, "err", err)
				}
				continue
			}
			for _, p := range ab {
				s.mu.Lock()
				if s.state == stateStarted {
					s.launchLocked(j, p.tick, p.id, KindCatchUp, true)
				}
				s.mu.Unlock()
			}
		}
	}()
}
