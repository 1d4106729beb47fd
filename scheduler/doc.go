// Package scheduler runs cron and interval jobs once per tick across all
// replicas of a service.
//
// Every replica registers the same jobs and starts its Scheduler; for each
// (job, scheduled tick) exactly one replica runs the job:
//
//	s, err := scheduler.New(rdb, scheduler.WithNamespace("billing:"), scheduler.WithLocation(ny))
//	err = s.Cron("daily-report", "0 30 2 * * *", report, scheduler.Timeout(time.Hour))
//	err = s.Every("refresh-rates", 30*time.Second, refresh, scheduler.Jitter(5*time.Second))
//	err = s.Start(ctx)
//	defer s.Stop(ctx)
//
// # Guarantees
//
// Once per tick. A tick is claimed in Redis with an atomic SET NX on a key
// named by the job and the tick's instant (<ns>{<job>}:tick:<unix micros>),
// not by the replica's "now", so replicas whose clocks disagree by a second
// or more still claim the same key and exactly one wins. Every(d) ticks fall
// on multiples of d since the Unix epoch (plus Offset), cron ticks on the
// spec's instants in the configured location, so replicas started at
// different moments agree on them. A completed claim is remembered for at
// least three periods and longer than the CatchUp window, so no replica can
// claim it again.
//
// Leases and fencing. A run takes the job's lease (the lock package,
// refreshed while the job runs) and passes its fencing token as Run.Token.
// With Overlap(Skip), the default, a tick due while another run of the job
// still holds the lease, on any replica, is skipped (and recorded as such);
// Overlap(Wait) waits for the lease until the job's next tick is due;
// Overlap(Allow) runs concurrently (the token then comes from a per-job
// counter and only orders runs). A run whose lease or claim is lost (Redis
// unreachable for longer than WithLeaseTTL) has its context cancelled.
// With Overlap(Skip) a run costs two round trips: one script claims the
// tick and takes the lease (the lock package's key and rules, the same
// lease a lock.TryAcquire would take), one records the run and releases
// the lease (handing it to a waiter, if one is queued, takes a third).
// Claims and records of jobs due at the same moment share pipelines.
//
// Replica death. A claimed tick stays "pending" until its run completes,
// and its claim lives only while the replica refreshes it. If the replica
// dies, the claim expires after the lease TTL; with CatchUp(window) a live
// replica finds the pending tick (the next claim of the job reports it, and
// a scan every TTL/2 covers rare jobs) and runs it once
// (Run.Kind == KindCatchUp); without CatchUp the next tick simply proceeds.
// A tick no replica claimed because all were down is run once on start-up if
// it is the most recent tick and inside the window (older missed ticks are
// coalesced into it). While Redis is unreachable, jobs with CatchUp keep
// retrying the claim of due ticks for as long as they are inside the window.
//
// Time zones and DST. Cron specs are evaluated on wall-clock time in the
// location (WithLocation, or a "TZ=Zone " spec prefix) and mapped to
// instants. The default policy, DSTVixie, is Vixie cron's: a fixed-time job
// whose local time is skipped by a spring-forward runs once, right at the
// change; one whose time repeats in a fall-back hour runs once; jobs whose
// minute or hour field starts with '*' (e.g. "*/30 * * * *") follow the real
// clock. DSTRunOnce, DSTSkip and DSTRealClock are the alternatives
// (WithDST, or DST per job).
//
// Clocks and timers. Timers sleep at most a minute and the clock is re-read
// on every wake-up, so a host that slept or a clock that jumped neither
// misses nor doubles ticks: a replica processes each job's ticks in order, at
// most once, runs only the most recent due one if several went by (counting
// the others in Stats.Missed) and ticks more than 10 seconds late (or older
// than the CatchUp window) are not run. Jitter(d) delays a tick's start by a
// hash of (job, tick) below d, the same on every replica, to spread many
// jobs; the claim key is still the tick.
//
// Failures. A job's error or panic fails the run (a panic is recovered and
// recorded with its stack) and the scheduler carries on; Retry(n, backoff)
// retries it; Timeout(d) cancels its context. History returns the recent
// runs of a job from all replicas: tick, node, start, end, error, attempts.
//
// Redis errors. Only errors that mean Redis cannot answer now are retried:
// network errors and timeouts, and the replies LOADING, BUSY, CLUSTERDOWN,
// TRYAGAIN, MASTERDOWN, READONLY, NOREPLICAS, MISCONF, OOM, "max number of
// clients reached" and a MOVED or ASK left after the client's redirects
// (see internal/rediserr). A claim is retried 3 times within about a second,
// and for jobs with CatchUp for as long as the tick is inside the window; a
// lease 4 times over about 1.5s; recording a run 3 times (an unrecorded
// tick is caught up once its claim expires, with CatchUp); a claim refresh
// until no refresh succeeded for a whole lease TTL (then the run's context
// is cancelled with ErrLeaseLost); a failed catch-up scan at the next scan.
// What is still failing after that is counted in Stats.Errors and logged;
// Trigger returns it.
//
// An answer that means the scheduler's script, a job's keys or a reply is
// wrong (ERR user_script…, ERR Error running script, WRONGTYPE — a key of
// another type under the namespace —, an unknown command, NOAUTH or NOPERM,
// a reply that does not parse) is never retried, and never taken for Redis
// being down: a claim fails the tick (Trigger returns
// "scheduler: claim "job" at …: …", the tick counts in Stats.Missed); a
// lease fails the run, which is recorded with that error in History (not
// left to be caught up); a refused record is returned by Trigger; a refused
// claim or lease refresh cancels the run's context at once with a cause
// wrapping ErrLeaseLost and the error, and the run fails with it; a refused
// scan or History read is returned or counted. Each is counted in
// Stats.Invalid and logged once per operation and kind at Error level
// through WithLogger: a bug or bad data to fix, which a retry would only
// hide.
//
// # What it does not do
//
// Exactly once is "at most once per tick, and once unless every replica is
// down for the whole CatchUp window" as far as claiming goes. A job that
// has done its work but whose replica dies before recording completion is
// run again by CatchUp, so jobs with CatchUp should be idempotent or use
// Run.Token to fence their writes. A Redis failover that loses the latest
// writes (asynchronous replication) can lose a claim and let a tick run
// twice; run Redis with persistence and replicas you trust, or fence.
// Replicas must register jobs under the same names with the same schedules;
// nothing checks that they agree.
//
// NewLocal gives the same API and semantics inside one process, with no
// Redis.
//
// # Inspecting and operating
//
// A started Redis Scheduler registers its jobs in Redis every 15 seconds
// (schedule and options, its node's heartbeat) and takes trigger requests
// (agent.go). [NewInspector] reads them from any process: [Inspector.Jobs]
// lists the jobs with their schedule, next tick, last run and a Missed flag
// (not paused, last run more than two periods ago), [Inspector.History]
// and [Inspector.Nodes] the runs and replicas; [Inspector.Trigger] asks the
// schedulers to run a job now (one replica that has it takes the request
// and runs it, as Trigger); [Inspector.Pause] stops a job's scheduled runs
// on every replica, refused in Redis when a replica claims a tick, until
// [Inspector.Resume]. NewLocal schedulers are not visible.
package scheduler
