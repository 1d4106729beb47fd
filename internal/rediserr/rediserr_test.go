package rediserr_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/rediserr"
	"github.com/outrigger-dev/outrigger/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// errCase is one error produced by a real Redis (or by go-redis talking to
// one) and the class it must get.
type errCase struct {
	name string
	err  func(t *testing.T) error
	want rediserr.Class
	kind string // "" = not checked
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestClassifyRealReplies classifies errors as a real Redis returns them.
// Every case provokes its error for real: scripts that fail, wrong types, a
// paused server, a server loading its data, replicas, a Cluster slot in
// migration.
func TestClassifyRealReplies(t *testing.T) {
	db := redistest.New(t)
	c := db.Client
	cases := []errCase{
		{name: "nil", err: func(*testing.T) error { return nil }, want: rediserr.OK},
		{name: "missing key", want: rediserr.OK, err: func(t *testing.T) error {
			return c.Get(ctxT(t), db.Key("missing")).Err()
		}},
		{name: "script global", want: rediserr.Invalid, kind: "ERR user_script", err: func(t *testing.T) error {
			return c.Eval(ctxT(t), "return never + 1", nil).Err()
		}},
		{name: "script syntax", want: rediserr.Invalid, err: func(t *testing.T) error {
			return c.Eval(ctxT(t), "return (", nil).Err()
		}},
		{name: "script calls wrong type", want: rediserr.Invalid, err: func(t *testing.T) error {
			ctx := ctxT(t)
			k := db.Key("str")
			require.NoError(t, c.Set(ctx, k, "x", 0).Err())
			return c.Eval(ctx, "return redis.call('LPUSH', KEYS[1], 'a')", []string{k}).Err()
		}},
		{name: "script error reply", want: rediserr.Invalid, err: func(t *testing.T) error {
			return c.Eval(ctxT(t), "return redis.error_reply('ERR Error running script: bad')", nil).Err()
		}},
		{name: "wrongtype", want: rediserr.Invalid, kind: "WRONGTYPE", err: func(t *testing.T) error {
			ctx := ctxT(t)
			k := db.Key("str2")
			require.NoError(t, c.Set(ctx, k, "x", 0).Err())
			return c.HGet(ctx, k, "f").Err()
		}},
		{name: "unknown command", want: rediserr.Invalid, err: func(t *testing.T) error {
			return c.Do(ctxT(t), "NOSUCHCOMMAND").Err()
		}},
		{name: "reply of the wrong type", want: rediserr.Invalid, err: func(t *testing.T) error {
			_, err := c.Eval(ctxT(t), "return {1, 2}", nil).Int64()
			return err
		}},
		{name: "reply of the wrong type, wrapped", want: rediserr.Invalid, err: func(t *testing.T) error {
			// a package's context in front of go-redis' message
			_, err := c.Eval(ctxT(t), "return 5", nil).StringSlice()
			return fmt.Errorf("queue: renew leases: %w", err)
		}},
		{name: "reply of the wrong type, joined", want: rediserr.Invalid, err: func(t *testing.T) error {
			_, err := c.Eval(ctxT(t), "return {1}", nil).Text()
			return fmt.Errorf("queue: settle: %w", errors.Join(errors.New("first"), err))
		}},
		{name: "reply that is not a number", want: rediserr.Invalid, err: func(t *testing.T) error {
			_, err := c.Eval(ctxT(t), "return 'abc'", nil).Int64()
			return err
		}},
		{name: "bad reply", want: rediserr.Invalid, kind: "bad reply", err: func(*testing.T) error {
			return fmt.Errorf("lock: acquire: %w", rediserr.BadReply("got %q", "x"))
		}},
		{name: "canceled", want: rediserr.Canceled, kind: "canceled", err: func(t *testing.T) error {
			ctx, cancel := context.WithCancel(ctxT(t))
			cancel()
			return c.Get(ctx, db.Key("k")).Err()
		}},
		{name: "breaker open", want: rediserr.Unavailable, err: func(*testing.T) error {
			return fmt.Errorf("ratelimit: %w", gobreaker.ErrOpenState)
		}},
	}
	run(t, cases)
}

// run checks each case's class and kind.
func run(t *testing.T, cases []errCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.err(t)
			got := rediserr.Classify(err)
			assert.Equalf(t, tc.want, got, "Classify(%v): got %v, want %v", err, got, tc.want)
			if tc.kind != "" {
				assert.Equal(t, tc.kind, rediserr.Kind(err))
			}
			assert.Equal(t, tc.want == rediserr.Unavailable, rediserr.IsUnavailable(err))
			assert.Equal(t, tc.want == rediserr.Invalid, rediserr.IsInvalid(err))
		})
	}
}

