package scheduler_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/scheduler"
)

func hashOf(src string) string { return redis.NewScript(src).Hash() }

// leaseAcquireHash is the SHA1 of the lock package's acquire script, which
// takes a job's lease (it includes nothing else).
func leaseAcquireHash(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile("../lock/scripts/acquire.lua")
	require.NoError(t, err)
	require.NotContains(t, string(src), "@common", "acquire.lua is sent as it is")
	return hashOf(string(src))
}

// TestInvalidFailsLoudly: when Redis' answer means that a scheduler script,
// a job's keys or a reply is wrong, Trigger returns the error (wrapped,
// naming the operation and the job) after a single call of the script (no
// retry, and nothing left to be caught up), the error is counted in
// Stats.Invalid (never in Stats.Errors) and logged once per kind at Error
// level. On a single node and on a Cluster.
func TestInvalidFailsLoudly(t *testing.T) {
	noLeaks(t)
	const calls = 3
	lease := leaseAcquireHash(t)
	cases := []struct {
		name   string
		op     string // in the log
		src    map[string]string
		key    func(ns, job string) string // a key made a string (or, for the lease, a hash)
		sha    func(t *testing.T) string   // the script that must run once a call
		want   []string
		ran    bool // the job ran
		record bool // the failed run is in History
	}{
		{name: "claim-script-error", op: "claim", src: map[string]string{"claim": redistest.BrokenScript},
			sha: func(*testing.T) string { return hashOf(redistest.BrokenScript) }, want: []string{`scheduler: claim "job`, "user_script"}},
		{name: "claim-reply-shape", op: "claim", src: map[string]string{"claim": "return 'claimed'"},
			sha: func(*testing.T) string { return hashOf("return 'claimed'") }, want: []string{`scheduler: claim "job`, "unexpected reply"}},
		{name: "lease-wrong-type", op: "lease", key: func(ns, job string) string { return ns + "lease:{" + job + "}" },
			sha: func(*testing.T) string { return lease }, record: true,
			want: []string{`scheduler: lease for "job`, `lock: acquire "job`, "WRONGTYPE"}},
		{name: "complete-wrong-type", op: "complete", key: func(ns, job string) string { return ns + "{" + job + "}:history" },
			sha: func(*testing.T) string { return scheduler.Script("complete").Hash() }, ran: true,
			want: []string{`scheduler: recording the run of "job`, "WRONGTYPE"}},
	}
	for _, b := range redisBackends {
		db := b.mk(t)
		for i, tc := range cases {
			t.Run("redis="+b.name+"/"+tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				ns := db.Prefix + "inv" + strconv.Itoa(i) + ":"
				c := db.NewClient(t)
				runs := redistest.NewScriptRuns()
				c.AddHook(runs)
				logger, logs := redistest.NewLogs()
				s, err := scheduler.New(c, scheduler.WithNamespace(ns), scheduler.WithLogger(logger))
				require.NoError(t, err)
				for name, src := range tc.src {
					scheduler.SetScript(s, name, src)
				}
				var ran atomic.Int64
				// One job per call: a trigger's claim is remembered for a
				// second after its run.
				for n := range calls {
					job := "job" + strconv.Itoa(n)
					require.NoError(t, s.Cron(job, "0 0 1 1 *", func(context.Context, scheduler.Run) error {
						ran.Add(1)
						return nil
					}))
					if tc.key != nil {
						k := tc.key(ns, job)
						if tc.op == "lease" {
							require.NoError(t, c.HSet(ctx, k, "f", "v").Err())
						} else {
							require.NoError(t, c.Set(ctx, k, "x", time.Hour).Err())
						}
					}
				}
				sha := tc.sha(t)
				start := runs.Runs(sha)
				for n := range calls {
					job := "job" + strconv.Itoa(n)
					err := s.Trigger(ctx, job)
					require.Errorf(t, err, "Trigger %d: got no error, want the invalid reply", n)
					for _, w := range tc.want {
						assert.Contains(t, err.Error(), w)
					}
					assert.EqualValues(t, n+1, runs.Runs(sha)-start, "Trigger %d: the script ran %d times, want once a call (no retry)", n, runs.Runs(sha)-start)
					if tc.record {
						recs, err := s.History(ctx, job, 1)
						require.NoError(t, err)
						require.Len(t, recs, 1, "the failed run is recorded")
						assert.Contains(t, recs[0].Error, tc.want[len(tc.want)-1])
					}
				}
				stopAll(t, s)
				st := s.Stats()
				assert.EqualValues(t, calls, st.Invalid, "Stats.Invalid: %+v", st)
				assert.Zero(t, st.Errors, "counted as Redis unavailable: %+v", st)
				assert.Len(t, logs.With(slog.LevelError, "op", tc.op), 1, "Error records for %s, want one per kind:\n%s", tc.op, logs)
				if tc.ran {
					assert.EqualValues(t, calls, ran.Load(), "runs")
				} else {
					assert.Zero(t, ran.Load(), "the job ran")
				}
			})
		}
	}
}

