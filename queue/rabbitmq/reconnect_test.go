package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/queue"
)

// testVhost creates a vhost of its own (so closing its connections from the
// broker side touches nobody else) and returns its URL; it is deleted, with
// its queues, at cleanup.
func testVhost(t *testing.T) (vhost, amqpURL string) {
	t.Helper()
	needBroker(t)
	vhost = randomName("outrigger-test-")
	rabbitmqctl(t, "add_vhost", vhost)
	t.Cleanup(func() { rabbitmqctl(t, "delete_vhost", vhost) })
	rabbitmqctl(t, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
	u, err := url.Parse(brokerURL())
	require.NoError(t, err)
	u.Path = "/" + vhost
	return vhost, u.String()
}

// TestReconnect force-closes the queue's connections from the broker side
// (rabbitmqctl close_all_connections) while producers and consumers run,
// and checks with a set that no confirmed message is lost, that a message
// whose handler was running when the connection died is redelivered, and
// that consumers resume. With OUTRIGGER_LONG=1 it closes them 10 times
// instead of 3.
func TestReconnect(t *testing.T) {
	for _, qt := range []QueueType{Classic, Quorum} {
		t.Run("type="+string(qt), func(t *testing.T) { testReconnect(t, qt) })
	}
}

func testReconnect(t *testing.T, qt QueueType) {
	vhost, u := testVhost(t)
	rounds := 3
	if os.Getenv("OUTRIGGER_LONG") != "" {
		rounds = 10
	}
	ctx := context.Background()
	q, err := New(ctx, Config{URL: u, QueueType: qt, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 500 * time.Millisecond}, "faults")
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })

	// A message whose handler is running when the connection dies: its ack
	// is lost with the channel, so the broker must deliver it again.
	held, err := q.Publish(ctx, []byte("held"))
	require.NoError(t, err)
	heldRunning := make(chan struct{})
	var heldRelease atomic.Bool

	var mu sync.Mutex
	seen := map[string]int{}
	var consumed atomic.Int64
	cctx, stopConsumer := context.WithCancel(ctx)
	consumeDone := make(chan error, 1)
	go func() {
		consumeDone <- q.Consume(cctx, func(ctx context.Context, m *queue.Message) error {
			if m.ID == held && !heldRelease.Load() {
				select {
				case <-heldRunning:
				default:
					close(heldRunning)
				}
				// Run until the connection was lost, then "succeed": the ack
				// cannot reach the broker any more.
				for !heldRelease.Load() {
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(2 * time.Millisecond):
					}
				}
			}
			mu.Lock()
			seen[m.ID]++
			mu.Unlock()
			consumed.Add(1)
			return nil
		}, queue.Concurrency(8))
	}()
	<-heldRunning

	// Producers: every ID whose Publish returned nil must be consumed.
	var confirmed sync.Map
	var published, failed atomic.Int64
	pctx, stopProducers := context.WithCancel(ctx)
	var pwg sync.WaitGroup
	for g := range 4 {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			for i := 0; pctx.Err() == nil; i++ {
				c, cancel := context.WithTimeout(pctx, 10*time.Second)
				id, err := q.Publish(c, []byte(fmt.Sprintf("%d-%d", g, i)))
				cancel()
				if err != nil {
					if pctx.Err() == nil {
						failed.Add(1)
					}
					continue
				}
				confirmed.Store(id, true)
				published.Add(1)
			}
		}()
	}

	for r := range rounds {
		base := consumed.Load()
		require.Eventually(t, func() bool { return consumed.Load() >= base+200 }, 30*time.Second, time.Millisecond,
			"round %d: consumers made no progress", r)
		drops := q.cm.dropped()
		rabbitmqctl(t, "close_all_connections", "--vhost", vhost, "outrigger fault test")
		require.Eventually(t, func() bool { return q.cm.dropped() > drops }, 30*time.Second, time.Millisecond,
			"round %d: the connection was not seen closing", r)
		heldRelease.Store(true)
	}
	// Consumers resumed after the last drop.
	base := consumed.Load()
	require.Eventually(t, func() bool { return consumed.Load() >= base+200 }, 30*time.Second, time.Millisecond,
		"consumers did not resume after the last reconnect")
	stopProducers()
	pwg.Wait()

	var want []string
	confirmed.Range(func(k, _ any) bool { want = append(want, k.(string)); return true })
	want = append(want, held)
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, id := range want {
			if seen[id] == 0 {
				return false
			}
		}
		return true
	}, 60*time.Second, 10*time.Millisecond, "confirmed messages lost")
	stopConsumer()
	require.NoError(t, <-consumeDone)

	mu.Lock()
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	mu.Unlock()
	t.Logf("%d connection drops: %d publishes confirmed, %d failed with an error (may or may not be queued), %d handled, %d duplicates",
		q.cm.dropped(), published.Load(), failed.Load(), consumed.Load(), dups)
	assert.GreaterOrEqual(t, q.cm.dropped(), int64(rounds))
	mu.Lock()
	// Its first run finished after its channel died (the ack was lost), so
	// the broker delivered it again.
	assert.GreaterOrEqual(t, seen[held], 2, "the message in flight during the drop was redelivered")
	mu.Unlock()
}

// TestPublishErrorsWhileDown keeps the broker refusing the queue's
// connections (permissions revoked, connections closed) and checks that
// Publish fails instead of dropping the message, then that it works again
// once the broker accepts connections.
func TestPublishErrorsWhileDown(t *testing.T) {
	vhost, u := testVhost(t)
	ctx := context.Background()
	q, err := New(ctx, Config{URL: u, QueueType: Classic, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 200 * time.Millisecond}, "down")
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })
	_, err = q.Publish(ctx, []byte("before"))
	require.NoError(t, err)

	rabbitmqctl(t, "clear_permissions", "-p", vhost, "guest")
	rabbitmqctl(t, "close_all_connections", "--vhost", vhost, "outrigger fault test")
	require.Eventually(t, func() bool { return q.cm.dropped() >= 1 }, 30*time.Second, time.Millisecond)
	for range 3 {
		c, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err := q.Publish(c, []byte("while down"))
		cancel()
		require.Error(t, err, "a publish with no broker must fail")
		assert.True(t, errors.Is(err, context.DeadlineExceeded), "got %v, want a deadline error", err)
	}
	rabbitmqctl(t, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
	var id string
	require.Eventually(t, func() bool {
		c, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		id, err = q.Publish(c, []byte("after"))
		return err == nil
	}, 30*time.Second, 10*time.Millisecond, "publish after the broker is back: %v", err)
	st, err := q.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(2), st.Ready, "before and after, nothing of the failed publishes")
	assert.NotEmpty(t, id)
}
