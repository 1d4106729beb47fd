package kafka

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/queue"
	"github.com/outrigger-dev/outrigger/queue/queuetest"
)

// retryParts reports, over q's running consumers, how many retry-tier
// partitions they own and how many of those franz-go does not fetch.
func retryParts(q *Queue) (owned, paused int) {
	for _, d := range q.drivers() {
		if d.cl == nil {
			continue
		}
		stopped := d.cl.PauseFetchPartitions(nil) // adds nothing, returns what is paused
		d.mu.Lock()
		for t, p := range d.parts {
			if p.tier < 0 || p.revoking || p.gone.Load() {
				continue
			}
			owned++
			for _, part := range stopped[t.topic] {
				if part == t.part {
					paused++
				}
			}
		}
		d.mu.Unlock()
	}
	return owned, paused
}

// pair makes two queues of one name, as two processes would: the first is
// deleted at cleanup, the second only closed.
func pair(t *testing.T, cfg Config, name string) (q, other *Queue) {
	t.Helper()
	prefix := queue.WithPrefix(randomName("outrigger-test-") + ".")
	q = newTestQueue(t, cfg, name, prefix)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	other, err := New(ctx, cfg, name, prefix)
	require.NoError(t, err)
	t.Cleanup(func() { _ = other.Close() })
	return q, other
}

// TestParkRetryPartitions: a consumer stops fetching its empty retry
// partitions as soon as it is assigned them (not one probe interval later:
// the interval here is an hour), and parking never strands a record: its own
// retries resume the partition at once, a backlog written before it joined
// is read, and a delayed message another process writes to a parked
// partition is read after the next probe.
func TestParkRetryPartitions(t *testing.T) {
	tests := []struct {
		name string
		// probe is the prober's period.
		probe time.Duration
		// before publishes through the other process's queue before the
		// consumer starts; after, once its retry partitions are parked.
		before, after int
		// fail makes every message's first attempt fail (a retry of this
		// process).
		fail bool
	}{
		{name: "own retries", probe: time.Hour, after: 5, fail: true},
		{name: "backlog before joining", probe: time.Hour, before: 5},
		{name: "other process's delayed messages", probe: 50 * time.Millisecond, after: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(testBrokers(t))
			cfg.RetryTopics = []time.Duration{100 * time.Millisecond, time.Second}
			q, other := pair(t, cfg, "park")
			q.probeEvery = tt.probe
			ctx := context.Background()
			publish := func(n int) {
				for i := range n {
					_, err := other.Publish(ctx, []byte(strconv.Itoa(i)), queue.WithDelay(100*time.Millisecond))
					require.NoError(t, err)
				}
			}
			publish(tt.before)
			var mu sync.Mutex
			done := map[string]int{} // body -> attempt that succeeded
			queuetest.StartConsumer(t, q, func(_ context.Context, m *queue.Message) error {
				if tt.fail && m.Attempt == 1 {
					return errors.New("first attempt")
				}
				mu.Lock()
				done[string(m.Body)] = m.Attempt
				mu.Unlock()
				return nil
			}, queue.Concurrency(4), queue.Backoff(func(int) time.Duration { return 100 * time.Millisecond }))
			if tt.before == 0 {
				require.Eventually(t, func() bool {
					owned, paused := retryParts(q)
					return owned == len(q.tiers)*int(cfg.Partitions) && paused == owned
				}, 30*time.Second, 10*time.Millisecond, "the idle retry partitions were not parked")
			}
			if tt.after > 0 {
				if tt.fail {
					for i := range tt.after {
						_, err := q.Publish(ctx, []byte(strconv.Itoa(i)))
						require.NoError(t, err)
					}
				} else {
					publish(tt.after)
				}
			}
			want := tt.before + tt.after
			require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(done) == want }, 30*time.Second, 10*time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			for body, attempt := range done {
				if tt.fail {
					require.Equal(t, 2, attempt, "message %s", body)
				}
			}
		})
	}
}
