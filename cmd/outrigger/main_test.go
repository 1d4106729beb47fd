package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/console"
	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/lock"
	"github.com/outrigger-dev/outrigger/queue"
	"github.com/outrigger-dev/outrigger/ratelimit"
	"github.com/outrigger-dev/outrigger/scheduler"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func TestMain(m *testing.M) { redistest.Main(m) }

// scene runs the packages into a known state under db's prefix.
func scene(t *testing.T, db *redistest.DB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	orders, err := queue.NewRedis(db.Client, "orders", queue.WithPrefix(db.Prefix))
	require.NoError(t, err)
	t.Cleanup(func() { _ = orders.Close() })
	for i := range 6 {
		_, err := orders.Publish(ctx, fmt.Appendf(nil, `{"order":%d}`, i))
		require.NoError(t, err)
	}
	var handled atomic.Int64
	cctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = orders.Consume(cctx, func(ctx context.Context, m *queue.Message) error {
			defer handled.Add(1)
			if strings.Contains(string(m.Body), `1}`) || strings.Contains(string(m.Body), `5}`) {
				return queue.Permanent(errors.New("card declined by issuer"))
			}
			if strings.Contains(string(m.Body), `3}`) {
				return queue.Permanent(errors.New("payment gateway timeout"))
			}
			return nil
		}, queue.Concurrency(1), queue.ConsumerName("worker-1"))
	}()
	require.Eventually(t, func() bool { return handled.Load() == 6 }, 30*time.Second, 5*time.Millisecond)
	stop()
	<-done
	emails, err := queue.NewRedis(db.Client, "emails", queue.WithPrefix(db.Prefix))
	require.NoError(t, err)
	for range 2 {
		_, err := emails.Publish(ctx, []byte("welcome"))
		require.NoError(t, err)
	}

	s, err := scheduler.New(db.Client, scheduler.WithNamespace(db.Prefix+"jobs:"), scheduler.WithNodeID("replica-1"),
		scheduler.WithLocation(time.UTC))
	require.NoError(t, err)
	require.NoError(t, s.Cron("nightly-report", "0 3 * * *", func(ctx context.Context, r scheduler.Run) error { return nil }))
	require.NoError(t, s.Cron("hourly-rollup", "@hourly", func(ctx context.Context, r scheduler.Run) error { return nil }))
	require.NoError(t, s.Start(ctx))
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Stop(sctx)
	})
	ji, err := scheduler.NewInspector(db.Client, scheduler.WithNamespace(db.Prefix+"jobs:"))
	require.NoError(t, err)
	require.Eventually(t, func() bool { js, err := ji.Jobs(ctx); return err == nil && len(js) == 2 }, 30*time.Second, 10*time.Millisecond)

	locker, err := lock.New(db.Client, lock.WithPrefix(db.Prefix+"lock:"))
	require.NoError(t, err)
	_, err = locker.TryAcquire(ctx, "reports:daily", time.Minute)
	require.NoError(t, err)

	lim, err := ratelimit.NewRedis(db.Client, ratelimit.PerMinute(10), ratelimit.WithPrefix(db.Prefix+"rl:"))
	require.NoError(t, err)
	for range 3 {
		_, err := lim.Allow(ctx, "user:42")
		require.NoError(t, err)
	}
}

// normalizer replaces what changes from run to run.
type normalizer struct {
	prefix, host, pid string
}

var (
	reOwnerHex = regexp.MustCompile(`\b[0-9a-f]{16}-[0-9a-z]+\b`) // newOwner: process random part, sequence number
	reMsgID    = regexp.MustCompile(`\b[0-9a-f]{12}[0-9a-z]{1,3}\b`)
	reEntry    = regexp.MustCompile(`\b\d{13}-\d+\b`)
	reToken    = regexp.MustCompile(`\b\d{16}\b`)
	reTime     = regexp.MustCompile(`\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?`)
	reClock    = regexp.MustCompile(`\b\d\d:\d\d\b`)
	reDur      = regexp.MustCompile(`\b\d+(ms|s|m\d\ds|h\d\dm|d\d\dh)\b`)
	reJSONDur  = regexp.MustCompile(`"(idle|oldest_age|oldest_dead_age|ttl|reset_after|throughput)": [0-9.e+-]+`)
	reSpaces   = regexp.MustCompile(`  +`)
)

func (n normalizer) apply(s string) string {
	s = strings.ReplaceAll(s, n.prefix, "<prefix>")
	s = reOwnerHex.ReplaceAllString(s, "<hex>")
	s = reEntry.ReplaceAllString(s, "<entry>")
	s = reToken.ReplaceAllString(s, "<token>")
	s = reMsgID.ReplaceAllString(s, "<id>")
	s = reTime.ReplaceAllString(s, "<time>")
	s = reClock.ReplaceAllString(s, "<hh:mm>")
	s = reDur.ReplaceAllString(s, "<dur>")
	s = reJSONDur.ReplaceAllString(s, `"$1": <n>`)
	s = strings.ReplaceAll(s, n.host+":", "<host>:")
	s = regexp.MustCompile(`\b`+regexp.QuoteMeta(n.host)+`\b`).ReplaceAllString(s, "<host>")
	s = regexp.MustCompile(`\b`+n.pid+`\b`).ReplaceAllString(s, "<pid>")
	s = reSpaces.ReplaceAllString(s, "  ") // tables: the columns' widths depend on what was replaced
	return s
}