// TestInvalidRefreshCancelsRun: a refresh of a run's claim or lease that
// Redis refuses with an invalid error is not retried: the run's context is
// cancelled at once with ErrLeaseLost wrapping the error, the run fails
// with it (Trigger's result and History), and it is counted and logged
// once. The claim's refresh script is broken; the lease (a lock) is
// replaced by a hash while the job runs, so that its auto-refresh gets
// WRONGTYPE.
func TestInvalidRefreshCancelsRun(t *testing.T) {
	noLeaks(t)
	cases := []struct {
		name    string
		op      string
		claim   bool   // break the claim's refresh script, else the lease's key
		want    string // in the error
		context string // in the error: which refresh
	}{
		{name: "claim", op: "refresh", claim: true, want: "user_script", context: `scheduler: refreshing the claim of "long"`},
		{name: "lease", op: "lease", want: "WRONGTYPE", context: `lock: refresh "long"`},
	}
	for _, b := range redisBackends {
		db := b.mk(t)
		for i, tc := range cases {
			t.Run("redis="+b.name+"/"+tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				ns := db.Prefix + "rf" + strconv.Itoa(i) + ":"
				c := db.NewClient(t)
				runs := redistest.NewScriptRuns()
				c.AddHook(runs)
				logger, logs := redistest.NewLogs()
				s, err := scheduler.New(c, scheduler.WithNamespace(ns), scheduler.WithLogger(logger),
					scheduler.WithLeaseTTL(600*time.Millisecond))
				require.NoError(t, err)
				if tc.claim {
					scheduler.SetScript(s, "refresh", redistest.BrokenScript)
				}
				var cause atomic.Value
				require.NoError(t, s.Cron("long", "0 0 1 1 *", func(jctx context.Context, _ scheduler.Run) error {
					if !tc.claim {
						lease := ns + "lease:{long}"
						if err := c.Del(ctx, lease).Err(); err != nil {
							return err
						}
						if err := c.HSet(ctx, lease, "f", "v").Err(); err != nil {
							return err
						}
					}
					select {
					case <-jctx.Done():
						cause.Store(context.Cause(jctx))
						return jctx.Err()
					case <-ctx.Done():
						return errors.New("the run's context was not cancelled")
					}
				}))
				err = s.Trigger(ctx, "long")
				require.Error(t, err)
				require.ErrorIs(t, err, scheduler.ErrLeaseLost)
				assert.Contains(t, err.Error(), tc.context)
				assert.Contains(t, err.Error(), tc.want)
				jc, _ := cause.Load().(error)
				require.ErrorIs(t, jc, scheduler.ErrLeaseLost, "the job's context cause")
				assert.Contains(t, jc.Error(), tc.want)
				if tc.claim {
					assert.EqualValues(t, 1, runs.Runs(hashOf(redistest.BrokenScript)), "the refused refresh was retried")
				}
				recs, err := s.History(ctx, "long", 1)
				require.NoError(t, err)
				require.Len(t, recs, 1)
				assert.Contains(t, recs[0].Error, tc.want)
				stopAll(t, s)
				st := s.Stats()
				assert.EqualValues(t, 1, st.Invalid)
				assert.Zero(t, st.Errors)
				assert.EqualValues(t, 1, st.Failed)
				assert.Len(t, logs.With(slog.LevelError, "op", tc.op), 1, logs.String())
			})
		}
	}
}

// TestInvalidScan: a catch-up scan that Redis refuses is counted and
// logged once, not taken for an outage; the next scans run on schedule.
func TestInvalidScan(t *testing.T) {
	noLeaks(t)
	db := redistest.New(t)
	logger, logs := redistest.NewLogs()
	s, err := scheduler.New(db.NewClient(t), scheduler.WithNamespace(db.Prefix), scheduler.WithLogger(logger),
		scheduler.WithLeaseTTL(200*time.Millisecond)) // a scan every 100ms
	require.NoError(t, err)
	scheduler.SetScript(s, "abandoned", redistest.BrokenScript)
	require.NoError(t, s.Cron("yearly", "0 0 1 1 *", nop, scheduler.CatchUp(time.Hour)))
	startAll(t, s)
	waitFor(t, 20*time.Second, "three refused scans", func() bool { return s.Stats().Invalid >= 3 })
	stopAll(t, s)
	assert.Zero(t, s.Stats().Errors)
	assert.Len(t, logs.With(slog.LevelError, "op", "scan"), 1, logs.String())
}

