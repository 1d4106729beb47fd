package rabbitmq

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/queue"
	"github.com/outrigger-dev/outrigger/queue/queuetest"
)

// brokerURL is the test broker: OUTRIGGER_RABBITMQ_URL, or the local one.
func brokerURL() string {
	if u := os.Getenv("OUTRIGGER_RABBITMQ_URL"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// needBroker skips the test when RabbitMQ is unreachable, or fails it when
// CI is set (CI must run these tests).
func needBroker(t testing.TB) {
	t.Helper()
	conn, err := amqp.DialConfig(brokerURL(), amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
	if err == nil {
		_ = conn.Close()
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("RabbitMQ unreachable at %s with CI set: %v", brokerURL(), err)
	}
	t.Skipf("RabbitMQ unreachable at %s (set CI to make this a failure): %v", brokerURL(), err)
}

func randomName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// deleteQueues deletes q's broker objects through a connection of its own
// (q may be closed already).
func deleteQueues(t testing.TB, url string, q *Queue) {
	t.Helper()
	names := []string{q.name, q.dead}
	q.delayMu.Lock()
	for _, d := range q.delays {
		names = append(names, d.name)
	}
	q.delayMu.Unlock()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Errorf("cleanup: dial: %v", err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Errorf("cleanup: channel: %v", err)
		return
	}
	for _, n := range names {
		if _, err := ch.QueueDelete(n, false, false, false); err != nil {
			t.Errorf("cleanup: delete %s: %v", n, err)
			return
		}
	}
}

// newTestQueue makes a queue under a unique prefix, closed and deleted at
// the end of the test.
func newTestQueue(t testing.TB, cfg Config, name string, opts ...queue.Option) *Queue {
	t.Helper()
	needBroker(t)
	if cfg.URL == "" {
		cfg.URL = brokerURL()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts = append([]queue.Option{queue.WithPrefix(randomName("outrigger-test-") + ".")}, opts...)
	q, err := New(ctx, cfg, name, opts...)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = q.Close()
		deleteQueues(t, cfg.URL, q)
	})
	return q
}

// rabbitCaps is what the broker gives of the contract.
var rabbitCaps = queuetest.Capabilities{Dedup: false, MaxLen: false}

func contractQueue(qt QueueType) queuetest.NewQueue {
	return func(t *testing.T, name string, opts ...queue.Option) queue.Queue {
		return newTestQueue(t, Config{QueueType: qt}, name, opts...)
	}
}

// TestContract runs the shared queue contract suite on classic and quorum
// queues.
func TestContract(t *testing.T) {
	needBroker(t)
	for _, qt := range []QueueType{Classic, Quorum} {
		t.Run("type="+string(qt), func(t *testing.T) {
			t.Parallel()
			queuetest.Run(t, contractQueue(qt), rabbitCaps)
		})
	}
}

// TestNoGoroutineLeaks runs part of the suite serially with a leak check.
func TestNoGoroutineLeaks(t *testing.T) {
	needBroker(t)
	queuetest.RunLeakCheck(t, contractQueue(Classic), rabbitCaps)
}

// rabbitmqctl runs the broker's admin tool (the fault tests need it).
func rabbitmqctl(t testing.TB, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("rabbitmqctl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("rabbitmqctl not found with CI set: %v", err)
		}
		t.Skipf("rabbitmqctl not found: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, append([]string{"-q"}, args...)...).CombinedOutput()
	require.NoError(t, err, "rabbitmqctl %s: %s", strings.Join(args, " "), out)
	return string(out)
}
