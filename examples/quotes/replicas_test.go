package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/outrigger-dev/outrigger/internal/redistest"
)

// replica is the service running in a child process.
type replica struct {
	name string
	base string
	cmd  *exec.Cmd
	log  string
	done chan error
}

func startReplica(t *testing.T, name string, env ...string) *replica {
	t.Helper()
	return startReplicaAt(t, name, freeAddr(t), env...)
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// startReplicaAt starts a replica listening on addr.
func startReplicaAt(t *testing.T, name, addr string, env ...string) *replica {
	t.Helper()
	var err error
	r := &replica{name: name, base: "http://" + addr, log: filepath.Join(t.TempDir(), name+".log"), done: make(chan error, 1)}
	logf, err := os.Create(r.log)
	require.NoError(t, err)
	r.cmd = exec.Command(os.Args[0])
	r.cmd.Env = append(os.Environ(), "QUOTES_REPLICA=1", "ADDR="+addr, "REPLICA="+name, "LOG_LEVEL=warn")
	r.cmd.Env = append(r.cmd.Env, env...)
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	require.NoError(t, r.cmd.Start())
	go func() {
		r.done <- r.cmd.Wait()
		logf.Close()
	}()
	t.Cleanup(func() {
		_ = r.cmd.Process.Kill()
		<-r.done
		if t.Failed() {
			b, _ := os.ReadFile(r.log)
			t.Logf("--- %s log:\n%s", name, b)
		}
	})
	require.Eventually(t, func() bool {
		code, _ := get(t, r.base+"/readyz", nil)
		return code == http.StatusOK
	}, 60*time.Second, 50*time.Millisecond, "%s not ready", name)
	return r
}

// stop sends SIGTERM and waits for a clean exit.
func (r *replica) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, r.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		require.NoError(t, err, "%s exited badly", r.name)
	case <-time.After(40 * time.Second):
		t.Fatalf("%s did not stop within 40s of SIGTERM", r.name)
	}
}

func (r *replica) latest(t *testing.T, symbol string) (apiQuote, bool) {
	code, body := get(t, r.base+"/v1/quotes/"+symbol, http.Header{"X-Api-Key": {"e2e-reader"}})
	var q apiQuote
	return q, code == http.StatusOK && json.Unmarshal(body, &q) == nil
}

// TestReplicas runs three replicas on the real Redis and PostgreSQL and
// checks what the service promises: every published quote stored exactly
// once even when a replica is killed mid-ingest, every stored quote
// delivered once to live clients on every replica (those of the killed one
// reconnecting to the others), the roll-up run once per
// tick, the rate limit global across replicas, and cached quotes refreshed
// on every replica.
func TestReplicas(t *testing.T) { testReplicas(t) }

// TestReplicasKafka is TestReplicas with the ingest queue on queue/kafka
// (-queue kafka), on a kfake cluster that lives in this test process; the
// replicas connect to it on loopback.
func TestReplicasKafka(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(time.Second))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	testReplicas(t, "QUEUE=kafka", "KAFKA_BROKERS="+strings.Join(c.ListenAddrs(), ","))
}

