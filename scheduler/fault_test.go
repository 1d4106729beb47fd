package scheduler_test

import (
	"context"
	"strconv"
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
// each once, and no tick runs twice; stale pooled connections (MaxRetries
// -1) make the first claims and leases after the restart fail, which the
// scheduler retries.
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
			o.ReadTimeout = 500 * time.Millisecond
		})
		s, err := scheduler.New(c, scheduler.WithNamespace("outage:"), scheduler.WithLeaseTTL(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		// Overlap(Wait): the ticks of the outage are claimed together when
		// Redis is back; under Skip all but one would (rightly) be skipped.
		if err := s.Every("tick", time.Second, job, scheduler.CatchUp(time.Minute), scheduler.Overlap(scheduler.Wait)); err != nil {
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
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		var missing []string
		for s := down.Unix() + 1; s < up.Unix(); s++ {
			if counts[s] == 0 {
				missing = append(missing, time.Unix(s, 0).Format("15:04:05"))
			}
		}
		mu.Unlock()
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			var st []scheduler.Stats
			for _, s := range ss {
				st = append(st, s.Stats())
			}
			t.Fatalf("ticks of the outage (%v .. %v) never ran: %v; stats %+v",
				down.Format("15:04:05.000"), up.Format("15:04:05.000"), missing, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
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

// testAbandonedScan plants the Redis state a replica leaves behind when it
// dies mid-run (a pending tick whose claim has expired) for an hourly job
// whose current tick is already done, so no claim reports it: the periodic
// scan must find it and catch it up once, on one of two replicas.
func testAbandonedScan(t *testing.T) {
	t.Parallel()
	for _, b := range redisBackends {
		t.Run("redis="+b.name, func(t *testing.T) {
			t.Parallel()
			db := b.mk(t)
			ctx := context.Background()
			last := time.Now().Truncate(time.Hour)
			dead := last.Add(-time.Hour)
			base := db.Prefix + "{hourly}:"
			id := strconv.FormatInt(dead.UnixMicro(), 10)
			if err := db.Client.ZAdd(ctx, base+"pending", redis.Z{Score: float64(dead.UnixMicro()), Member: id}).Err(); err != nil {
				t.Fatal(err)
			}
			if err := db.Client.Set(ctx, base+"tick:"+strconv.FormatInt(last.UnixMicro(), 10), "done:other", time.Hour).Err(); err != nil {
				t.Fatal(err)
			}
			var (
				mu   sync.Mutex
				runs []scheduler.Run
			)
			// A scan every 500ms, each given the lease TTL (1s) to answer: a
			// shorter TTL made a scan time out on a loaded machine (a
			// backend error, which the replicas' check does not allow).
			ss := replicas(t, db, 2, scheduler.WithLeaseTTL(time.Second))
			for _, s := range ss {
				if err := s.Every("hourly", time.Hour, func(ctx context.Context, run scheduler.Run) error {
					mu.Lock()
					runs = append(runs, run)
					mu.Unlock()
					return nil
				}, scheduler.CatchUp(3*time.Hour)); err != nil {
					t.Fatal(err)
				}
			}
			startAll(t, ss...)
			waitFor(t, 10*time.Second, "the abandoned tick to be caught up", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(runs) > 0
			})
			time.Sleep(1500 * time.Millisecond) // several more scans
			stopAll(t, ss...)
			mu.Lock()
			defer mu.Unlock()
			if len(runs) != 1 || !runs[0].Tick.Equal(dead) || runs[0].Kind != scheduler.KindCatchUp {
				t.Fatalf("runs %+v: want one catch-up of %v", runs, dead)
			}
			if n, _ := db.Client.ZCard(ctx, base+"pending").Result(); n != 0 {
				t.Errorf("pending has %d entries after the catch-up, want 0", n)
			}
		})
	}
}
