package scheduler_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/outrigger-dev/outrigger/scheduler"
)

// TestSynctestHours runs an in-process scheduler for a simulated day in a
// testing/synctest bubble: an hourly job runs 24 times, on the hour, and a
// 6-field every-15-minutes cron job 96 times.
func TestSynctestHours(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := scheduler.NewLocal(scheduler.WithLocation(time.UTC))
		if err != nil {
			t.Fatal(err)
		}
		var (
			mu     sync.Mutex
			counts = map[string]int{}
		)
		job := func(ctx context.Context, run scheduler.Run) error {
			mu.Lock()
			defer mu.Unlock()
			counts[run.Job]++
			if run.Job == "hourly" && !run.Tick.Equal(run.Tick.Truncate(time.Hour)) {
				t.Errorf("hourly tick %v not on the hour", run.Tick)
			}
			return nil
		}
		if err := s.Every("hourly", time.Hour, job); err != nil {
			t.Fatal(err)
		}
		if err := s.Cron("quarterly", "0 */15 * * * *", job); err != nil {
			t.Fatal(err)
		}
		// Start just after a whole day boundary of the bubble's clock.
		start := time.Now()
		time.Sleep(start.Truncate(24*time.Hour).Add(24*time.Hour).Sub(start) + time.Second)
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(24*time.Hour - 2*time.Second)
		synctest.Wait()
		if err := s.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if counts["hourly"] != 23 || counts["quarterly"] != 95 {
			t.Errorf("runs %v, want hourly 23 and quarterly 95", counts)
		}
	})
}
