package kafka

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/outrigger-dev/outrigger/queue"
	"github.com/outrigger-dev/outrigger/queue/queuetest"
)

func TestTierFor(t *testing.T) {
	q := &Queue{}
	for _, d := range []time.Duration{time.Second, 10 * time.Second, time.Minute} {
		q.tiers = append(q.tiers, tier{delay: d, topic: tierName(d)})
	}
	tests := []struct {
		delay time.Duration
		want  string
	}{
		{10 * time.Millisecond, "1s"}, // below every tier: the first
		{time.Second, "1s"},
		{9 * time.Second, "1s"},
		{10 * time.Second, "10s"},
		{time.Hour, "1m"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, q.tiers[q.tierFor(tt.delay)].topic, "delay %v", tt.delay)
	}
	for d, want := range map[time.Duration]string{
		500 * time.Millisecond: "500ms", 90 * time.Second: "90s", 2 * time.Hour: "2h", 30 * time.Minute: "30m",
	} {
		assert.Equal(t, want, tierName(d))
	}
}

// TestRetryTopics fails the first message of a key once: the messages
// behind it are handled at once (the partition is not blocked), the failed
// one comes back from its tier's retry topic after its backoff with the
// attempt, the error and its origin in the retry record's headers.
func TestRetryTopics(t *testing.T) {
	cfg := testConfig(testBrokers(t))
	cfg.RetryTopics = []time.Duration{200 * time.Millisecond, 2 * time.Second}
	q := newTestQueue(t, cfg, "retry")
	ctx := context.Background()
	var ids []string
	for _, b := range []string{"a", "b", "c"} {
		id, err := q.Publish(ctx, []byte(b), queue.WithKey("K"))
		require.NoError(t, err)
		ids = append(ids, id)
	}
	const backoff = 300 * time.Millisecond
	type seen struct {
		body    string
		attempt int
		lastErr string
		at      time.Time
	}
	var mu sync.Mutex
	var got []seen
	queuetest.StartConsumer(t, q, func(_ context.Context, m *queue.Message) error {
		mu.Lock()
		got = append(got, seen{string(m.Body), m.Attempt, m.LastError, time.Now()})
		mu.Unlock()
		if string(m.Body) == "a" && m.Attempt == 1 {
			return errors.New("boom")
		}
		return nil
	}, queue.Concurrency(4), queue.Backoff(func(int) time.Duration { return backoff }))
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 4 }, 30*time.Second, 5*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	bodies := []string{got[0].body, got[1].body, got[2].body, got[3].body}
	assert.Equal(t, []string{"a", "b", "c", "a"}, bodies, "b and c do not wait for a's retry")
	assert.Equal(t, 2, got[3].attempt)
	assert.Equal(t, "boom", got[3].lastErr)
	assert.GreaterOrEqual(t, got[3].at.Sub(got[0].at), backoff-5*time.Millisecond, "retried before its backoff")

	// The retry record carries its story.
	r := readOne(t, cfg.Brokers, q.tiers[0].topic)
	h := map[string]string{}
	for _, x := range r.Headers {
		h[x.Key] = string(x.Value)
	}
	assert.Equal(t, ids[0], h[headerID])
	assert.Equal(t, "2", h[headerAttempt])
	assert.Equal(t, "boom", h[headerError])
	assert.Equal(t, q.name, h[headerTopic])
	assert.NotEmpty(t, h[headerPartition])
	assert.Equal(t, "0", h[headerOffset], "a was the key's first message in its partition")
	due, err := strconv.ParseInt(h[headerDue], 10, 64)
	require.NoError(t, err)
	assert.WithinDuration(t, got[0].at.Add(backoff), time.UnixMilli(due), time.Second)
	assert.Equal(t, "K", string(r.Key), "the retry keeps the key")
	queuetest.WaitStats(t, q, func(s queue.Stats) bool { return queuetest.Empty(s) && s.Dead == 0 }, "all done")
}

// TestDelayTiers publishes with delays below, between and above the tiers:
// none is delivered early, and Stats counts them as Delayed meanwhile.
func TestDelayTiers(t *testing.T) {
	cfg := testConfig(testBrokers(t))
	cfg.RetryTopics = []time.Duration{100 * time.Millisecond, 400 * time.Millisecond}
	q := newTestQueue(t, cfg, "delay")
	ctx := context.Background()
	delays := []time.Duration{50 * time.Millisecond, 250 * time.Millisecond, 900 * time.Millisecond, 0}
	start := time.Now()
	want := map[string]time.Duration{}
	for _, d := range delays {
		id, err := q.Publish(ctx, []byte(d.String()), queue.WithDelay(d))
		require.NoError(t, err)
		want[id] = d
	}
	st, err := q.Stats(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(3), st.Delayed)
	assert.Equal(t, int64(1), st.Ready)
	var mu sync.Mutex
	at := map[string]time.Duration{}
	queuetest.StartConsumer(t, q, func(_ context.Context, m *queue.Message) error {
		mu.Lock()
		at[m.ID] = time.Since(start)
		mu.Unlock()
		return nil
	})
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(at) == len(want) }, 30*time.Second, 5*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for id, d := range want {
		assert.GreaterOrEqual(t, at[id], d-2*time.Millisecond, "delay %v delivered early", d)
	}
}

// readOne reads the first record of topic.
func readOne(t *testing.T, brokers []string, topic string) *kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		fs := cl.PollRecords(ctx, 1)
		require.NoError(t, ctx.Err(), "no record in %s", topic)
		if rs := fs.Records(); len(rs) > 0 {
			return rs[0]
		}
	}
}
