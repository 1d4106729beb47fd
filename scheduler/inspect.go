package scheduler

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNoScheduler is returned by Inspector.Trigger when no running
// scheduler that has the job took the request before ctx ended.
var ErrNoScheduler = errors.New("scheduler: no running scheduler took the trigger")

// Inspector looks at and operates the jobs of one namespace from any
// process that reaches the Redis (a console, a command-line tool): the
// jobs every running [Scheduler] registers, with their schedule, next tick,
// recent runs from every replica and a flag on jobs that stopped firing;
// it triggers a job (run by one replica that has it), and pauses and
// resumes a job on every replica. It is safe for concurrent use.
//
// Jobs appear once a Scheduler with them has started (a replica rewrites
// its registrations every 15 seconds; see agent.go); NewLocal schedulers
// are invisible to it.
type Inspector struct {
	client redis.UniversalClient
	ns     string
	now    func() time.Time
}

// NewInspector returns an inspector of the namespace set with
// [WithNamespace] (default "outrigger:scheduler:"); other options are
// ignored, except [WithClock] for the "missed" flag's notion of now.
func NewInspector(client redis.UniversalClient, opts ...Option) (*Inspector, error) {
	if client == nil {
		return nil, errors.New("scheduler: NewInspector: client must not be nil")
	}
	cfg, err := buildConfig(opts)
	if err != nil {
		return nil, err
	}
	return &Inspector{client: client, ns: cfg.namespace, now: cfg.now}, nil
}

// Namespace returns the namespace the inspector reads.
func (in *Inspector) Namespace() string { return in.ns }

// JobInfo is one job at a glance.
type JobInfo struct {
	// Name is the job's name.
	Name string `json:"name"`
	// Schedule is the spec of a Cron job, or "every <d>" for Every.
	Schedule string `json:"schedule"`
	// Location is a Cron job's time zone.
	Location string `json:"location,omitempty"`
	// Next is the next tick, computed from the schedule (zero if none).
	Next time.Time `json:"next"`
	// Period is the time between the next two ticks.
	Period time.Duration `json:"period"`
	// Overlap, CatchUp and Timeout are the job's options.
	Overlap string        `json:"overlap"`
	CatchUp time.Duration `json:"catch_up,omitempty"`
	Timeout time.Duration `json:"timeout,omitempty"`
	// LastRun is the most recently finished run (nil when none is
	// recorded).
	LastRun *RunRecord `json:"last_run"`
	// Running reports a run holding the job's lease now.
	Running bool `json:"running"`
	// Paused reports that the job is paused ([Inspector.Pause]); PausedAt
	// and PausedBy say when and by whom.
	Paused   bool      `json:"paused"`
	PausedAt time.Time `json:"paused_at,omitzero"`
	PausedBy string    `json:"paused_by,omitempty"`
	// Missed flags a job that stopped firing: not paused, and its last run
	// started more than two periods ago (or, never run, it was registered
	// more than two periods ago).
	Missed bool `json:"missed"`
	// Node is the replica that last registered the job, and Seen when.
	Node string    `json:"node"`
	Seen time.Time `json:"seen"`
	// Stale reports that no running scheduler registered the job for a
	// while (four registration periods): its replicas stopped, or it was
	// removed from the code.
	Stale bool `json:"stale"`
	// Since is when the job was first registered.
	Since time.Time `json:"since"`
}

// Jobs lists the registered jobs, sorted by name.
func (in *Inspector) Jobs(ctx context.Context) ([]JobInfo, error) {
	regs, err := in.client.HGetAll(ctx, in.ns+"jobs").Result()
	if err != nil {
		return nil, fmt.Errorf("scheduler: list jobs: %w", err)
	}
	names := make([]string, 0, len(regs))
	for n := range regs {
		names = append(names, n)
	}
	slices.Sort(names)
	return in.jobs(ctx, names, regs)
}

// Job returns one registered job; it returns an error wrapping
// [ErrUnknownJob] when no scheduler registered it.
func (in *Inspector) Job(ctx context.Context, name string) (JobInfo, error) {
	v, err := in.client.HGet(ctx, in.ns+"jobs", name).Result()
	if errors.Is(err, redis.Nil) {
		return JobInfo{}, fmt.Errorf("%w %q: no running scheduler registered it", ErrUnknownJob, name)
	}
	if err != nil {
		return JobInfo{}, fmt.Errorf("scheduler: job %q: %w", name, err)
	}
	js, err := in.jobs(ctx, []string{name}, map[string]string{name: v})
	if err != nil {
		return JobInfo{}, err
	}
	return js[0], nil
}

