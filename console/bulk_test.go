package console_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/console"
	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/queue"
)

// deadLetters makes n dead letters of size bytes each by really running a
// queue whose handler fails them for good, in batches of 1000 messages.
func deadLetters(tb testing.TB, db *redistest.DB, name string, n, size int) *queue.Redis {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	q, err := queue.NewRedis(db.Client, name, queue.WithPrefix(db.Prefix))
	require.NoError(tb, err)
	tb.Cleanup(func() { _ = q.Close() })
	in, err := queue.NewInspector(db.Client, queue.WithPrefix(db.Prefix))
	require.NoError(tb, err)
	pad := bytes.Repeat([]byte("x"), size)
	cctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = q.Consume(cctx, func(ctx context.Context, m *queue.Message) error {
			return queue.Permanent(errors.New("upstream timeout"))
		}, queue.Concurrency(64), queue.Prefetch(1000))
	}()
	for i := 0; i < n; i += 1000 {
		bodies := make([][]byte, min(1000, n-i))
		for j := range bodies {
			bodies[j] = append(fmt.Appendf(nil, "%08d:", i+j), pad...)
		}
		_, err := q.PublishBatch(ctx, bodies)
		require.NoError(tb, err)
	}
	require.Eventually(tb, func() bool {
		qi, err := in.Queue(ctx, name)
		return err == nil && qi.Dead == int64(n)
	}, 3*time.Minute, 50*time.Millisecond, "the dead letters did not all die")
	stop()
	<-done
	return q
}

// TestBulkRequeue10k replays 10,000 dead letters of 1 KiB each (10 MB)
// with one click's request: the handler answers with the count, the work
// is done in Redis in bounded batches (a script call per 500 entries), and
// the process allocates a small fraction of what holding the messages
// would take.
func TestBulkRequeue10k(t *testing.T) {
	const n, size = 10_000, 1024
	db := redistest.New(t)
	deadLetters(t, db, "bulk", n, size)

	cnt := redistest.NewCounter()
	client := db.NewClient(t)
	client.AddHook(cnt)
	in, err := queue.NewInspector(client, queue.WithPrefix(db.Prefix))
	require.NoError(t, err)
	c := mount(t, "/c/", console.Handler(console.Config{Queues: in}))
	c.get("queues/bulk")

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cnt.Reset()
	start := time.Now()
	code, body, _ := c.post("api/queues/bulk/requeue", url.Values{"all": {"1"}})
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, "requeued 10000 dead letters (all)")
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("bulk requeue of %d dead letters of %d bytes: %v, %d round trips, %.1f MB allocated by the test process (client and server)",
		n, size, took, cnt.RoundTrips(), float64(alloc)/1e6)
	// Holding the messages would allocate at least their 10 MB of bodies.
	assert.Less(t, alloc, uint64(n*size/4), "the requeue allocated as if it held the messages")
	assert.GreaterOrEqual(t, cnt.RoundTrips(), int64(n/500), "one script call per batch of 500")
	assert.Less(t, cnt.RoundTrips(), int64(n/500+10))

	qi, err := in.Queue(t.Context(), "bulk")
	require.NoError(t, err)
	assert.Zero(t, qi.Dead)
	assert.Equal(t, int64(n), qi.Ready)
	p, err := in.Messages(t.Context(), "bulk", queue.StateReady, queue.PageOptions{Limit: 1})
	require.NoError(t, err)
	assert.Equal(t, 1, p.Messages[0].Attempt)
	assert.Len(t, p.Messages[0].Body, 9+size, "the body came back whole")
}

// BenchmarkBulkRequeue10k measures the console's replay of 10,000 dead
// letters (1 KiB each); each iteration first makes them die again.
func BenchmarkBulkRequeue10k(b *testing.B) {
	const n, size = 10_000, 1024
	db := redistest.New(b)
	in, err := queue.NewInspector(db.Client, queue.WithPrefix(db.Prefix))
	require.NoError(b, err)
	h := console.Handler(console.Config{Queues: in, Logger: slog.New(slog.DiscardHandler)})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		name := fmt.Sprint("bulk", i)
		deadLetters(b, db, name, n, size)
		req := httpRequest(b, "/api/queues/"+name+"/requeue", "all=1")
		b.StartTimer()
		w := &discard{h: http.Header{}}
		h.ServeHTTP(w, req)
		if w.code != http.StatusOK {
			b.Fatalf("requeue: %d", w.code)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func httpRequest(tb testing.TB, path, form string) *http.Request {
	tb.Helper()
	tok := strings.Repeat("ab", 24)
	req, err := http.NewRequest(http.MethodPost, "http://console.test"+path, strings.NewReader(form+"&csrf="+tok))
	require.NoError(tb, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: "outrigger_console_csrf", Value: tok})
	req.RequestURI = path
	return req
}

// discard is a ResponseWriter that keeps the status only.
type discard struct {
	h    http.Header
	code int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(code int)        { d.code = code }
