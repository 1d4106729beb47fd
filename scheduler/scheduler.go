package scheduler

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/internal/lockadopt"
	"github.com/outrigger-dev/outrigger/internal/rediserr"
	"github.com/outrigger-dev/outrigger/lock"
)

// Scheduler runs registered jobs once per tick across every replica that
// shares its Redis namespace. Create it with New or NewLocal, register jobs
// with Cron and Every, then Start it; Stop ends it. Its methods are safe for
// concurrent use. Jobs may be registered before or after Start.
type Scheduler struct {
	cfg    config
	b      backend
	locker lock.Locker
	st     stats
	faults rediserr.Reporter // logs each kind of invalid backend error once

	// runCtx is the parent of every run's context; cancelRuns is called when
	// Stop gives up waiting. Both are owned by the Scheduler, not a caller.
	runCtx     context.Context
	cancelRuns context.CancelFunc
	// stopCtx is cancelled when Stop begins: work that has not started a
	// job yet (claim retries, lease waits, retry back-off) gives up.
	stopCtx  context.Context
	stopWork context.CancelFunc
	runs     sync.WaitGroup // run and scan goroutines
	// idle hands a run to a worker waiting for one (worker.go); quit,
	// closed by Stop, ends the workers, which workers counts.
	idle    chan func()
	quit    chan struct{}
	workers sync.WaitGroup

	mu       sync.Mutex // protects jobs, state, loopStop, and the dispatcher's view of jobs
	jobs     map[string]*job
	state    int // stateNew, stateStarted, stateStopped
	loopStop context.CancelFunc
	loopDone chan struct{}
	wake     chan struct{} // buffered(1): a job was added while running
	heap     jobHeap       // jobs with a next tick, by due time
	scanning bool          // a catch-up scan is running
}

const (
	stateNew = iota
	stateStarted
	stateStopped
)

type job struct {
	name     string
	sched    schedule
	fn       JobFunc
	cfg      jobConfig
	spec     string // for messages
	leaseKey string // lock key of the job's lease
	// leaseKeys are the Redis keys of the lease and its fencing counter
	// when claims can take the lease in the same script (same hash slot as
	// the claim's keys), else nil. Set once by add.
	leaseKeys *[2]string

	// dispatcher state, protected by Scheduler.mu
	next  time.Time // next tick to process
	due   time.Time // next + jitter
	dueNs int64     // due in unix nanoseconds, for the heap's comparisons
	index int       // in the heap, -1 when not in it
}

// New returns a Scheduler that coordinates replicas through Redis (single
// node, Sentinel or Cluster). Replicas sharing jobs must use the same
// namespace (WithNamespace) and register the same jobs.
func New(client redis.UniversalClient, opts ...Option) (*Scheduler, error) {
	if client == nil {
		return nil, errors.New("scheduler: New: client must not be nil")
	}
	cfg, err := buildConfig(opts)
	if err != nil {
		return nil, err
	}
	lk, err := lock.New(client, lock.WithPrefix(cfg.namespace+"lease:"), lock.WithAutoRefresh(true))
	if err != nil {
		return nil, fmt.Errorf("scheduler: lease locker: %w", err)
	}
	return newScheduler(cfg, newRedisBackend(client, cfg.namespace), lk), nil
}

// NewLocal returns a Scheduler for a single process: the same API and
// semantics with in-memory claims, leases and history.
func NewLocal(opts ...Option) (*Scheduler, error) {
	cfg, err := buildConfig(opts)
	if err != nil {
		return nil, err
	}
	return newScheduler(cfg, newLocalBackend(cfg.now), lock.NewLocal(lock.WithAutoRefresh(true))), nil
}

func buildConfig(opts []Option) (config, error) {
	cfg := defaultConfig()
	var errs []error
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&cfg); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return cfg, err
	}
	if cfg.nodeID == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		cfg.nodeID = fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	return cfg, nil
}

func newScheduler(cfg config, b backend, l lock.Locker) *Scheduler {
	ctx, cancel := context.WithCancel(context.Background())
	sctx, scancel := context.WithCancel(ctx)
	return &Scheduler{
		cfg: cfg, b: b, locker: l,
		runCtx: ctx, cancelRuns: cancel,
		stopCtx: sctx, stopWork: scancel,
		jobs: make(map[string]*job),
		wake: make(chan struct{}, 1),
		idle: make(chan func()), quit: make(chan struct{}),
	}
}

// Cron registers job under name to run at the times of spec, evaluated in
// the scheduler's location (WithLocation) under its DST policy.
//
// spec is a 5-field cron spec (minute hour day-of-month month day-of-week),
// a 6-field one with a leading seconds field, or a descriptor: @yearly,
// @annually, @monthly, @weekly, @daily, @midnight, @hourly, or
// "@every <duration>" (ticks on multiples of the duration since the Unix
// epoch, like Every). A "TZ=Area/City " prefix evaluates the spec in that
// zone. Names of months and weekdays, ranges, lists and steps are accepted
// as by robfig/cron.
func (s *Scheduler) Cron(name, spec string, fn JobFunc, opts ...JobOption) error {
	jc, err := s.jobConfig(name, fn, opts)
	if err != nil {
		return err
	}
	if jc.offset != 0 {
		return fmt.Errorf("%w %q: Offset applies to Every jobs only", ErrInvalidJob, name)
	}
	policy := s.cfg.dst
	if jc.dstSet {
		policy = jc.dst
	}
	sc, err := parseSpec(spec, s.cfg.loc, policy)
	if err != nil {
		return fmt.Errorf("%w %q: %v", ErrInvalidJob, name, err)
	}
	return s.add(&job{name: name, sched: sc, fn: fn, cfg: jc, spec: spec})
}

