package queuetest

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/queue"
)

type hookCtxKey struct{}

// testHooks: every backend calls the publish and process hooks, carries
// the headers OnPublish adds to the consumer (as trace context is carried),
// hands the handler the context OnProcess returned, and reports each
// outcome.
func testHooks(t *testing.T, b *suite) {
	var mu sync.Mutex
	published := map[string]string{} // id -> the publish ctx's value
	outcomes := map[string][]queue.Outcome{}
	var procCtxOK, hdrOK int
	h := queue.Hooks{
		OnPublish: func(ctx context.Context, _ string, headers map[string]string) context.Context {
			headers["x-trace"] = "t-" + headers["n"]
			return context.WithValue(ctx, hookCtxKey{}, "pub")
		},
		OnPublished: func(ctx context.Context, _, id string, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				v, _ := ctx.Value(hookCtxKey{}).(string)
				published[id] = v
			}
		},
		OnProcess: func(ctx context.Context, _ string, m *queue.Message) context.Context {
			mu.Lock()
			defer mu.Unlock()
			if m.Headers["x-trace"] == "t-"+m.Headers["n"] {
				hdrOK++
			}
			return context.WithValue(ctx, hookCtxKey{}, "proc:"+m.ID)
		},
		OnProcessed: func(ctx context.Context, _ string, m *queue.Message, d time.Duration, err error, o queue.Outcome) {
			mu.Lock()
			defer mu.Unlock()
			outcomes[m.ID] = append(outcomes[m.ID], o)
		},
	}
	q := b.newQueue(t, queue.WithHooks(h))
	ctx := context.Background()
	var ids []string
	for i := range 5 {
		id, err := q.Publish(ctx, []byte("m"+strconv.Itoa(i)), queue.WithHeaders(map[string]string{"n": strconv.Itoa(i)}))
		require.NoError(t, err)
		ids = append(ids, id)
	}
	bad, err := q.Publish(ctx, []byte("bad"), queue.WithHeaders(map[string]string{"n": "bad"}))
	require.NoError(t, err)
	StartConsumer(t, q, func(ctx context.Context, m *queue.Message) error {
		mu.Lock()
		if ctx.Value(hookCtxKey{}) == "proc:"+m.ID {
			procCtxOK++
		}
		mu.Unlock()
		if string(m.Body) == "bad" {
			return queue.Permanent(errors.New("bad"))
		}
		return nil
	}, queue.Concurrency(2))
	WaitStats(t, q, func(s queue.Stats) bool { return s.Dead == 1 && Empty(s) }, "all settled")
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(outcomes) == 6
	}, 10*time.Second, 5*time.Millisecond, "OnProcessed for every message")
	mu.Lock()
	defer mu.Unlock()
	for _, id := range append(ids, bad) {
		assert.Equal(t, "pub", published[id], "OnPublished of %s with OnPublish's context", id)
	}
	for _, id := range ids {
		assert.Equal(t, []queue.Outcome{queue.OutcomeAck}, outcomes[id], id)
	}
	assert.Equal(t, []queue.Outcome{queue.OutcomeDeadLetter}, outcomes[bad])
	assert.Equal(t, 6, hdrOK, "headers added by OnPublish reach the consumer")
	assert.Equal(t, 6, procCtxOK, "the handler gets OnProcess's context")
}

// testHooksConcurrentContexts: with an OnProcess that derives a context per
// message (as a tracing hook does), handlers running at the same time each
// keep a live context: starting one message's handler does not cancel
// another's.
func testHooksConcurrentContexts(t *testing.T, b *suite) {
	const n, conc = 16, 8
	q := b.newQueue(t, queue.WithHooks(queue.Hooks{
		OnProcess: func(ctx context.Context, _ string, m *queue.Message) context.Context {
			return context.WithValue(ctx, hookCtxKey{}, m.ID)
		},
	}))
	ctx := context.Background()
	for i := range n {
		_, err := q.Publish(ctx, []byte("m"+strconv.Itoa(i)))
		require.NoError(t, err)
	}
	var mu sync.Mutex
	running, done := 0, 0
	all := make(chan struct{}) // closed when conc handlers run at once
	var cancelled []string
	StartConsumer(t, q, func(ctx context.Context, m *queue.Message) error {
		mu.Lock()
		running++
		if running == conc {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
		case <-time.After(5 * time.Second): // fewer ran at once: check anyway
		}
		// Every handler checks its ctx after the others have started.
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		if ctx.Err() != nil {
			cancelled = append(cancelled, m.ID)
		}
		done++
		return nil
	}, queue.Concurrency(conc))
	WaitStats(t, q, func(s queue.Stats) bool { return Empty(s) }, "all settled")
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return done >= n
	}, 20*time.Second, 5*time.Millisecond, "every handler returned")
	mu.Lock()
	defer mu.Unlock()
	assert.Empty(t, cancelled, "handlers whose ctx was cancelled while they ran")
}