// TestGolden runs the command on a real scene and compares its output,
// normalized, with testdata/*.golden (go test -update rewrites them).
func TestGolden(t *testing.T) {
	db := redistest.New(t)
	scene(t, db)
	host, _ := os.Hostname()
	n := normalizer{prefix: db.Prefix, host: host, pid: strconv.Itoa(os.Getpid())}
	getenv := func(k string) string {
		switch k {
		case "OUTRIGGER_REDIS_ADDR":
			return db.Addrs[0]
		case "USER":
			return "ops"
		case "OUTRIGGER_AUDIT_KEY":
			return db.Prefix + "audit" // under the test's prefix, cleaned up
		}
		return ""
	}
	p := db.Prefix
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"queue-ls", []string{"queue", "ls", "--prefix", p}},
		{"queue-inspect", []string{"--prefix", p, "queue", "inspect", "orders"}},
		{"queue-dead", []string{"queue", "dead", "orders", "--prefix", p}},
		{"queue-dead-filter-json", []string{"queue", "dead", "orders", "--error", "DECLINED", "--json", "--prefix", p}},
		{"queue-requeue-usage", []string{"queue", "requeue", "orders", "--prefix", p}},
		{"queue-requeue-filter", []string{"queue", "requeue", "orders", "--all", "--error", "declined", "--prefix", p}},
		{"queue-delete-all", []string{"queue", "delete", "orders", "--all", "--prefix", p}},
		{"queue-pause", []string{"queue", "pause", "emails", "--prefix", p}},
		{"queue-ls-after", []string{"queue", "ls", "--prefix", p}},
		{"jobs-ls", []string{"jobs", "ls", "--prefix", p + "jobs:"}},
		{"jobs-history", []string{"jobs", "history", "nightly-report", "--prefix", p + "jobs:"}},
		{"jobs-trigger", []string{"jobs", "trigger", "nightly-report", "--prefix", p + "jobs:"}},
		{"jobs-pause", []string{"jobs", "pause", "hourly-rollup", "--prefix", p + "jobs:"}},
		{"locks-ls", []string{"locks", "ls", "--prefix", p + "lock:"}},
		{"locks-release-wrong-owner", []string{"locks", "release", "reports:daily", "--owner", "nobody", "--prefix", p + "lock:"}},
		{"locks-release", []string{"locks", "release", "reports:daily", "--prefix", p + "lock:"}},
		{"limit-get", []string{"limit", "get", "user:42", "--limit", "10/1m", "--prefix", p + "rl:"}},
		{"limit-get-unknown", []string{"limit", "get", "user:42", "--prefix", p + "rl:"}},
		{"limit-get-json", []string{"limit", "get", "user:42", "--limit", "10/1m", "--json", "--prefix", p + "rl:"}},
		{"limit-reset", []string{"limit", "reset", "user:42", "--prefix", p + "rl:"}},
		{"unknown-command", []string{"bogus", "thing"}},
		{"bad-flag", []string{"queue", "ls", "--nope"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tc.args, &stdout, &stderr, getenv)
			args := strings.Join(tc.args, " ")
			got := n.apply(fmt.Sprintf("$ outrigger %s\nexit %d\n%s--- stderr\n%s", args, code, stdout.String(), stderr.String()))
			path := filepath.Join("testdata", tc.name+".golden")
			if *update {
				require.NoError(t, os.MkdirAll("testdata", 0o755))
				require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
				return
			}
			want, err := os.ReadFile(path)
			require.NoError(t, err, "missing golden file: run go test -update")
			assert.Equal(t, string(want), got)
		})
	}

	// The actions are in the console's audit stream, as the CLI's.
	aud := console.NewAuditor(nil, db.Client, db.Prefix+"audit", 0)
	recs, err := aud.Recent(t.Context(), 200)
	require.NoError(t, err)
	found := 0
	for _, r := range recs {
		if r.Source == "cli" && strings.HasPrefix(r.User, "ops@") && strings.Contains(r.Detail, "orders") {
			found++
		}
	}
	assert.GreaterOrEqual(t, found, 2, "requeue and delete of orders audited")
}

// TestJSONShapes: --json prints what the inspectors return.
func TestJSONShapes(t *testing.T) {
	db := redistest.New(t)
	scene(t, db)
	getenv := func(k string) string {
		switch k {
		case "OUTRIGGER_REDIS_ADDR":
			return db.Addrs[0]
		case "OUTRIGGER_AUDIT_KEY":
			return "-"
		}
		return ""
	}
	var out, errOut bytes.Buffer
	require.Zero(t, run(t.Context(), []string{"queue", "ls", "--json", "--prefix", db.Prefix}, &out, &errOut, getenv), errOut.String())
	var qs []queue.QueueInfo
	require.NoError(t, json.Unmarshal(out.Bytes(), &qs))
	require.Len(t, qs, 2)
	assert.Equal(t, int64(3), qs[1].Dead)
	out.Reset()
	require.Zero(t, run(t.Context(), []string{"locks", "ls", "--json", "--prefix", db.Prefix + "lock:"}, &out, &errOut, getenv))
	var ls []lock.LockInfo
	require.NoError(t, json.Unmarshal(out.Bytes(), &ls))
	require.Len(t, ls, 1)
	assert.Equal(t, os.Getpid(), ls[0].PID)
}

func TestRedisFlag(t *testing.T) {
	for _, tc := range []struct {
		in      string
		cluster bool
		err     bool
	}{
		{in: "127.0.0.1:6379"},
		{in: "a:1,b:2", cluster: true},
		{in: "redis://127.0.0.1:6379/0"},
		{in: "a:1,,b:2", err: true},
		{in: "redis://:x@[bad", err: true},
	} {
		o := &options{redis: tc.in}
		c, err := o.client()
		if tc.err {
			assert.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		_, isCluster := c.(*redis.ClusterClient)
		assert.Equal(t, tc.cluster, isCluster, tc.in)
		_ = c.Close()
	}
}