func (in *Inspector) base(job string) string { return in.ns + "{" + job + "}:" }

func (in *Inspector) jobs(ctx context.Context, names []string, regs map[string]string) ([]JobInfo, error) {
	type cmds struct {
		last          *redis.StringCmd
		paused, since *redis.StringCmd
		running       *redis.IntCmd
	}
	cs := make([]cmds, len(names))
	_, err := in.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, n := range names {
			b := in.base(n)
			cs[i] = cmds{
				last:    p.LIndex(ctx, b+"history", 0),
				paused:  p.Get(ctx, b+"paused"),
				since:   p.HGet(ctx, in.ns+"jobs:since", n),
				running: p.Exists(ctx, in.ns+"lease:{"+n+"}"),
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("scheduler: inspect jobs: %w", err)
	}
	now := in.now()
	out := make([]JobInfo, 0, len(names))
	for i, n := range names {
		var r registration
		if err := json.Unmarshal([]byte(regs[n]), &r); err != nil {
			return nil, fmt.Errorf("scheduler: job %q: bad registration: %w", n, err)
		}
		ji := JobInfo{
			Name: n, Location: r.Location, Overlap: r.Overlap, CatchUp: r.CatchUp, Timeout: r.Timeout,
			Node: r.Node, Seen: time.UnixMilli(r.Seen), Running: cs[i].running.Val() == 1,
		}
		ji.Stale = now.Sub(ji.Seen) > 4*registerEvery
		if ms, err := strconv.ParseInt(cs[i].since.Val(), 10, 64); err == nil {
			ji.Since = time.UnixMilli(ms)
		}
		if sc, label, err := r.schedule(); err == nil {
			ji.Schedule = label
			if next, ok := sc.next(now); ok {
				ji.Next = next
				if after, ok := sc.next(next); ok {
					ji.Period = after.Sub(next)
				}
			}
		} else {
			ji.Schedule = r.Spec + " (" + err.Error() + ")"
		}
		if v := cs[i].last.Val(); v != "" {
			var rec RunRecord
			if json.Unmarshal([]byte(v), &rec) == nil {
				ji.LastRun = &rec
			}
		}
		if p := cs[i].paused.Val(); p != "" {
			ji.Paused = true
			ms, by, _ := strings.Cut(p, "|")
			if t, err := strconv.ParseInt(ms, 10, 64); err == nil {
				ji.PausedAt = time.UnixMilli(t)
			}
			ji.PausedBy = by
		}
		if !ji.Paused && ji.Period > 0 {
			ref := ji.Since
			if ji.LastRun != nil {
				ref = ji.LastRun.Start
				if ji.LastRun.Skipped || ref.IsZero() {
					ref = ji.LastRun.Tick
				}
			}
			ji.Missed = !ref.IsZero() && now.Sub(ref) > 2*ji.Period+r.Jitter
		}
		out = append(out, ji)
	}
	return out, nil
}

// schedule rebuilds the job's schedule from its registration.
func (r *registration) schedule() (schedule, string, error) {
	if r.Every > 0 {
		return newInterval(r.Every, r.Offset), "every " + r.Every.String(), nil
	}
	loc := time.Local
	if r.Location != "" && r.Location != "Local" {
		l, err := time.LoadLocation(r.Location)
		if err != nil {
			return nil, "", err
		}
		loc = l
	}
	sc, err := parseSpec(r.Spec, loc, r.DST)
	return sc, r.Spec, err
}

// History returns up to n of the job's most recently finished runs, from
// every replica, the last to finish first (skipped ticks included).
func (in *Inspector) History(ctx context.Context, name string, n int) ([]RunRecord, error) {
	if n <= 0 {
		return []RunRecord{}, nil
	}
	vals, err := in.client.LRange(ctx, in.base(name)+"history", 0, int64(n-1)).Result()
	if err != nil {
		return nil, fmt.Errorf("scheduler: history of %q: %w", name, err)
	}
	out := make([]RunRecord, 0, len(vals))
	for _, v := range vals {
		var rec RunRecord
		if err := json.Unmarshal([]byte(v), &rec); err != nil {
			return nil, fmt.Errorf("scheduler: history of %q: bad record: %w", name, err)
		}
		out = append(out, rec)
	}
	return out, nil
}

// NodeInfo is a running scheduler replica.
type NodeInfo struct {
	// Node is its WithNodeID.
	Node string `json:"node"`
	// Jobs counts its registered jobs.
	Jobs int `json:"jobs"`
	// Started and Seen are when it started and last wrote its heartbeat.
	Started time.Time `json:"started"`
	Seen    time.Time `json:"seen"`
	// Stale reports a replica that stopped writing (stopped or dead).
	Stale bool `json:"stale"`
}

// Nodes lists the scheduler replicas of the namespace, sorted by node.
func (in *Inspector) Nodes(ctx context.Context) ([]NodeInfo, error) {
	all, err := in.client.HGetAll(ctx, in.ns+"nodes").Result()
	if err != nil {
		return nil, fmt.Errorf("scheduler: nodes: %w", err)
	}
	now := in.now()
	out := make([]NodeInfo, 0, len(all))
	for _, v := range all {
		var h heartbeat
		if json.Unmarshal([]byte(v), &h) != nil {
			continue
		}
		ni := NodeInfo{Node: h.Node, Jobs: h.Jobs, Started: time.UnixMilli(h.Started), Seen: time.UnixMilli(h.Seen)}
		ni.Stale = now.Sub(ni.Seen) > 4*registerEvery
		out = append(out, ni)
	}
	slices.SortFunc(out, func(a, b NodeInfo) int { return strings.Compare(a.Node, b.Node) })
	return out, nil
}

// Pause stops the job's scheduled runs on every replica: its ticks (and
// catch-ups and start runs) are refused in Redis when a replica claims
// them, so they are skipped, not queued; [Inspector.Trigger] still runs it.
// A run in progress finishes. by is recorded (who paused it; may be
// empty).
func (in *Inspector) Pause(ctx context.Context, name, by string) error {
	if name == "" {
		return fmt.Errorf("%w: name must not be empty", ErrInvalidJob)
	}
	v := strconv.FormatInt(time.Now().UnixMilli(), 10) + "|" + by
	if err := in.client.Set(ctx, in.base(name)+"paused", v, 0).Err(); err != nil {
		return fmt.Errorf("scheduler: pause %q: %w", name, err)
	}
	return nil
}

// Resume lets the job's ticks run again, from its next tick on (paused
// ticks are not caught up).
func (in *Inspector) Resume(ctx context.Context, name string) error {
	if name == "" {
		return fmt.Errorf("%w: name must not be empty", ErrInvalidJob)
	}
	if err := in.client.Del(ctx, in.base(name)+"paused").Err(); err != nil {
		return fmt.Errorf("scheduler: resume %q: %w", name, err)
	}
	return nil
}

// Triggered is a trigger taken by a replica.
type Triggered struct {
	// Job is the job's name.
	Job string `json:"job"`
	// Request identifies the request.
	Request string `json:"request"`
	// Node is the replica that took it and runs the job (as Trigger, once
	// across replicas).
	Node string `json:"node"`
}

// Trigger asks the running schedulers to run the job now and waits until
// one that has the job took the request (within about a second), or ctx
// ends: then the request is withdrawn and the error wraps
// [ErrNoScheduler]. The run itself goes on after Trigger returns; its
// outcome shows in History. Triggers run paused jobs too.
func (in *Inspector) Trigger(ctx context.Context, name, by string) (Triggered, error) {
	if name == "" {
		return Triggered{}, fmt.Errorf("%w: name must not be empty", ErrInvalidJob)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	v := id + "|" + strconv.FormatInt(time.Now().UnixMilli(), 10) + "|" + by
	_, err := in.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, in.ns+"triggers", name, v)
		p.PExpire(ctx, in.ns+"triggers", registryTTL)
		return nil
	})
	if err != nil {
		return Triggered{}, fmt.Errorf("scheduler: trigger %q: %w", name, err)
	}
	wait := 20 * time.Millisecond
	for {
		ack, err := in.client.HGet(ctx, in.ns+"triggered", name).Result()
		if err == nil && strings.HasPrefix(ack, id+"|") {
			_, rest, _ := strings.Cut(ack, "|")
			node, _, _ := strings.Cut(rest, "|")
			return Triggered{Job: name, Request: id, Node: node}, nil
		}
		if err != nil && !errors.Is(err, redis.Nil) && ctx.Err() == nil {
			return Triggered{}, fmt.Errorf("scheduler: trigger %q: %w", name, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			// withdraw it, unless a replica took it meanwhile
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			_ = withdrawScript.Run(wctx, in.client, []string{in.ns + "triggers"}, name, v).Err()
			return Triggered{}, fmt.Errorf("%w: job %q (is a scheduler with it running?): %w", ErrNoScheduler, name, context.Cause(ctx))
		case <-t.C:
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}

var (
	//go:embed scripts/withdraw.lua
	withdrawLua    string
	withdrawScript = redis.NewScript(withdrawLua)
)
