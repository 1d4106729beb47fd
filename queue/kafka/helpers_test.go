package kafka

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/goleak"

	"github.com/outrigger-dev/outrigger/queue"
)

// EnvBrokers names a real Kafka cluster ("host:port,host:port") to run the
// tests against instead of the in-process kfake cluster. Fault tests that
// need kfake's controls still run on kfake.
const EnvBrokers = "OUTRIGGER_KAFKA_BROKERS"

var (
	sharedOnce    sync.Once
	sharedCluster *kfake.Cluster
)

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedCluster != nil {
		sharedCluster.Close()
	}
	os.Exit(code)
}

// newCluster starts a kfake cluster of n brokers for one test, on loopback,
// closed at cleanup. Groups accept short session timeouts, so that tests of
// dead consumers are quick.
func newCluster(t testing.TB, n int, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{
		kfake.NumBrokers(n),
		kfake.GroupMinSessionTimeout(100 * time.Millisecond),
	}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// testBrokers returns OUTRIGGER_KAFKA_BROKERS, or the addresses of a kfake
// cluster shared by the test binary.
func testBrokers(t testing.TB) []string {
	t.Helper()
	if b := os.Getenv(EnvBrokers); b != "" {
		return strings.Split(b, ",")
	}
	sharedOnce.Do(func() {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(100*time.Millisecond))
		if err != nil {
			panic(err)
		}
		sharedCluster = c
	})
	return sharedCluster.ListenAddrs()
}

func randomName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// testConfig is a config for tests: few partitions, quick commits and a
// short session (consumers that die give their partitions up quickly).
func testConfig(brokers []string) Config {
	return Config{
		Brokers:           brokers,
		Partitions:        3,
		CommitInterval:    50 * time.Millisecond,
		SessionTimeout:    3 * time.Second,
		HeartbeatInterval: 100 * time.Millisecond,
		RebalanceTimeout:  10 * time.Second,
	}
}

// newTestQueue makes a queue under a unique prefix; its topics and group
// are deleted and it is closed at cleanup (after the consumers the test
// started, which register their cleanups later).
func newTestQueue(t testing.TB, cfg Config, name string, opts ...queue.Option) *Queue {
	t.Helper()
	if len(cfg.Brokers) == 0 {
		cfg.Brokers = testBrokers(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts = append([]queue.Option{queue.WithPrefix(randomName("outrigger-test-") + ".")}, opts...)
	q, err := New(ctx, cfg, name, opts...)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		q.stopConsumers()
		if err := q.Delete(ctx); err != nil {
			t.Logf("cleanup: %v", err)
		}
		_ = q.Close()
	})
	return q
}

// stopConsumers cancels this queue's Consume calls and waits for them.
func (q *Queue) stopConsumers() {
	q.mu.Lock()
	for _, cancel := range q.consumers {
		cancel()
	}
	q.mu.Unlock()
	q.running.Wait()
}

// leakOpts ignore the goroutines of the shared kfake cluster.
var leakOpts = []goleak.Option{
	goleak.IgnoreTopFunction("github.com/twmb/franz-go/pkg/kfake.(*Cluster).run"),
	goleak.IgnoreAnyFunction("github.com/twmb/franz-go/pkg/kfake.(*broker).listen"),
	goleak.IgnoreAnyFunction("github.com/twmb/franz-go/pkg/kfake.(*clientConn).read"),
	goleak.IgnoreAnyFunction("github.com/twmb/franz-go/pkg/kfake.(*clientConn).write"),
}
