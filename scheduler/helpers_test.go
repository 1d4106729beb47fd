package scheduler_test

import (
	"context"
	"flag"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/scheduler"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		childMain()
		return
	}
	// The multi-replica tests mostly wait on the clock (ticks are a second
	// apart), so run more of them at once than the default GOMAXPROCS,
	// unless -test.parallel was given.
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", "16")
	}
	redistest.Main(m)
}

// noLeaks checks, after every other cleanup of the test (register it
// first), that the test left no goroutines behind beyond those running when
// it started. Top-level tests that use it must not be parallel.
func noLeaks(t *testing.T) {
	t.Helper()
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		// The harness's shared servers (started on first use) are waited
		// for by goroutines that live as long as the test binary.
		goleak.VerifyNone(t, before,
			goleak.IgnoreAnyFunction("github.com/outrigger-dev/outrigger/internal/redistest.(*Server).start.func1"))
	})
}

type backendMaker struct {
	name string
	mk   func(testing.TB) *redistest.DB
}

var redisBackends = []backendMaker{{"single", redistest.New}, {"cluster", redistest.NewCluster}}

// replicas returns n schedulers on separate clients of db's deployment,
// sharing db's prefix as namespace. When the test ends, each checks that
// Redis decided (requireRedisDecided).
func replicas(t *testing.T, db *redistest.DB, n int, opts ...scheduler.Option) []*scheduler.Scheduler {
	t.Helper()
	out := make([]*scheduler.Scheduler, n)
	for i := range out {
		c := db.NewClient(t)
		cnt := redistest.NewCounter()
		c.AddHook(cnt)
		o := append([]scheduler.Option{
			scheduler.WithNamespace(db.Prefix),
			scheduler.WithNodeID("node-" + strconv.Itoa(i)),
		}, opts...)
		s, err := scheduler.New(c, o...)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		t.Cleanup(func() { requireRedisDecided(t, s, cnt) })
		out[i] = s
	}
	return out
}

// requireRedisDecided fails t unless Redis made every claim decision s
// counts and nothing failed on the way: no backend call failed for an
// unavailable Redis (after retries) or with an invalid reply, and the
// client sent at least a command for every claim won or lost. A scheduler
// whose Redis path silently degrades (a record that is never written, a
// scan that always fails, a claim reply read as "lost") fails its own
// suite.
func requireRedisDecided(t *testing.T, s *scheduler.Scheduler, cnt *redistest.Counter) {
	t.Helper()
	st := s.Stats()
	if st.Errors != 0 || st.Invalid != 0 {
		t.Errorf("%s: %d backend errors and %d invalid replies, want 0 (stats %+v)", s.NodeID(), st.Errors, st.Invalid, st)
	}
	if decided := int64(st.Claimed + st.Lost); cnt.Commands() < decided {
		t.Errorf("%s: %d commands for %d claims decided, want at least one each (stats %+v)", s.NodeID(), cnt.Commands(), decided, st)
	}
}

func startAll(t *testing.T, ss ...*scheduler.Scheduler) {
	t.Helper()
	for _, s := range ss {
		if err := s.Start(context.Background()); err != nil {
			t.Fatalf("Start: %v", err)
		}
	}
}

func stopAll(t *testing.T, ss ...*scheduler.Scheduler) {
	t.Helper()
	for _, s := range ss {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if err := s.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
		cancel()
	}
}

// tickCounts reads a hash of tick unix-milli -> count.
func tickCounts(t *testing.T, c redis.UniversalClient, key string) (ticks []int64, counts map[int64]int) {
	t.Helper()
	m, err := c.HGetAll(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("HGETALL %s: %v", key, err)
	}
	counts = make(map[int64]int)
	for k, v := range m {
		ms, _ := strconv.ParseInt(k, 10, 64)
		n, _ := strconv.Atoi(v)
		counts[ms] = n
		ticks = append(ticks, ms)
	}
	sort.Slice(ticks, func(i, j int) bool { return ticks[i] < ticks[j] })
	return ticks, counts
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func longRun() bool { return os.Getenv("OUTRIGGER_LONG") != "" }