// TestClassifyServerStates classifies what servers in transient states
// reply: not there, paused, loading, a replica, a replica without its
// master, busy, out of memory, not allowed in.
func TestClassifyServerStates(t *testing.T) {
	stopped := redistest.StartServer(t)
	require.NoError(t, stopped.Stop())
	paused := redistest.StartServer(t)
	auth := redistest.StartServer(t)
	require.NoError(t, auth.Client(t).ConfigSet(ctxT(t), "requirepass", "secret").Err())
	oom := redistest.StartServer(t, redistest.WithArgs("--maxmemory", "2mb", "--maxmemory-policy", "noeviction"))
	busy := redistest.StartServer(t, redistest.WithArgs("--busy-reply-threshold", "50"))

	cases := []errCase{
		{name: "connection refused", want: rediserr.Unavailable, kind: "network", err: func(t *testing.T) error {
			return stopped.Client(t, func(o *redis.Options) { o.MaxRetries = -1 }).Ping(ctxT(t)).Err()
		}},
		{name: "read timeout", want: rediserr.Unavailable, kind: "network", err: func(t *testing.T) error {
			cl := paused.Client(t, func(o *redis.Options) { o.MaxRetries = -1; o.ReadTimeout = 200 * time.Millisecond })
			ctx := ctxT(t)
			require.NoError(t, cl.Ping(ctx).Err())
			require.NoError(t, paused.Pause())
			defer func() { require.NoError(t, paused.Resume()) }()
			return cl.Get(ctx, "k").Err()
		}},
		{name: "closed client", want: rediserr.Unavailable, err: func(t *testing.T) error {
			cl := paused.Client(t)
			require.NoError(t, cl.Close())
			return cl.Get(ctxT(t), "k").Err()
		}},
		{name: "noauth", want: rediserr.Invalid, kind: "NOAUTH", err: func(t *testing.T) error {
			return auth.Client(t, func(o *redis.Options) { o.MaxRetries = -1 }).Get(ctxT(t), "k").Err()
		}},
		{name: "oom", want: rediserr.Unavailable, kind: "OOM", err: func(t *testing.T) error {
			cl := oom.Client(t)
			ctx := ctxT(t)
			v := strings.Repeat("x", 64<<10)
			for i := range 1000 {
				if err := cl.Set(ctx, fmt.Sprint("k", i), v, 0).Err(); err != nil {
					return err
				}
			}
			t.Fatal("2 MB of maxmemory took 64 MB")
			return nil
		}},
		{name: "busy", want: rediserr.Unavailable, kind: "BUSY", err: func(t *testing.T) error {
			cl := busy.Client(t, func(o *redis.Options) { o.MaxRetries = -1; o.ReadTimeout = 10 * time.Second })
			ctx := ctxT(t)
			var wg sync.WaitGroup
			defer wg.Wait()
			wg.Go(func() { _ = cl.Eval(ctx, "while true do end", nil).Err() })
			defer func() {
				// SCRIPT KILL is allowed while busy; retry until the script runs
				_ = poll(ctx, func() error { return cl.ScriptKill(ctx).Err() })
			}()
			var err error
			_ = poll(ctx, func() error {
				err = cl.Ping(ctx).Err()
				if err == nil {
					return errors.New("not busy yet")
				}
				return nil
			})
			return err
		}},
	}
	run(t, cases)
}

// TestClassifyCallerDeadline: with ContextTimeoutEnabled go-redis turns the
// caller's deadline into a read timeout; ClassifyCtx knows it from ctx.
func TestClassifyCallerDeadline(t *testing.T) {
	s := redistest.StartServer(t)
	cl := s.Client(t, func(o *redis.Options) { o.MaxRetries = -1; o.ContextTimeoutEnabled = true })
	require.NoError(t, cl.Ping(ctxT(t)).Err())
	require.NoError(t, s.Pause())
	defer func() { require.NoError(t, s.Resume()) }()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := cl.Get(ctx, "k").Err()
	require.Error(t, err)
	assert.Equal(t, rediserr.Canceled, rediserr.ClassifyCtx(ctx, err))
	assert.Equal(t, rediserr.Unavailable, rediserr.ClassifyCtx(context.Background(), err))
	assert.Equal(t, rediserr.OK, rediserr.ClassifyCtx(ctx, nil))
}

