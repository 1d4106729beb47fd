package kafka

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/outrigger-dev/outrigger/internal/historytest"
	"github.com/outrigger-dev/outrigger/queue"
	"github.com/outrigger-dev/outrigger/queue/queuetest"
)

// TestBrokerUnreachable drops every produce response of a kfake cluster (the
// broker reads the request and never answers): Publish returns its ctx's
// error instead of succeeding or hanging, and goes through again once the
// broker answers.
func TestBrokerUnreachable(t *testing.T) {
	c := newCluster(t, 1)
	cfg := testConfig(c.ListenAddrs())
	// A produce request without an answer is given up after 1s (instead of
	// 10s + 10s) so that the test is short.
	cfg.Opts = []kgo.Opt{kgo.ProduceRequestTimeout(time.Second), kgo.RequestTimeoutOverhead(time.Second)}
	q := newTestQueue(t, cfg, "down")
	ctx := context.Background()
	var dropping atomic.Bool
	dropping.Store(true)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !dropping.Load() {
			return nil, nil, false
		}
		return nil, nil, true // handled, no answer: the client times out
	})
	tctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err := q.Publish(tctx, []byte("lost?"))
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded, "Publish must fail (not succeed, not hang) while the broker does not answer")
	dropping.Store(false)
	at := time.Now()
	id, err := q.Publish(ctx, []byte("after"))
	require.NoError(t, err)
	require.NotEmpty(t, id)
	t.Logf("the next Publish went through %v after the broker answered again", time.Since(at))
}

// TestConnectionLoss closes the consumers' and producers' connections
// (kfake answers fetches and produces by closing the connection) several
// times while messages flow: no acknowledged message is lost and the
// consumers resume.
func TestConnectionLoss(t *testing.T) {
	c := newCluster(t, 1)
	q := newTestQueue(t, testConfig(c.ListenAddrs()), "conn")
	ctx := context.Background()
	var hist historytest.QueueHistory
	var mu sync.Mutex
	seen := map[string]bool{}
	queuetest.StartConsumer(t, q, func(_ context.Context, m *queue.Message) error {
		hist.Dequeue(m.ID)
		mu.Lock()
		seen[m.ID] = true
		mu.Unlock()
		return nil
	}, queue.Concurrency(8))
	var cut atomic.Int64
	var cutting atomic.Bool
	for _, key := range []kmsg.Key{kmsg.Fetch, kmsg.Produce} {
		c.ControlKey(int16(key), func(kmsg.Request) (kmsg.Response, error, bool) {
			c.KeepControl()
			if !cutting.Load() {
				return nil, nil, false
			}
			cut.Add(1)
			return nil, errConnCut, true // closes the connection
		})
	}
	// Publish a steady stream until connections were cut a few times while
	// produce and fetch requests were under way.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				id, err := q.Publish(pctx, []byte(strconv.Itoa(g)+"-"+strconv.Itoa(i)))
				cancel()
				if err != nil {
					hist.Enqueue("unknown-"+strconv.Itoa(g)+"-"+strconv.Itoa(i), historytest.Unknown)
					continue
				}
				hist.Enqueue(id, historytest.OK)
				if i%50 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for windows := 0; windows < 3 || cut.Load() < 3; windows++ {
		require.True(t, time.Now().Before(deadline), "only %d connections cut in %d windows", cut.Load(), windows)
		time.Sleep(150 * time.Millisecond)
		cutting.Store(true)
		time.Sleep(100 * time.Millisecond)
		cutting.Store(false)
	}
	close(stop)
	wg.Wait()
	rep := hist.Check()
	require.Eventually(t, func() bool { return len(hist.Check().Lost) == 0 }, 60*time.Second, 20*time.Millisecond,
		"acknowledged messages not delivered after the connection losses: %s", hist.Check())
	rep = hist.Check()
	assert.Empty(t, rep.Unexpected)
	assert.Positive(t, cut.Load(), "no connection was cut")
	t.Logf("%d connections cut; %s", cut.Load(), rep)
	queuetest.WaitStats(t, q, func(s queue.Stats) bool { return queuetest.Empty(s) }, "drained")
}

type connCut struct{}

func (connCut) Error() string { return "test: connection cut" }

var errConnCut error = connCut{}
