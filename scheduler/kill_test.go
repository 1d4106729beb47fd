package scheduler_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/scheduler"
)

const childEnv = "OUTRIGGER_SCHEDULER_CHILD"

// childMain is a replica run as a child process by TestKillReplica: an
// every-second job that takes 600ms, with CatchUp, until SIGTERM.
func childMain() {
	addrs := strings.Split(os.Getenv("OUTRIGGER_CHILD_ADDRS"), ",")
	prefix := os.Getenv("OUTRIGGER_CHILD_PREFIX")
	c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs, IsClusterMode: os.Getenv("OUTRIGGER_CHILD_CLUSTER") == "1"})
	defer c.Close()
	s, err := scheduler.New(c, scheduler.WithNamespace(prefix), scheduler.WithLeaseTTL(time.Second),
		scheduler.WithNodeID("pid-"+strconv.Itoa(os.Getpid())))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	pid := strconv.Itoa(os.Getpid())
	job := func(ctx context.Context, run scheduler.Run) error {
		bg := context.Background()
		tick := strconv.FormatInt(run.Tick.UnixMilli(), 10)
		if err := c.HIncrBy(bg, prefix+"starts", tick, 1).Err(); err != nil {
			return err
		}
		c.HSet(bg, prefix+"running", pid, tick+":"+strconv.FormatInt(time.Now().UnixMilli(), 10))
		select {
		case <-time.After(600 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
		_, err := c.TxPipelined(bg, func(p redis.Pipeliner) error {
			p.HIncrBy(bg, prefix+"done", tick, 1)
			p.HDel(bg, prefix+"running", pid)
			return nil
		})
		return err
	}
	if err := s.Every("tick", time.Second, job, scheduler.Overlap(scheduler.Allow), scheduler.CatchUp(30*time.Second)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := s.Start(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.Stop(ctx)
}

// testKillReplicas runs five replicas as child processes, SIGKILLs one in
// the middle of a run, and checks that every tick still completed exactly
// once and that the killed run was caught up once by a live replica.
func testKillReplicas(t *testing.T) {
	t.Parallel()
	bs := redisBackends[:1]
	if longRun() {
		bs = redisBackends
	}
	for _, b := range bs {
		t.Run("redis="+b.name, func(t *testing.T) {
			t.Parallel()
			testKillReplica(t, b.mk(t))
		})
	}
}

func testKillReplica(t *testing.T, db *redistest.DB) {
	ctx := context.Background()
	const n = 5
	cmds := make([]*exec.Cmd, n)
	for i := range cmds {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"=1",
			"OUTRIGGER_CHILD_ADDRS="+strings.Join(db.Addrs, ","),
			"OUTRIGGER_CHILD_PREFIX="+db.Prefix,
			"OUTRIGGER_CHILD_CLUSTER="+map[bool]string{true: "1", false: "0"}[db.Cluster])
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("start child: %v", err)
		}
		cmds[i] = cmd
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
	// Let them all come up and run a few ticks.
	waitFor(t, 30*time.Second, "three completed ticks", func() bool {
		n, _ := db.Client.HLen(ctx, db.Key("done")).Result()
		return n >= 3
	})
	firstFull := time.Now().Truncate(time.Second).Add(time.Second).UnixMilli()

	// Kill a replica that is in the first 300ms of a 600ms run.
	var killedPid int
	var killedTick string
	waitFor(t, 20*time.Second, "a replica in the middle of a run", func() bool {
		m, _ := db.Client.HGetAll(ctx, db.Key("running")).Result()
		for pid, v := range m {
			tick, startMs, _ := strings.Cut(v, ":")
			start, _ := strconv.ParseInt(startMs, 10, 64)
			if time.Now().UnixMilli()-start > 300 {
				continue
			}
			p, _ := strconv.Atoi(pid)
			for _, c := range cmds {
				if c.Process.Pid == p {
					_ = c.Process.Signal(syscall.SIGKILL)
					killedPid, killedTick = p, tick
					return true
				}
			}
		}
		return false
	})
	t.Logf("killed pid %d in the run of tick %s", killedPid, killedTick)
	kt, _ := strconv.ParseInt(killedTick, 10, 64)
	dur := 6 * time.Second
	if longRun() {
		dur = 20 * time.Second
	}
	time.Sleep(dur)
	// The killed run is caught up once its claim expires (1s) and a scan finds it.
	waitFor(t, 20*time.Second, "the killed tick to be caught up", func() bool {
		v, _ := db.Client.HGet(ctx, db.Key("done"), killedTick).Int()
		return v >= 1
	})
	lastFull := time.Now().Truncate(time.Second).Add(-2 * time.Second).UnixMilli()
	for _, c := range cmds {
		if c.Process.Pid != killedPid {
			_ = c.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, c := range cmds {
		_ = c.Wait()
	}

	_, starts := tickCounts(t, db.Client, db.Key("starts"))
	_, done := tickCounts(t, db.Client, db.Key("done"))
	for tick := firstFull; tick <= lastFull; tick += 1000 {
		if done[tick] != 1 {
			t.Errorf("tick %d completed %d times, want 1", tick, done[tick])
		}
		want := 1
		if tick == kt {
			want = 2 // the killed run and its catch-up
		}
		if starts[tick] != want {
			t.Errorf("tick %d started %d times, want %d", tick, starts[tick], want)
		}
	}
	for tick, c := range done {
		if c > 1 {
			t.Errorf("tick %d completed %d times", tick, c)
		}
	}
}