// TestClassifyReplication classifies what replicas reply: LOADING while a
// replica loads its first sync, READONLY to writes, MASTERDOWN once its
// master is gone (with replica-serve-stale-data no).
func TestClassifyReplication(t *testing.T) {
	primary := redistest.StartServer(t, redistest.WithArgs("--repl-diskless-sync-delay", "0"))
	// 100 µs per key and events processed every KiB: a 20,000-key sync
	// loads for about two seconds, answering LOADING meanwhile
	replica := redistest.StartServer(t, redistest.WithArgs("--key-load-delay", "100",
		"--loading-process-events-interval-bytes", "1024"))
	ctx := ctxT(t)
	pc := primary.Client(t)
	require.NoError(t, pc.Eval(ctx, "for i = 1, 20000 do redis.call('SET', 'k' .. i, i) end return 1", nil).Err())
	rc := replica.Client(t, func(o *redis.Options) { o.MaxRetries = -1 })

	var loading error
	require.NoError(t, rc.Do(ctx, "REPLICAOF", "127.0.0.1", strings.Split(primary.Addr(), ":")[1]).Err())
	require.NoError(t, poll(ctx, func() error {
		loading = rc.Get(ctx, "k1").Err()
		if redis.IsLoadingError(loading) {
			return nil
		}
		return fmt.Errorf("not loading yet: %v", loading)
	}), "the replica never answered LOADING")
	require.NoError(t, poll(ctx, func() error { return rc.Get(ctx, "k1").Err() }), "the replica never finished loading")
	readonly := rc.Set(ctx, "x", 1, 0).Err()
	// (not set before: a replica that does not serve stale data answers
	// MASTERDOWN rather than LOADING while it loads)
	require.NoError(t, rc.ConfigSet(ctx, "replica-serve-stale-data", "no").Err())
	require.NoError(t, primary.Stop())
	var down error
	require.NoError(t, poll(ctx, func() error {
		down = rc.Get(ctx, "k1").Err()
		if down == nil {
			return errors.New("still served")
		}
		return nil
	}))

	run(t, []errCase{
		{name: "loading", want: rediserr.Unavailable, kind: "LOADING", err: func(*testing.T) error { return loading }},
		{name: "readonly", want: rediserr.Unavailable, kind: "READONLY", err: func(*testing.T) error { return readonly }},
		{name: "masterdown", want: rediserr.Unavailable, kind: "MASTERDOWN", err: func(*testing.T) error { return down }},
	})
}

// TestClassifyCluster classifies what Cluster nodes reply about slots: a
// slot nobody serves (CLUSTERDOWN), a key on another node (MOVED), and a slot
// being migrated (ASK, TRYAGAIN), to a client that does not follow
// redirects.
func TestClassifyCluster(t *testing.T) {
	ctx := ctxT(t)
	empty := redistest.StartServer(t, redistest.WithArgs("--cluster-enabled", "yes"))
	clusterDown := empty.Client(t, func(o *redis.Options) { o.MaxRetries = -1 }).Get(ctx, "k").Err()

	cl := redistest.StartCluster(t, redistest.WithMasters(2))
	src, dst := cl.Masters[0], cl.Masters[1]
	sc := src.Client(t, func(o *redis.Options) { o.MaxRetries = -1 })
	dc := dst.Client(t, func(o *redis.Options) { o.MaxRetries = -1 })
	tag := cl.ShardTag(0)
	a, b := tag+"a", tag+"b"
	slot, err := sc.ClusterKeySlot(ctx, a).Result()
	require.NoError(t, err)
	require.NoError(t, sc.Set(ctx, a, "1", 0).Err())
	moved := dc.Get(ctx, a).Err()

	srcID, err := sc.ClusterMyID(ctx).Result()
	require.NoError(t, err)
	dstID, err := dc.ClusterMyID(ctx).Result()
	require.NoError(t, err)
	require.NoError(t, dc.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", srcID).Err())
	require.NoError(t, sc.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", dstID).Err())
	t.Cleanup(func() {
		ctx := context.Background()
		_ = sc.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", srcID).Err()
		_ = dc.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", srcID).Err()
	})
	ask := sc.Get(ctx, b).Err()
	tryAgain := sc.MGet(ctx, a, b).Err()

	run(t, []errCase{
		{name: "clusterdown", want: rediserr.Unavailable, kind: "CLUSTERDOWN", err: func(*testing.T) error { return clusterDown }},
		{name: "moved", want: rediserr.Unavailable, kind: "MOVED", err: func(*testing.T) error { return moved }},
		{name: "ask", want: rediserr.Unavailable, kind: "ASK", err: func(*testing.T) error { return ask }},
		{name: "tryagain", want: rediserr.Unavailable, kind: "TRYAGAIN", err: func(*testing.T) error { return tryAgain }},
	})
}

// TestReporterOncePerKind: one log line per operation and kind.
func TestReporterOncePerKind(t *testing.T) {
	var r rediserr.Reporter
	bad := rediserr.BadReply("x")
	wrong := fmt.Errorf("wrapped: %w", redisErr("WRONGTYPE Operation against a key holding the wrong kind of value"))
	assert.True(t, r.Report(nil, "m", "allow", bad))
	assert.False(t, r.Report(nil, "m", "allow", bad))
	assert.True(t, r.Report(nil, "m", "allow", wrong))
	assert.True(t, r.Report(nil, "m", "fetch", bad))
	assert.False(t, r.Report(nil, "m", "allow", wrong))
}

// redisErr is a server reply as go-redis returns it, for tests that need no
// server.
type redisErr string

func (e redisErr) Error() string { return string(e) }
func (redisErr) RedisError()     {}

func poll(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
