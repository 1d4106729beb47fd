package kafka

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/queue"
	"github.com/outrigger-dev/outrigger/queue/queuetest"
)

// TestKeyOrder publishes 10 keys × 1,000 messages (each key's in order,
// the keys concurrently) and consumes them at Concurrency(16): every key's
// messages are handled one at a time in publish order, while different
// keys run at the same time.
func TestKeyOrder(t *testing.T) {
	const keys, per = 10, 1000
	q := newTestQueue(t, testConfig(testBrokers(t)), "order")
	ctx := context.Background()
	var wg sync.WaitGroup
	for k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				key := "key-" + strconv.Itoa(k)
				_, err := q.Publish(ctx, []byte(strconv.Itoa(i)), queue.WithKey(key), queue.WithHeaders(map[string]string{"key": key}))
				if !assert.NoError(t, err) {
					return
				}
			}
		}()
	}
	var mu sync.Mutex
	next := make(map[string]int)    // key → next expected body
	running := make(map[string]int) // key → handlers running
	var outOfOrder []string
	var now, peak, overlapped atomic.Int64
	var done atomic.Int64
	queuetest.StartConsumer(t, q, func(_ context.Context, m *queue.Message) error {
		n := now.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		defer now.Add(-1)
		mu.Lock()
		k := m.Headers["key"]
		running[k]++
		if running[k] > 1 {
			overlapped.Add(1)
		}
		i, _ := strconv.Atoi(string(m.Body))
		if i != next[k] {
			outOfOrder = append(outOfOrder, fmt.Sprintf("%s: got %d, want %d", k, i, next[k]))
		}
		next[k] = i + 1
		mu.Unlock()
		time.Sleep(50 * time.Microsecond) // long enough for keys to overlap
		mu.Lock()
		running[k]--
		mu.Unlock()
		done.Add(1)
		return nil
	}, queue.Concurrency(16))
	wg.Wait()
	require.Eventually(t, func() bool { return done.Load() >= keys*per }, 60*time.Second, 10*time.Millisecond,
		"handled %d of %d", done.Load(), keys*per)
	mu.Lock()
	defer mu.Unlock()
	assert.Empty(t, outOfOrder, "messages of a key handled out of publish order")
	assert.Zero(t, overlapped.Load(), "two messages of one key handled at once")
	assert.Greater(t, peak.Load(), int64(1), "different keys never ran concurrently")
	for k := range keys {
		assert.Equal(t, per, next["key-"+strconv.Itoa(k)], "key-%d", k)
	}
	t.Logf("%d messages, at most %d handlers at once", keys*per, peak.Load())
}
