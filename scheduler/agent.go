package scheduler

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The agent: a goroutine of every started Redis Scheduler that makes the
// jobs visible to an [Inspector] and operable from outside the process.
//
//	<ns>jobs        hash: job name -> registration (JSON): its schedule and
//	                options, the node that wrote it and when; rewritten
//	                every registerEvery by every replica
//	<ns>jobs:since  hash: job name -> when it was first registered (ms)
//	<ns>nodes       hash: node ID -> heartbeat (JSON)
//	<ns>triggers    hash: job name -> "<request ID>|<ms>|<by>": a trigger
//	                asked for by an Inspector; the replica whose HDEL removes
//	                it runs the job (Trigger) and acknowledges in
//	<ns>triggered   hash: job name -> "<request ID>|<node>|<ms>"
//
// The three hashes expire an hour after the last replica stopped writing
// them. Pausing is not the agent's: a paused job's claims are refused in
// Redis (scripts/claim.lua), so no replica can miss it.

// registerEvery is how often a replica rewrites its jobs' registrations.
const registerEvery = 15 * time.Second

// pollEvery is how often a replica looks for trigger requests.
const pollEvery = time.Second

// registryTTL is how long the registry outlives its last writer.
const registryTTL = time.Hour

// triggerID is the claim ID of a Trigger: triggers are not paused.
const triggerID = "trigger"

// pausable returns claim.lua's ARGV[9] for the claim id.
func pausable(id string) string {
	if id == triggerID {
		return "0"
	}
	return "1"
}

// registration is a job as the registry holds it.
type registration struct {
	Name     string        `json:"name"`
	Spec     string        `json:"spec,omitempty"`  // a Cron job's spec
	Every    time.Duration `json:"every,omitempty"` // an Every job's interval
	Offset   time.Duration `json:"offset,omitempty"`
	Location string        `json:"location,omitempty"`
	DST      DSTPolicy     `json:"dst"`
	Jitter   time.Duration `json:"jitter,omitempty"`
	CatchUp  time.Duration `json:"catch_up,omitempty"`
	Timeout  time.Duration `json:"timeout,omitempty"`
	Overlap  string        `json:"overlap"`
	Node     string        `json:"node"`
	Seen     int64         `json:"seen"` // unix ms
}

// heartbeat is a node as the registry holds it.
type heartbeat struct {
	Node    string `json:"node"`
	Jobs    int    `json:"jobs"`
	Started int64  `json:"started"` // unix ms
	Seen    int64  `json:"seen"`    // unix ms
}

// startAgentLocked starts the agent of a Redis scheduler. Caller holds s.mu.
func (s *Scheduler) startAgentLocked() {
	rb, ok := s.b.(*redisBackend)
	if !ok {
		return
	}
	s.runs.Add(1)
	go s.agent(rb, time.Now())
}