// TestInvalidHistory: History returns a read Redis refuses, or a record
// that does not decode, as an error naming the job, and counts it.
func TestInvalidHistory(t *testing.T) {
	db := redistest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	logger, logs := redistest.NewLogs()
	s, err := scheduler.New(db.NewClient(t), scheduler.WithNamespace(db.Prefix), scheduler.WithLogger(logger))
	require.NoError(t, err)
	for _, job := range []string{"wrong-type", "bad-record"} {
		require.NoError(t, s.Cron(job, "0 0 1 1 *", nop))
	}
	require.NoError(t, db.Client.Set(ctx, db.Prefix+"{wrong-type}:history", "x", time.Hour).Err())
	require.NoError(t, db.Client.LPush(ctx, db.Prefix+"{bad-record}:history", "not json").Err())
	_, err = s.History(ctx, "wrong-type", 10)
	require.ErrorContains(t, err, `scheduler: history of "wrong-type"`)
	require.ErrorContains(t, err, "WRONGTYPE")
	_, err = s.History(ctx, "bad-record", 10)
	require.ErrorContains(t, err, `scheduler: history of "bad-record"`)
	require.ErrorContains(t, err, "unexpected reply")
	assert.EqualValues(t, 2, s.Stats().Invalid)
	assert.Len(t, logs.With(slog.LevelError, "op", "history"), 2, "one per kind:\n%s", logs)
}

// TestUnavailableStillRetried: the other side of the line. A claim that
// fails because Redis is paused is retried and succeeds once Redis is
// back; against a stopped Redis it is retried, then returned and counted
// in Stats.Errors; neither is invalid.
func TestUnavailableStillRetried(t *testing.T) {
	noLeaks(t)
	retries := func(logs *redistest.Logs) int {
		n := 0
		for _, r := range logs.Records(slog.LevelWarn) {
			if strings.Contains(r.Msg, "claim failed, retrying") {
				n++
			}
		}
		return n
	}
	newScheduler := func(t *testing.T, srv *redistest.Server) (*scheduler.Scheduler, *redistest.Logs, *atomic.Int64) {
		c := srv.Client(t, func(o *redis.Options) {
			o.MaxRetries = -1
			o.ReadTimeout = 200 * time.Millisecond
			o.DialTimeout = 200 * time.Millisecond
		})
		logger, logs := redistest.NewLogs()
		s, err := scheduler.New(c, scheduler.WithNamespace("unav:"), scheduler.WithLogger(logger), scheduler.WithLeaseTTL(time.Second))
		require.NoError(t, err)
		var ran atomic.Int64
		require.NoError(t, s.Cron("job", "0 0 1 1 *", func(context.Context, scheduler.Run) error {
			ran.Add(1)
			return nil
		}))
		return s, logs, &ran
	}

	t.Run("paused", func(t *testing.T) {
		srv := redistest.StartServer(t)
		s, logs, ran := newScheduler(t, srv)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		require.NoError(t, srv.Pause())
		errc := make(chan error, 1)
		go func() { errc <- s.Trigger(ctx, "job") }()
		waitFor(t, 20*time.Second, "a claim retried", func() bool { return retries(logs) > 0 })
		require.NoError(t, srv.Resume())
		require.NoError(t, <-errc, "the retried claim succeeded")
		assert.EqualValues(t, 1, ran.Load())
		stopAll(t, s)
		st := s.Stats()
		assert.Zero(t, st.Invalid)
		assert.Zero(t, st.Errors, "the retry succeeded")
		assert.Zero(t, logs.Count(slog.LevelError), logs.String())
	})

	t.Run("stopped", func(t *testing.T) {
		srv := redistest.StartServer(t)
		s, logs, ran := newScheduler(t, srv)
		require.NoError(t, srv.Stop())
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := s.Trigger(ctx, "job")
		require.Error(t, err)
		assert.Contains(t, err.Error(), `scheduler: claim "job"`)
		assert.Equal(t, 3, retries(logs), "retried 3 times:\n%s", logs)
		assert.Zero(t, ran.Load())
		stopAll(t, s)
		st := s.Stats()
		assert.EqualValues(t, 1, st.Errors)
		assert.Zero(t, st.Invalid)
		assert.Empty(t, logs.With(slog.LevelError, "op", "claim"), "not reported as invalid")
	})
}
