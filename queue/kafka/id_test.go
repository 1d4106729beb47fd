package kafka

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/queue"
	"github.com/outrigger-dev/outrigger/queue/queuetest"
)

// TestPositionIDs: every way of publishing returns the ID of the position
// the broker gave the record, "<topic>/<partition>/<offset>", the consumer
// sees the same ID, and no original record carries an ID header.
func TestPositionIDs(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(testBrokers(t))
	q := newTestQueue(t, cfg, "ids")
	ids := map[string]string{} // ID -> body
	publish := func(body string, opts ...queue.PublishOption) {
		t.Helper()
		id, err := q.Publish(ctx, []byte(body), opts...)
		require.NoError(t, err)
		ids[id] = body
	}
	publish("plain")
	publish("keyed", queue.WithKey("ACME"))
	publish("headers", queue.WithHeaders(map[string]string{"trace": "1"}))
	publish("delayed", queue.WithDelay(50*time.Millisecond))
	batch, err := q.PublishBatch(ctx, [][]byte{[]byte("batch-0"), []byte("batch-1")})
	require.NoError(t, err)
	for i, id := range batch {
		ids[id] = fmt.Sprintf("batch-%d", i)
	}
	require.Len(t, ids, 6, "IDs are distinct")
	for id, body := range ids {
		var part, off int64
		want := q.name
		if body == "delayed" {
			want = q.tiers[0].topic
		}
		require.Greater(t, len(id), len(want), "ID %q of %q", id, body)
		_, err := fmt.Sscanf(id[len(want):], "/%d/%d", &part, &off)
		require.NoError(t, err, "ID %q of %q", id, body)
		assert.Equal(t, want, id[:len(want)], "ID %q of %q", id, body)
		assert.GreaterOrEqual(t, part, int64(0))
		assert.Less(t, part, int64(cfg.Partitions))
		assert.GreaterOrEqual(t, off, int64(0))
	}

	var mu sync.Mutex
	got := map[string]string{}
	queuetest.StartConsumer(t, q, func(_ context.Context, m *queue.Message) error {
		mu.Lock()
		defer mu.Unlock()
		got[m.ID] = string(m.Body)
		return nil
	})
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == len(ids) }, 30*time.Second, 5*time.Millisecond)
	mu.Lock()
	assert.Equal(t, ids, got, "consumed IDs are the published ones")
	mu.Unlock()

	r := readOne(t, cfg.Brokers, q.name)
	for _, h := range r.Headers {
		assert.NotEqual(t, headerID, h.Key, "an original record carries no ID header")
	}
}