// Every registers job under name to run every d. Ticks fall on multiples of
// d since the Unix epoch (plus Offset), so replicas started at different
// moments agree on them; they count real time and ignore time zones and DST.
func (s *Scheduler) Every(name string, d time.Duration, fn JobFunc, opts ...JobOption) error {
	jc, err := s.jobConfig(name, fn, opts)
	if err != nil {
		return err
	}
	if d <= 0 {
		return fmt.Errorf("%w %q: interval must be > 0, got %v", ErrInvalidJob, name, d)
	}
	if d < time.Millisecond {
		return fmt.Errorf("%w %q: interval must be >= 1ms, got %v", ErrInvalidJob, name, d)
	}
	return s.add(&job{name: name, sched: newInterval(d, jc.offset), fn: fn, cfg: jc, spec: "every " + d.String()})
}

func (s *Scheduler) jobConfig(name string, fn JobFunc, opts []JobOption) (jobConfig, error) {
	var jc jobConfig
	if name == "" {
		return jc, fmt.Errorf("%w: name must not be empty", ErrInvalidJob)
	}
	if fn == nil {
		return jc, fmt.Errorf("%w %q: job func must not be nil", ErrInvalidJob, name)
	}
	var errs []error
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&jc); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return jc, fmt.Errorf("%w %q: %v", ErrInvalidJob, name, err)
	}
	return jc, nil
}

func (s *Scheduler) add(j *job) error {
	j.index = -1
	j.leaseKey = j.name
	if rb, ok := s.b.(*redisBackend); ok {
		if lk, fk, ok := lockadopt.Keys(s.locker, j.leaseKey); ok && hashTag(lk) == hashTag(rb.base(j.name)+"tick:") {
			j.leaseKeys = &[2]string{lk, fk}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == stateStopped {
		return fmt.Errorf("%w: cannot add job %q", ErrStopped, j.name)
	}
	if _, dup := s.jobs[j.name]; dup {
		return fmt.Errorf("%w %q: a job with this name is already registered", ErrInvalidJob, j.name)
	}
	s.jobs[j.name] = j
	if s.state == stateStarted {
		s.initJobLocked(j, s.cfg.now(), true)
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	return nil
}

// NextAfter returns the first tick of job name strictly after t (a Jitter
// delays the run's start, not its tick). It is a pure computation on the
// job's schedule, the same on every replica.
func (s *Scheduler) NextAfter(name string, t time.Time) (time.Time, error) {
	s.mu.Lock()
	j, ok := s.jobs[name]
	s.mu.Unlock()
	if !ok {
		return time.Time{}, fmt.Errorf("%w %q", ErrUnknownJob, name)
	}
	n, ok := j.sched.next(t)
	if !ok {
		return time.Time{}, fmt.Errorf("%w: job %q after %v", ErrNoNextTick, name, t)
	}
	return n, nil
}

// Stats returns this replica's counters.
func (s *Scheduler) Stats() Stats { return s.st.snapshot() }

// NodeID returns the name of this replica in run records.
func (s *Scheduler) NodeID() string { return s.cfg.nodeID }

// History returns up to n of the job's most recently finished runs, from
// every replica, the last to finish first (WithHistory sets how many are
// kept). Skipped ticks are included, with Skipped set.
func (s *Scheduler) History(ctx context.Context, name string, n int) ([]RunRecord, error) {
	if n <= 0 {
		return nil, nil
	}
	s.mu.Lock()
	_, ok := s.jobs[name]
	s.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownJob, name)
	}
	raw, err := s.b.history(ctx, name, n)
	if err == nil {
		out := make([]RunRecord, 0, len(raw))
		for _, r := range raw {
			var rec RunRecord
			if jerr := json.Unmarshal(r, &rec); jerr != nil {
				err = rediserr.BadReply("run record %.80q: %v", r, jerr)
				break
			}
			out = append(out, rec)
		}
		if err == nil {
			return out, nil
		}
	}
	if isInvalid(err) {
		s.invalid("history", name, err)
	}
	return nil, fmt.Errorf("scheduler: history of %q: %w", name, err)
}

// Start starts dispatching ticks and returns at once. ctx only bounds
// start-up; the scheduler runs until Stop.
func (s *Scheduler) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case stateStarted:
		return ErrAlreadyStarted
	case stateStopped:
		return ErrStopped
	}
	s.state = stateStarted
	now := s.cfg.now()
	for _, j := range s.jobs {
		s.initJobLocked(j, now, false)
	}
	lctx, cancel := context.WithCancel(context.Background())
	s.loopStop = cancel
	s.loopDone = make(chan struct{})
	go s.loop(lctx, s.loopDone)
	s.startAgentLocked() // agent.go
	return nil
}

// Stop stops dispatching and waits for running jobs to return, until ctx is
// done: then it cancels their contexts and returns ctx.Err() without waiting
// further. A stopped Scheduler cannot be started again.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.mu.Lock()
	if s.state == stateStopped {
		s.mu.Unlock()
		return ErrStopped
	}
	started := s.state == stateStarted
	s.state = stateStopped
	stop, done := s.loopStop, s.loopDone
	s.mu.Unlock()

	s.stopWork()
	if started {
		stop()
		<-done // the loop never blocks on I/O
	}
	idle := make(chan struct{})
	go func() {
		s.runs.Wait()
		close(idle)
	}()
	select {
	case <-idle:
		s.cancelRuns()
		close(s.quit)
		s.workers.Wait() // idle now: each exits at once
		return nil
	case <-ctx.Done():
		s.cancelRuns()
		close(s.quit)
		// Runs now see a cancelled context; give them a moment to record
		// their results, but do not wait for jobs that ignore it.
		select {
		case <-idle:
		case <-time.After(100 * time.Millisecond):
		}
		return ctx.Err()
	}
}
