package scheduler_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/scheduler"
)

// TestInspector runs jobs on two replicas, on a single node and a Cluster,
// and inspects and operates them from outside: registrations with their
// schedules, history from both replicas, nodes, pause (no replica runs a
// paused tick), trigger (one replica runs it, paused or not), resume, and
// the missed-tick flag.
func TestInspector(t *testing.T) {
	for _, b := range redisBackends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			db := b.mk(t)
			ss := replicas(t, db, 2, scheduler.WithLocation(time.UTC))
			var fast, broken atomic.Int64
			for _, s := range ss {
				require.NoError(t, s.Every("fast", time.Second, func(ctx context.Context, r scheduler.Run) error {
					fast.Add(1)
					return nil
				}))
				require.NoError(t, s.Every("broken", time.Second, func(ctx context.Context, r scheduler.Run) error {
					broken.Add(1)
					return errors.New("upstream said 503")
				}))
				require.NoError(t, s.Cron("nightly", "0 3 * * *", func(ctx context.Context, r scheduler.Run) error { return nil },
					scheduler.CatchUp(time.Hour), scheduler.Timeout(time.Minute)))
			}
			startAll(t, ss...)
			defer stopAll(t, ss...)

			in, err := scheduler.NewInspector(db.NewClient(t), scheduler.WithNamespace(db.Prefix))
			require.NoError(t, err)
			waitFor(t, 30*time.Second, "registrations and runs", func() bool {
				js, err := in.Jobs(ctx)
				return err == nil && len(js) == 3 && fast.Load() >= 2 && broken.Load() >= 1
			})
			js, err := in.Jobs(ctx)
			require.NoError(t, err)
			assert.Equal(t, []string{"broken", "fast", "nightly"}, []string{js[0].Name, js[1].Name, js[2].Name})
			f, n := js[1], js[2]
			assert.Equal(t, "every 1s", f.Schedule)
			assert.Equal(t, time.Second, f.Period)
			assert.WithinDuration(t, time.Now(), f.Next, 2*time.Second)
			assert.Equal(t, "skip", f.Overlap)
			assert.Contains(t, []string{"node-0", "node-1"}, f.Node)
			assert.False(t, f.Stale)
			assert.False(t, f.Missed)
			assert.Equal(t, "0 3 * * *", n.Schedule)
			assert.Equal(t, "UTC", n.Location)
			assert.Equal(t, 24*time.Hour, n.Period)
			assert.Equal(t, 3, n.Next.UTC().Hour())
			assert.Equal(t, time.Hour, n.CatchUp)
			assert.Equal(t, time.Minute, n.Timeout)
			assert.Nil(t, n.LastRun)
			assert.False(t, n.Missed)
			waitFor(t, 30*time.Second, "a failed run recorded", func() bool {
				j, err := in.Job(ctx, "broken")
				return err == nil && j.LastRun != nil
			})
			br, err := in.Job(ctx, "broken")
			require.NoError(t, err)
			assert.Equal(t, "upstream said 503", br.LastRun.Error)
			_, err = in.Job(ctx, "nope")
			assert.ErrorIs(t, err, scheduler.ErrUnknownJob)

			hist, err := in.History(ctx, "fast", 10)
			require.NoError(t, err)
			require.NotEmpty(t, hist)
			assert.Equal(t, "fast", hist[0].Job)
			assert.Empty(t, hist[0].Error)

			nodes, err := in.Nodes(ctx)
			require.NoError(t, err)
			require.Len(t, nodes, 2)
			assert.Equal(t, "node-0", nodes[0].Node)
			assert.Equal(t, 3, nodes[0].Jobs)

			// Pause: no replica runs a tick of the job any more.
			require.NoError(t, in.Pause(ctx, "fast", "tester"))
			pj, err := in.Job(ctx, "fast")
			require.NoError(t, err)
			assert.True(t, pj.Paused)
			assert.Equal(t, "tester", pj.PausedBy)
			waitFor(t, 10*time.Second, "the run in progress to finish", func() bool {
				j, err := in.Job(ctx, "fast")
				return err == nil && !j.Running
			})
			before := fast.Load()
			// Three ticks go by: a replica that ignored the pause would run them.
			deadline := time.Now().Add(3 * time.Second)
			for time.Now().Before(deadline) {
				require.Equal(t, before, fast.Load(), "a paused job ran")
				time.Sleep(50 * time.Millisecond)
			}
			// A trigger runs it anyway, once.
			tr, err := in.Trigger(ctx, "fast", "tester")
			require.NoError(t, err)
			assert.Contains(t, []string{"node-0", "node-1"}, tr.Node)
			waitFor(t, 10*time.Second, "the triggered run", func() bool { return fast.Load() == before+1 })
			waitFor(t, 10*time.Second, "the triggered run recorded", func() bool {
				h, err := in.History(ctx, "fast", 1)
				return err == nil && len(h) == 1 && h[0].Kind == scheduler.KindTrigger
			})

			// A job that stopped firing is flagged, a paused one is not.
			later, err := scheduler.NewInspector(db.Client, scheduler.WithNamespace(db.Prefix),
				scheduler.WithClock(func() time.Time { return time.Now().Add(time.Minute) }))
			require.NoError(t, err)
			lj, err := later.Jobs(ctx)
			require.NoError(t, err)
			assert.True(t, lj[0].Missed, "broken has not run for a minute, period 1s")
			assert.False(t, lj[1].Missed, "fast is paused")
			assert.False(t, lj[2].Missed, "nightly runs once a day")

			require.NoError(t, in.Resume(ctx, "fast"))
			waitFor(t, 10*time.Second, "ticks after resume", func() bool { return fast.Load() >= before+3 })

			// Nobody has the job: the trigger is withdrawn.
			tctx, tcancel := context.WithTimeout(ctx, 1500*time.Millisecond)
			_, err = in.Trigger(tctx, "nope", "")
			tcancel()
			assert.ErrorIs(t, err, scheduler.ErrNoScheduler)
			left, err := db.Client.HExists(ctx, db.Prefix+"triggers", "nope").Result()
			require.NoError(t, err)
			assert.False(t, left, "the request was not withdrawn")
		})
	}
}

func TestInspectorArguments(t *testing.T) {
	_, err := scheduler.NewInspector(nil)
	require.Error(t, err)
	db := redisBackends[0].mk(t)
	in, err := scheduler.NewInspector(db.Client, scheduler.WithNamespace(db.Prefix))
	require.NoError(t, err)
	js, err := in.Jobs(t.Context())
	require.NoError(t, err)
	assert.Empty(t, js)
	assert.ErrorIs(t, in.Pause(t.Context(), "", ""), scheduler.ErrInvalidJob)
	h, err := in.History(t.Context(), "x", 0)
	require.NoError(t, err)
	assert.Empty(t, h)
}
