package redistest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) { Main(m) }

func ctxT(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestNewIsolatesAndCleansUp(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	var prefix string
	var addr string
	t.Run("writes", func(t *testing.T) {
		db := New(t)
		other := New(t)
		require.NotEqual(t, db.Prefix, other.Prefix, "two tests share a prefix")
		prefix, addr = db.Prefix, db.Addrs[0]
		for i := range 50 {
			require.NoError(t, db.Client.Set(ctx, db.Key(fmt.Sprint("k", i)), i, 0).Err())
		}
		n, err := db.Client.Exists(ctx, db.Key("k0"), db.Key("k49")).Result()
		require.NoError(t, err)
		require.Equal(t, int64(2), n)
	})
	if prefix == "" {
		t.Skip("no Redis") // the subtest skipped
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	keys, err := c.Keys(ctx, prefix+"*").Result()
	require.NoError(t, err)
	require.Empty(t, keys, "keys left after the test ended")
}

func TestNewPrefixHasNoHashTag(t *testing.T) {
	p := NewPrefix()
	require.True(t, strings.HasPrefix(p, "ot-test:"), "got %q", p)
	require.NotContains(t, p, "{")
	require.NotEqual(t, p, NewPrefix())
}

// TestMissingRedis re-runs this test binary with no reachable Redis and
// checks that a test using the harness skips on a laptop and fails in CI.
func TestMissingRedis(t *testing.T) {
	if os.Getenv("REDISTEST_CHILD") == "1" {
		New(t)
		t.Log("reached Redis")
		return
	}
	port, err := freePort() // nothing listens there
	require.NoError(t, err)
	tests := []struct {
		name     string
		env      []string
		wantFail bool
		wantOut  string
	}{
		{name: "laptop", env: []string{"CI=", EnvRequire + "="}, wantOut: "--- SKIP"},
		{name: "ci", env: []string{"CI=true", EnvRequire + "="}, wantFail: true, wantOut: "Redis is required"},
		{name: "required", env: []string{"CI=", EnvRequire + "=1"}, wantFail: true, wantOut: "Redis is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestMissingRedis$", "-test.v")
			cmd.Env = append(os.Environ(), "REDISTEST_CHILD=1", fmt.Sprintf("%s=127.0.0.1:%d", EnvAddr, port))
			cmd.Env = append(cmd.Env, tc.env...)
			out, err := cmd.CombinedOutput()
			if tc.wantFail {
				require.Error(t, err, "got success, want failure; output:\n%s", out)
			} else {
				require.NoError(t, err, "output:\n%s", out)
			}
			require.Contains(t, string(out), tc.wantOut)
			require.NotContains(t, string(out), "reached Redis")
		})
	}
}

func TestServerFaults(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	s := StartServer(t)
	c := s.Client(t, func(o *redis.Options) {
		o.ReadTimeout = 200 * time.Millisecond
		o.WriteTimeout = 200 * time.Millisecond
		o.MaxRetries = -1
	})
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())

	t.Run("paused server times out", func(t *testing.T) {
		require.NoError(t, s.Pause())
		err := c.Get(ctx, "k").Err()
		require.Error(t, err)
		var ne interface{ Timeout() bool }
		require.True(t, errors.As(err, &ne) && ne.Timeout(), "got %v, want a timeout", err)
		require.NoError(t, s.Resume())
		require.Eventually(t, func() bool { return c.Get(ctx, "k").Val() == "v" }, 10*time.Second, 20*time.Millisecond)
	})

	t.Run("restart empties and answers again", func(t *testing.T) {
		pid := s.Pid()
		require.NoError(t, s.Restart())
		require.NotEqual(t, pid, s.Pid())
		require.Eventually(t, func() bool { return c.Ping(ctx).Err() == nil }, 10*time.Second, 20*time.Millisecond)
		require.ErrorIs(t, c.Get(ctx, "k").Err(), redis.Nil)
	})

	t.Run("stopped refuses, started answers", func(t *testing.T) {
		require.NoError(t, s.Stop())
		require.False(t, s.Running())
		require.Error(t, c.Ping(ctx).Err())
		require.NoError(t, s.Start())
		require.Eventually(t, func() bool { return c.Ping(ctx).Err() == nil }, 10*time.Second, 20*time.Millisecond)
	})

	t.Run("kill leaves no process", func(t *testing.T) {
		pid := s.Pid()
		require.NoError(t, s.Kill())
		require.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH)
		require.NoError(t, s.Start())
	})
}

func TestServerPersistenceSurvivesRestart(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	s := StartServer(t, WithPersistence())
	c := s.Client(t)
	require.NoError(t, c.Set(ctx, "k", "kept", 0).Err())
	require.NoError(t, s.Restart()) // SIGTERM: the AOF is flushed on shutdown
	require.Eventually(t, func() bool { return c.Get(ctx, "k").Val() == "kept" }, 10*time.Second, 20*time.Millisecond)
}