func (s *Scheduler) agent(rb *redisBackend, started time.Time) {
	defer s.runs.Done()
	ctx := s.stopCtx // cancelled when Stop begins
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	var next time.Time
	for {
		if now := time.Now(); !now.Before(next) {
			next = now.Add(registerEvery)
			if err := s.register(ctx, rb, started); err != nil && ctx.Err() == nil {
				s.cfg.logger.Warn("scheduler: registering jobs failed", "err", err)
			}
		}
		if err := s.pollTriggers(ctx, rb); err != nil && ctx.Err() == nil {
			s.cfg.logger.Warn("scheduler: reading trigger requests failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// register writes this replica's jobs and heartbeat.
func (s *Scheduler) register(ctx context.Context, rb *redisBackend, started time.Time) error {
	now := time.Now().UnixMilli()
	s.mu.Lock()
	regs := make(map[string]any, len(s.jobs))
	names := make([]string, 0, len(s.jobs))
	for _, j := range s.jobs {
		r := registration{
			Name: j.name, DST: s.cfg.dst, Jitter: j.cfg.jitter, CatchUp: j.cfg.catchUp,
			Timeout: j.cfg.timeout, Overlap: j.cfg.overlap.String(), Node: s.cfg.nodeID, Seen: now,
		}
		if j.cfg.dstSet {
			r.DST = j.cfg.dst
		}
		switch sc := j.sched.(type) {
		case interval:
			r.Every, r.Offset = sc.every, sc.offset
		case *cronSchedule:
			r.Spec, r.Location = j.spec, sc.loc.String()
		default:
			r.Spec = j.spec
		}
		b, _ := json.Marshal(r)
		regs[j.name] = string(b)
		names = append(names, j.name)
	}
	s.mu.Unlock()
	hb, _ := json.Marshal(heartbeat{Node: s.cfg.nodeID, Jobs: len(names), Started: started.UnixMilli(), Seen: now})
	ns := rb.ns
	_, err := rb.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		if len(regs) > 0 {
			p.HSet(ctx, ns+"jobs", regs)
			for _, n := range names {
				p.HSetNX(ctx, ns+"jobs:since", n, now)
			}
		}
		p.HSet(ctx, ns+"nodes", s.cfg.nodeID, string(hb))
		for _, k := range []string{"jobs", "jobs:since", "nodes"} {
			p.PExpire(ctx, ns+k, registryTTL)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return s.prune(ctx, rb)
}

// staleAfter is when a registration or heartbeat nobody renews is dropped.
const staleAfter = 24 * time.Hour

// prune drops registrations and heartbeats nobody renewed for a day (jobs
// removed from the code, replicas gone).
func (s *Scheduler) prune(ctx context.Context, rb *redisBackend) error {
	cutoff := time.Now().Add(-staleAfter).UnixMilli()
	for _, k := range []string{"jobs", "nodes"} {
		all, err := rb.c.HGetAll(ctx, rb.ns+k).Result()
		if err != nil {
			return err
		}
		var old []string
		for f, v := range all {
			var seen struct {
				Seen int64 `json:"seen"`
			}
			if json.Unmarshal([]byte(v), &seen) == nil && seen.Seen < cutoff {
				old = append(old, f)
			}
		}
		if len(old) > 0 {
			if err := rb.c.HDel(ctx, rb.ns+k, old...).Err(); err != nil {
				return err
			}
			if k == "jobs" {
				_ = rb.c.HDel(ctx, rb.ns+"jobs:since", old...).Err()
			}
		}
	}
	return nil
}

// pollTriggers takes the trigger requests of this replica's jobs: the
// replica whose HDEL removes a request runs it, once across replicas.
func (s *Scheduler) pollTriggers(ctx context.Context, rb *redisBackend) error {
	reqs, err := rb.c.HGetAll(ctx, rb.ns+"triggers").Result()
	if err != nil || len(reqs) == 0 {
		return err
	}
	for name, v := range reqs {
		s.mu.Lock()
		_, ok := s.jobs[name]
		s.mu.Unlock()
		if !ok {
			continue // a replica that has the job takes it
		}
		n, err := rb.c.HDel(ctx, rb.ns+"triggers", name).Result()
		if err != nil {
			return err
		}
		if n == 0 {
			continue // another replica took it
		}
		id, rest, _ := strings.Cut(v, "|")
		_, by, _ := strings.Cut(rest, "|")
		ack := id + "|" + s.cfg.nodeID + "|" + strconv.FormatInt(time.Now().UnixMilli(), 10)
		_, _ = rb.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, rb.ns+"triggered", name, ack)
			p.PExpire(ctx, rb.ns+"triggered", registryTTL)
			return nil
		})
		s.cfg.logger.Info("scheduler: running a job triggered from an inspector", "job", name, "by", by, "request", id)
		s.runs.Add(1)
		go func() {
			defer s.runs.Done()
			if err := s.Trigger(s.stopCtx, name); err != nil && s.stopCtx.Err() == nil {
				s.cfg.logger.Warn("scheduler: triggered run failed", "job", name, "err", err)
			}
		}()
	}
	return nil
}
