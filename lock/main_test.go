package lock_test

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"go.uber.org/goleak"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/lock"
)

func TestMain(m *testing.M) {
	if runChild() { // re-executed as a lock-holding child process
		return
	}
	redistest.Main(m)
}

// leakCheck fails the test if it leaves goroutines behind. Call it first:
// its clean-up runs last, after clients are closed.
func leakCheck(t *testing.T) {
	t.Helper()
	opts := []goleak.Option{goleak.IgnoreCurrent(),
		// the harness's shared cluster lives until the binary exits
		goleak.IgnoreAnyFunction("github.com/outrigger-dev/outrigger/internal/redistest.(*Server).start.func1")}
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}

// backend builds a Locker with test isolation (WithPrefix) for one mode.
type backend struct {
	name string
	mk   func(t *testing.T, opts ...lock.Option) lock.Locker
}

// backends returns the modes the contract runs against: local, Redis on a
// single node and on a Cluster (with in-process hand-off, the default, and
// without it, so that waiters queue and are woken in Redis), and Redlock
// over 3 servers started once per calling test. Every Redis locker checks,
// when its case ends, that Redis decided (requireRedisDecided).
func backends(t *testing.T) []backend {
	t.Helper()
	rlServers := redistest.StartServers(t, 3)
	rlPrefix := redistest.NewPrefix()
	// One DB per deployment for the whole table (the harness's per-DB
	// clean-up scans the shared server); each case gets its own sub-prefix
	// and its own client, whose round trips it counts.
	fromDB := func(db *redistest.DB, extra ...lock.Option) func(*testing.T, ...lock.Option) lock.Locker {
		return func(t *testing.T, opts ...lock.Option) lock.Locker {
			c := db.NewClient(t)
			cnt := redistest.NewCounter()
			c.AddHook(cnt)
			all := append([]lock.Option{lock.WithPrefix(db.Prefix + t.Name() + ":")}, extra...)
			l, err := lock.New(c, append(all, opts...)...)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			t.Cleanup(func() { requireRedisDecided(t, l.Stats(), cnt) })
			return l
		}
	}
	single, cluster := redistest.New(t), redistest.NewCluster(t)
	noLocal := lock.WithLocalHandoff(0)
	return []backend{
		{"local", func(t *testing.T, opts ...lock.Option) lock.Locker { return lock.NewLocal(opts...) }},
		{"redis", fromDB(single)},
		{"redis-queue", fromDB(single, noLocal)},
		{"cluster", fromDB(cluster)},
		{"cluster-queue", fromDB(cluster, noLocal)},
		{"redlock", func(t *testing.T, opts ...lock.Option) lock.Locker {
			var cs []redis.UniversalClient
			var cnts []*redistest.Counter
			for _, s := range rlServers {
				c := s.Client(t, func(o *redis.Options) { o.ContextTimeoutEnabled = true })
				cnt := redistest.NewCounter()
				c.AddHook(cnt)
				cs, cnts = append(cs, c), append(cnts, cnt)
			}
			// A node timeout that a loaded machine does not reach, so that a
			// node counted as failed (Stats.Errors) means a broken path.
			all := []lock.Option{lock.WithPrefix(rlPrefix + t.Name() + ":"), lock.WithNodeTimeout(2 * time.Second)}
			l, err := lock.NewRedlock(cs, append(all, opts...)...)
			if err != nil {
				t.Fatalf("NewRedlock: %v", err)
			}
			t.Cleanup(func() { requireRedisDecided(t, l.Stats(), cnts...) })
			return l
		}},
	}
}

// requireRedisDecided fails t unless Redis decided every acquire st counts
// and nothing degraded: no Redis error was absorbed (a wake-up read that fell
// back to polling, a retried refresh, a Redlock node left out), none was
// invalid, and each client (one per Redlock node) sent at least a command
// for every lock that was not handed on in-process. A locker that silently
// degrades fails its own contract suite.
func requireRedisDecided(t *testing.T, st lock.Stats, counters ...*redistest.Counter) {
	t.Helper()
	assert.Zerof(t, st.Invalid, "%d Redis calls failed with an invalid reply, want 0 (stats %+v)", st.Invalid, st)
	assert.Zerof(t, st.Errors, "%d Redis errors were absorbed by a degrade path, want 0 (stats %+v)", st.Errors, st)
	for i, cnt := range counters {
		fromRedis := int64(st.Acquired - st.LocalHandedOff)
		assert.GreaterOrEqualf(t, cnt.Commands(), fromRedis,
			"client %d sent %d commands for %d locks acquired through Redis (stats %+v)", i, cnt.Commands(), fromRedis, st)
	}
}
