package lock_test

import (
	"testing"

	"github.com/redis/go-redis/v9"
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

// backends returns the four modes the contract runs against. The Redlock
// servers are started once per calling test.
func backends(t *testing.T) []backend {
	t.Helper()
	var rlClients []redis.UniversalClient
	rlPrefix := redistest.NewPrefix()
	for _, s := range redistest.StartServers(t, 3) {
		rlClients = append(rlClients, s.Client(t, func(o *redis.Options) { o.ContextTimeoutEnabled = true }))
	}
	// One DB per deployment for the whole table (the harness's per-DB
	// clean-up scans the shared server); each case gets its own sub-prefix.
	fromDB := func(db *redistest.DB) func(*testing.T, ...lock.Option) lock.Locker {
		return func(t *testing.T, opts ...lock.Option) lock.Locker {
			l, err := lock.New(db.Client, append([]lock.Option{lock.WithPrefix(db.Prefix + t.Name() + ":")}, opts...)...)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			return l
		}
	}
	single, cluster := redistest.New(t), redistest.NewCluster(t)
	return []backend{
		{"local", func(t *testing.T, opts ...lock.Option) lock.Locker { return lock.NewLocal(opts...) }},
		{"redis", fromDB(single)},
		{"cluster", fromDB(cluster)},
		{"redlock", func(t *testing.T, opts ...lock.Option) lock.Locker {
			l, err := lock.NewRedlock(rlClients, append([]lock.Option{lock.WithPrefix(rlPrefix + t.Name() + ":")}, opts...)...)
			if err != nil {
				t.Fatalf("NewRedlock: %v", err)
			}
			return l
		}},
	}
}
