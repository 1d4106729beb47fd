package scheduler_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/outrigger-dev/outrigger/scheduler"
)

// TestHooks: claims, run start and end (with attempts and error), overlap
// skips and missed ticks reach the hooks, on every backend.
func TestHooks(t *testing.T) {
	forEachBackend(t, func(t *testing.T, mk func(t *testing.T, opts ...scheduler.Option) *scheduler.Scheduler) {
		var mu sync.Mutex
		var claims, starts, skips int
		var ends []error
		var attempts []int
		h := scheduler.Hooks{
			OnClaim: func(job string, _ time.Time, _ scheduler.Kind, won bool) {
				mu.Lock()
				defer mu.Unlock()
				if won && job == "hooked" {
					claims++
				}
			},
			OnRunStart: func(job string, tick time.Time, _ scheduler.Kind, delay time.Duration) {
				mu.Lock()
				defer mu.Unlock()
				if job == "hooked" && delay >= 0 {
					starts++
				}
			},
			OnRunEnd: func(job string, _ time.Time, _ scheduler.Kind, d time.Duration, n int, err error) {
				mu.Lock()
				defer mu.Unlock()
				if job == "hooked" {
					ends = append(ends, err)
					attempts = append(attempts, n)
				}
			},
			OnSkip: func(job string, _ time.Time) {
				mu.Lock()
				defer mu.Unlock()
				if job == "slow" {
					skips++
				}
			},
		}
		s := mk(t, scheduler.WithHooks(h))
		calls := 0
		fail := errors.New("first attempt fails")
		if err := s.Every("hooked", 200*time.Millisecond, func(context.Context, scheduler.Run) error {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if calls == 1 {
				return fail
			}
			return nil
		}, scheduler.Retry(1, 5*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if err := s.Every("slow", 100*time.Millisecond, func(ctx context.Context, _ scheduler.Run) error {
			select {
			case <-time.After(450 * time.Millisecond):
			case <-ctx.Done():
			}
			return nil
		}, scheduler.Overlap(scheduler.Skip)); err != nil {
			t.Fatal(err)
		}
		startAll(t, s)
		waitFor(t, 20*time.Second, "two runs of hooked and a skip of slow", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(ends) >= 2 && skips >= 1
		})
		stopAll(t, s)
		mu.Lock()
		defer mu.Unlock()
		if claims < len(ends) || starts < len(ends) {
			t.Errorf("claims %d, starts %d, ends %d: want a claim and a start per run", claims, starts, len(ends))
		}
		if ends[0] != nil || attempts[0] != 2 {
			t.Errorf("first run: err %v after %d attempts, want nil after 2 (the retry succeeded)", ends[0], attempts[0])
		}
	})
}
