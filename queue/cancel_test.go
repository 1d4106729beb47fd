package queue_test

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/queue"
	"github.com/outrigger-dev/outrigger/queue/queuetest"
)

// readLog is a go-redis hook that records when each command reading
// stream entries for a consumer (XREADGROUP, XAUTOCLAIM, XCLAIM) was sent.
type readLog struct {
	mu    sync.Mutex
	sent  []time.Time // protected by mu
	names []string    // protected by mu
}

func (*readLog) DialHook(next redis.DialHook) redis.DialHook { return next }

func (l *readLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		l.record(cmd)
		return next(ctx, cmd)
	}
}

func (l *readLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			l.record(c)
		}
		return next(ctx, cmds)
	}
}

func (l *readLog) record(cmd redis.Cmder) {
	switch n := strings.ToLower(cmd.Name()); n {
	case "xreadgroup", "xautoclaim", "xclaim":
		l.mu.Lock()
		l.sent = append(l.sent, time.Now())
		l.names = append(l.names, n)
		l.mu.Unlock()
	}
}

// after returns the names of the reads sent after t.
func (l *readLog) after(t time.Time) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for i, s := range l.sent {
		if s.After(t) {
			out = append(out, l.names[i])
		}
	}
	return out
}

// TestRedisNoReadAfterCancel: once Consume has seen its ctx cancelled it
// starts no read. A read may still start after cancel returns when the
// fetcher checked its ctx just before (at most one); a consumer that
// chooses at random between reading on and noticing the cancel starts
// several.
func TestRedisNoReadAfterCancel(t *testing.T) {
	db := redistest.New(t)
	c := redis.NewClient(&redis.Options{Addr: db.Addrs[0]})
	t.Cleanup(func() { _ = c.Close() })
	rl := new(readLog)
	c.AddHook(rl)
	q, err := queue.NewRedis(c, "noread", queue.WithPrefix(db.Prefix))
	require.NoError(t, err)
	ctx := context.Background()
	worst := 0
	for try := range 20 {
		_, err := q.Publish(ctx, []byte("x"))
		require.NoError(t, err)
		handled := make(chan struct{}, 1)
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- q.Consume(cctx, func(context.Context, *queue.Message) error {
				handled <- struct{}{}
				return nil
			})
		}()
		select {
		case <-handled:
		case <-time.After(30 * time.Second):
			t.Fatal("message not handled")
		}
		time.Sleep(rand.N(400 * time.Millisecond)) // a random moment of the read cycle
		cancel()
		cancelled := time.Now()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Fatal("Consume did not return")
		}
		late := rl.after(cancelled)
		worst = max(worst, len(late))
		assert.LessOrEqual(t, len(late), 1, "try %d: reads started after the cancel: %v", try, late)
	}
	t.Logf("at most %d read(s) started after a cancel, over 20 tries", worst)
}

// backendsWithLogger returns memory and Redis queues logging to rec.
func backendsWithLogger(t *testing.T, rec *queuetest.LogRecorder) map[string]queue.Queue {
	db := redistest.New(t)
	log := slog.New(rec)
	r, err := queue.NewRedis(db.Client, "logs", queue.WithPrefix(db.Prefix), queue.WithLogger(log))
	require.NoError(t, err)
	m := queue.NewMemory("logs", queue.WithLogger(log))
	t.Cleanup(func() { _ = r.Close(); _ = m.Close() })
	return map[string]queue.Queue{"redis": r, "memory": m}
}

// TestConsumeStopIsNotLoggedAsFailure: consumers cancelled right after
// they start (while they create the group, read, move delayed messages),
// many times, log nothing above DEBUG: a clean shutdown is no failure.
func TestConsumeStopIsNotLoggedAsFailure(t *testing.T) {
	rec := queuetest.NewLogRecorder()
	for name, q := range backendsWithLogger(t, rec) {
		t.Run("backend="+name, func(t *testing.T) {
			// A delayed message keeps the mover busy.
			_, err := q.Publish(context.Background(), []byte("later"), queue.WithDelay(time.Hour))
			require.NoError(t, err)
			queuetest.StartStop(t, q, 40)
		})
	}
	rec.CheckQuiet(t)
}

// TestConsumeLogsRealFailure: a consumer whose Redis goes away still says
// so at WARN or above.
func TestConsumeLogsRealFailure(t *testing.T) {
	s := redistest.StartServer(t)
	c := s.Client(t, func(o *redis.Options) {
		o.DialTimeout = 200 * time.Millisecond
		o.MaxRetries = 1
	})
	rec := queuetest.NewLogRecorder()
	q, err := queue.NewRedis(c, "fail", queue.WithPrefix("t:"), queue.WithLogger(slog.New(rec)))
	require.NoError(t, err)
	got := make(chan struct{}, 1)
	cons := queuetest.StartConsumer(t, q, func(context.Context, *queue.Message) error {
		got <- struct{}{}
		return nil
	})
	_, err = q.Publish(context.Background(), []byte("x"))
	require.NoError(t, err)
	<-got
	require.Empty(t, rec.Above(slog.LevelDebug), "nothing to report while Redis is up")
	require.NoError(t, s.Stop())
	require.Eventually(t, func() bool {
		for _, r := range rec.Above(slog.LevelInfo) {
			if strings.Contains(r.Text, "fetch failed") {
				return true
			}
		}
		return false
	}, 20*time.Second, 10*time.Millisecond, "a consumer cut off from Redis did not warn")
	require.NoError(t, s.Start())
	require.NoError(t, cons.Stop(t))
}
