package scheduler_test

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/scheduler"
)

// Every replica of a service registers the same jobs; each tick runs on one
// of them.
func ExampleNew() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()

	ny, _ := time.LoadLocation("America/New_York")
	s, err := scheduler.New(rdb, scheduler.WithNamespace("example:sched:"), scheduler.WithLocation(ny))
	if err != nil {
		panic(err)
	}
	err = s.Cron("daily-report", "0 30 2 * * *", func(ctx context.Context, run scheduler.Run) error {
		// run.Token fences writes made by this run against older runs.
		fmt.Println("report for", run.Tick.Format(time.DateOnly), "token", run.Token)
		return nil
	}, scheduler.Timeout(time.Hour), scheduler.CatchUp(6*time.Hour))
	if err != nil {
		panic(err)
	}
	err = s.Every("refresh-rates", 30*time.Second, func(ctx context.Context, run scheduler.Run) error {
		return nil // fetch and store rates
	}, scheduler.Jitter(5*time.Second), scheduler.Overlap(scheduler.Skip), scheduler.Retry(2, time.Second))
	if err != nil {
		panic(err)
	}
	if err := s.Start(context.Background()); err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.Stop(ctx)
}

// NextAfter shows the DST policy at work: on the spring-forward day in New
// York, 02:30 does not exist and the job runs right after the change.
func ExampleScheduler_NextAfter() {
	ny, _ := time.LoadLocation("America/New_York")
	s, _ := scheduler.NewLocal(scheduler.WithLocation(ny))
	_ = s.Cron("nightly", "30 2 * * *", func(context.Context, scheduler.Run) error { return nil })

	t := time.Date(2025, 3, 8, 12, 0, 0, 0, ny)
	for range 3 {
		t, _ = s.NextAfter("nightly", t)
		fmt.Println(t.Format("Mon Jan 2 15:04 MST"))
	}
	// Output:
	// Sun Mar 9 03:00 EDT
	// Mon Mar 10 02:30 EDT
	// Tue Mar 11 02:30 EDT
}

// Trigger runs a job now, once across all replicas, and returns its result.
func ExampleScheduler_Trigger() {
	s, _ := scheduler.NewLocal()
	_ = s.Every("reindex", time.Hour, func(ctx context.Context, run scheduler.Run) error {
		fmt.Println("reindexing:", run.Kind, "attempt", run.Attempt)
		return nil
	})
	if err := s.Trigger(context.Background(), "reindex"); err != nil {
		fmt.Println("error:", err)
	}
	recs, _ := s.History(context.Background(), "reindex", 10)
	fmt.Println(len(recs), "run recorded, error:", recs[0].Error == "")
	_ = s.Stop(context.Background())
	// Output:
	// reindexing: trigger attempt 1
	// 1 run recorded, error: true
}

// Every ticks on multiples of the interval since the Unix epoch, plus an
// optional offset, whatever the time the replicas started.
func ExampleOffset() {
	s, _ := scheduler.NewLocal()
	_ = s.Every("quarter-past", time.Hour, func(context.Context, scheduler.Run) error { return nil },
		scheduler.Offset(15*time.Minute))
	next, _ := s.NextAfter("quarter-past", time.Date(2025, 6, 1, 10, 20, 0, 0, time.UTC))
	fmt.Println(next.UTC().Format(time.TimeOnly))
	// Output: 11:15:00
}