func TestStartServersAreIndependent(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	servers := StartServers(t, 3)
	seen := map[string]bool{}
	for i, s := range servers {
		require.False(t, seen[s.Addr()], "two servers on %s", s.Addr())
		seen[s.Addr()] = true
		require.NoError(t, s.Client(t).Set(ctx, "k", i, 0).Err())
	}
	for i, s := range servers {
		got, err := s.Client(t).Get(ctx, "k").Int()
		require.NoError(t, err)
		require.Equal(t, i, got)
	}
}

func TestSharedClusterSpreadsKeys(t *testing.T) {
	ctx := ctxT(t, 90*time.Second)
	db := NewCluster(t)
	require.True(t, db.Cluster)
	require.Len(t, db.Addrs, 3)
	keys := make([]string, 100)
	for i := range keys {
		keys[i] = db.Key(fmt.Sprint("k", i))
		require.NoError(t, db.Client.Set(ctx, keys[i], i, 0).Err())
	}
	for i, k := range keys {
		got, err := db.Client.Get(ctx, k).Int()
		require.NoError(t, err)
		require.Equal(t, i, got)
	}
	cc := db.Client.(*redis.ClusterClient)
	var mu sync.Mutex // protects perNode: ForEachMaster runs in parallel
	perNode := map[string]int64{}
	require.NoError(t, cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		n, err := c.Keys(ctx, db.Prefix+"*").Result()
		mu.Lock()
		defer mu.Unlock()
		perNode[c.Options().Addr] = int64(len(n))
		return err
	}))
	require.Len(t, perNode, 3)
	for addr, n := range perNode {
		require.Positive(t, n, "master %s holds no key", addr)
	}
	// A hash tag keeps keys in one slot, so multi-key commands work.
	require.NoError(t, db.Client.MSet(ctx, db.Key("{t}a"), 1, db.Key("{t}b"), 2).Err())
}

func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 6-node cluster")
	}
	ctx := ctxT(t, 120*time.Second)
	cl := StartCluster(t, WithReplicas(1))
	require.Len(t, cl.Nodes(), 6)
	c := cl.Client(t)
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())

	// Promote every replica by hand (CLUSTER FAILOVER); the data moves with it.
	for i, reps := range cl.Replicas {
		r := redis.NewClient(&redis.Options{Addr: reps[0].Addr()})
		require.NoError(t, r.Do(ctx, "CLUSTER", "FAILOVER").Err(), "replica of master %d", i)
		require.Eventually(t, func() bool {
			role, err := r.Do(ctx, "ROLE").Slice()
			return err == nil && role[0] == "master"
		}, 30*time.Second, 50*time.Millisecond)
		r.Close()
	}
	require.NoError(t, cl.WaitHealthy(ctx))
	require.Eventually(t, func() bool { return c.Get(ctx, "k").Val() == "v" }, 30*time.Second, 50*time.Millisecond)
}

func TestCounter(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	db := New(t)
	cnt := NewCounter()
	c := db.NewClient(t)
	c.AddHook(cnt)
	require.NoError(t, c.Set(ctx, db.Key("a"), 1, 0).Err())
	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Incr(ctx, db.Key("a"))
		p.Incr(ctx, db.Key("a"))
		p.Get(ctx, db.Key("a"))
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, int64(2), cnt.RoundTrips())
	require.Equal(t, int64(4), cnt.Commands())
	require.Positive(t, cnt.Dials())
	cnt.Reset()
	require.Zero(t, cnt.RoundTrips())
	require.Zero(t, cnt.Commands())
}

func TestRequired(t *testing.T) {
	tests := []struct {
		ci, req string
		want    bool
	}{
		{"", "", false}, {"true", "", true}, {"1", "", true}, {"false", "", false},
		{"", "1", true}, {"", "0", false}, {"", "yes", true},
	}
	for _, tc := range tests {
		t.Run(tc.ci+"/"+tc.req, func(t *testing.T) {
			t.Setenv(EnvCI, tc.ci)
			t.Setenv(EnvRequire, tc.req)
			if got := Required(); got != tc.want {
				t.Errorf("Required() with CI=%q %s=%q: got %v, want %v", tc.ci, EnvRequire, tc.req, got, tc.want)
			}
		})
	}
}

func TestFillPool(t *testing.T) {
	ctx := context.Background()
	s := StartServer(t)
	c := s.Client(t, func(o *redis.Options) { o.PoolSize = 8 })
	require.NoError(t, FillPool(ctx, c, "any{tag}key", 6))
	if got := c.PoolStats().IdleConns; got < 6 {
		t.Fatalf("got %d idle connections, want >= 6", got)
	}
	for _, tc := range []struct{ key, want string }{
		{"plain", "plain"}, {"p:{k}:s", "k"}, {"{}x", "{}x"}, {"a{b}{c}", "b"}, {"a{", "a{"},
	} {
		if got := hashTag(tc.key); got != tc.want {
			t.Errorf("hashTag(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
}