func testReplicas(t *testing.T, env ...string) {
	if testing.Short() {
		t.Skip("starts three replicas")
	}
	rdb := redistest.New(t)
	dbURL := postgresSchema(t)
	const perFeed = 3000
	const apiLimit = 20
	common := []string{
		"OUTRIGGER_REDIS_ADDR=" + rdb.Addrs[0],
		"DATABASE_URL=" + dbURL,
		"KEY_PREFIX=" + rdb.Prefix,
		fmt.Sprint("API_LIMIT=", apiLimit),
		"ROLLUP_INTERVAL=1s",
	}
	common = append(common, env...)
	feed := append([]string{"FEED_RATE=400", fmt.Sprint("FEED_COUNT=", perFeed)}, common...)
	r1 := startReplica(t, "r1", feed...)
	r2 := startReplica(t, "r2", feed...)
	r3 := startReplica(t, "r3", append([]string{"FEED_RATE=0"}, common...)...)
	live := startLiveCheck(t, r1, r2, r3) // clients on every replica, from the first quote

	// Kill the consumer-only replica while it holds messages.
	require.Eventually(t, func() bool { return scrape(t, r3.base)["quotes_stored_total"] > 0 }, 30*time.Second, 10*time.Millisecond)
	require.NoError(t, r3.cmd.Process.Signal(syscall.SIGKILL))
	<-r3.done
	r3.done <- nil
	require.Eventually(t, func() bool { return live.reconnected(r3) == 3 }, 30*time.Second, 50*time.Millisecond, "r3's live clients did not reconnect")

	t.Run("rate limit is global", func(t *testing.T) {
		var allowed, denied atomic.Int64
		start := time.Now()
		var wg sync.WaitGroup
		for i := range 8 {
			base := []string{r1.base, r2.base}[i%2]
			wg.Go(func() {
				for time.Since(start) < 2*time.Second {
					code, _ := get(t, base+"/v1/quotes/ACME", http.Header{"X-Api-Key": {"e2e-limited"}})
					switch code {
					case http.StatusTooManyRequests:
						denied.Add(1)
					case 0:
					default:
						allowed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start).Seconds()
		bound := float64(apiLimit) + apiLimit*elapsed + 1 // GCRA: burst + rate × elapsed
		t.Logf("allowed %d, denied %d in %.2fs (bound %.0f)", allowed.Load(), denied.Load(), elapsed, bound)
		require.Positive(t, denied.Load(), "nothing was limited")
		require.LessOrEqual(t, float64(allowed.Load()), bound)
	})

	t.Run("every published quote is stored once", func(t *testing.T) {
		var published float64
		require.Eventually(t, func() bool {
			published = scrape(t, r1.base)["quotes_published_total"] + scrape(t, r2.base)["quotes_published_total"]
			return published == 2*perFeed
		}, 60*time.Second, 100*time.Millisecond, "the feeds did not finish")
		db, err := openDatabase(context.Background(), dbURL)
		require.NoError(t, err)
		defer db.close()
		var rows, distinct int64
		// r3's unacknowledged messages come back after the visibility
		// timeout (Redis) or the group's session timeout (Kafka).
		require.Eventually(t, func() bool {
			rows, distinct, err = db.countQuotes(context.Background())
			return err == nil && rows >= int64(published)
		}, 60*time.Second, 200*time.Millisecond, "stored %d of %v", rows, published)
		require.Equal(t, int64(published), rows)
		require.Equal(t, rows, distinct)
	})

	t.Run("live clients on every replica get every stored quote once", func(t *testing.T) {
		db, err := openDatabase(context.Background(), dbURL)
		require.NoError(t, err)
		defer db.close()
		live.verify(t, db)
		live.stop()
	})

	t.Run("roll-up runs once per tick", func(t *testing.T) {
		type run struct {
			Tick    time.Time `json:"tick"`
			Node    string    `json:"node"`
			Skipped bool      `json:"skipped"`
		}
		// Under load a run can outlast several 1s ticks (those are
		// skipped): wait for three runs rather than assume them.
		var runs []run
		require.Eventually(t, func() bool {
			code, body := get(t, r1.base+"/admin/jobs/rollup/history?n=1000", nil)
			runs = nil
			if code != http.StatusOK || json.Unmarshal(body, &runs) != nil {
				return false
			}
			n := 0
			for _, r := range runs {
				if !r.Skipped {
					n++
				}
			}
			return n >= 3
		}, 60*time.Second, 200*time.Millisecond, "fewer than 3 roll-up runs")
		ticks := map[time.Time]string{}
		nodes := map[string]int{}
		skipped := 0
		for _, r := range runs {
			if r.Skipped {
				skipped++
				continue
			}
			prev, dup := ticks[r.Tick]
			require.False(t, dup, "tick %v ran on %s and %s", r.Tick, prev, r.Node)
			ticks[r.Tick] = r.Node
			nodes[r.Node]++
		}
		t.Logf("%d roll-up runs, by replica: %v; %d ticks skipped (a run still going)", len(ticks), nodes, skipped)
		require.GreaterOrEqual(t, len(ticks), 3)
	})

	t.Run("a newer quote reaches every replica's cache", func(t *testing.T) {
		var old apiQuote
		require.Eventually(t, func() bool {
			a, ok1 := r1.latest(t, "ACME")
			b, ok2 := r2.latest(t, "ACME")
			old = a
			return ok1 && ok2 && a == b
		}, 20*time.Second, 50*time.Millisecond, "replicas disagree on ACME")
		post(t, r1.base+"/admin/feed/burst?n=400") // ~50 of them ACME
		for _, r := range []*replica{r1, r2} {
			require.Eventually(t, func() bool {
				q, ok := r.latest(t, "ACME")
				return ok && q.TS.After(old.TS)
			}, 20*time.Second, 50*time.Millisecond, "%s still serves the old ACME quote", r.name)
		}
	})

	r1.stop(t)
	r2.stop(t)
}
