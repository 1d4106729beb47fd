package scheduler_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/scheduler"
)

// testRedisOutage kills the Redis server under two replicas for three
// seconds and restarts it (empty). Ticks due during the outage are claimed
// once Redis is back (CatchUp keeps retrying the claim inside the window),
// and no tick runs twice.
func testRedisOutage(t *testing.T) {
	t.Parallel()
	srv := redistest.StartServer(t)
	var (
		mu     sync.Mutex
		counts = map[int64]int{}
	)
	job := func(ctx context.Context, run scheduler.Run) error {
		mu.Lock()
		counts[run.Tick.Unix()]++
		mu.Unlock()
		return nil
	}
	var ss []*scheduler.Scheduler
	for range 2 {
		c := srv.Client(t, func(o *redis.Options) {
			o.MaxRetries = -1
			o.DialTimeout = 200 * time.Millisecond
			o.ReadTimeout = 200 * time.Millisecond
		})
		s, err := scheduler.New(c, scheduler.WithNamespace("outage:"), scheduler.WithLeaseTTL(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Every("tick", time.Second, job, scheduler.CatchUp(time.Minute)); err != nil {
			t.Fatal(err)
		}
		ss = append(ss, s)
	}
	startAll(t, ss...)
	time.Sleep(2 * time.Second)
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	time.Sleep(3 * time.Second)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	// Every tick of the outage gets run once Redis is back.
	waitFor(t, 20*time.Second, "the outage's ticks to run", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for s := down.Unix() + 1; s < up.Unix(); s++ {
			if counts[s] == 0 {
				return false
			}
		}
		return true
	})
	time.Sleep(2 * time.Second)
	stopAll(t, ss...)
	mu.Lock()
	defer mu.Unlock()
	for s, c := range counts {
		if c != 1 {
			t.Errorf("tick %v ran %d times, want 1", time.Unix(s, 0).Format("15:04:05"), c)
		}
	}
	t.Logf("ticks run: %d (outage %v .. %v)", len(counts), down.Format("15:04:05.000"), up.Format("15:04:05.000"))
}
