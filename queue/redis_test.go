package queue_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/queue"
	"github.com/outrigger-dev/outrigger/queue/queuetest"
)

// streamKey is where the queue "name" keeps its messages (see queue.Redis).
func streamKey(prefix, name string) string { return prefix + "{" + name + "}:stream" }

// ghostRead delivers up to n messages to consumer name without processing
// them: a consumer that died right after reading.
func ghostRead(t *testing.T, c redis.UniversalClient, stream, name string, n int) []string {
	t.Helper()
	ctx := context.Background()
	err := c.XGroupCreateMkStream(ctx, stream, "consumers", "0").Err()
	if err != nil && err.Error() != "BUSYGROUP Consumer Group name already exists" {
		require.NoError(t, err)
	}
	res, err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "consumers", Consumer: name, Streams: []string{stream, ">"}, Count: int64(n)}).Result()
	require.NoError(t, err)
	var ids []string
	for _, m := range res[0].Messages {
		ids = append(ids, entryMessageID(m))
	}
	require.Len(t, ids, n)
	return ids
}

// entryMessageID returns the message ID of stream entry e: its "id"
// field, or, for a message published in the plain form (no "id"), the
// entry ID.
func entryMessageID(e redis.XMessage) string {
	if id, ok := e.Values["id"].(string); ok {
		return id
	}
	return e.ID
}

func publishN(t *testing.T, q queue.Queue, n int) []string {
	t.Helper()
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = []byte(strconv.Itoa(i))
	}
	ids, err := q.PublishBatch(context.Background(), bodies)
	require.NoError(t, err)
	return ids
}

// TestRedisReclaim: messages delivered to a consumer that died are taken
// over after the visibility timeout, the whole pending list (the XAUTOCLAIM
// cursor walks past one COUNT), without counting as an attempt.
func TestRedisReclaim(t *testing.T) {
	noLeaks(t, backend{leaks: true})
	db := redistest.New(t)
	q, err := queue.NewRedis(db.Client, "r", queue.WithPrefix(db.Prefix))
	require.NoError(t, err)
	ids := publishN(t, q, 300)
	ghost := ghostRead(t, db.Client, streamKey(db.Prefix, "r"), "ghost", 300)
	require.ElementsMatch(t, ids, ghost)
	st, err := q.Stats(context.Background())
	require.NoError(t, err)
	assert.Equal(t, int64(300), st.InFlight)

	rec := queuetest.NewRecorder()
	start := time.Now()
	queuetest.StartConsumer(t, q, func(_ context.Context, m *queue.Message) error { rec.Add(m); return nil },
		queue.VisibilityTimeout(500*time.Millisecond), queue.Prefetch(16), queue.Concurrency(4))
	require.Eventually(t, func() bool { return rec.Distinct() == 300 }, 30*time.Second, 10*time.Millisecond)
	t.Logf("300 messages of a dead consumer reclaimed and processed %v after the consumer started (visibility 500ms)", time.Since(start))
	for _, id := range ids {
		ms := rec.Get(id)
		require.Len(t, ms, 1)
		assert.Equal(t, 1, ms[0].Attempt, "a reclaim is not a failed attempt")
	}
	queuetest.WaitStats(t, q, func(s queue.Stats) bool { return queuetest.Empty(s) }, "drained")
	require.NoError(t, q.Close())
}

// TestRedisStableNameResumes: a consumer restarting under the same name takes
// its own pending messages back at once, long before the visibility timeout.
func TestRedisStableNameResumes(t *testing.T) {
	db := redistest.New(t)
	q, err := queue.NewRedis(db.Client, "r", queue.WithPrefix(db.Prefix))
	require.NoError(t, err)
	ids := publishN(t, q, 50)
	ghostRead(t, db.Client, streamKey(db.Prefix, "r"), "pod-1", 50)
	rec := queuetest.NewRecorder()
	queuetest.StartConsumer(t, q, func(_ context.Context, m *queue.Message) error {
		rec.Add(m)
		// Uneven handler times: slots free up while others still run, so
		// the pending list is read in several steps, none of which may
		// deliver a running message again.
		time.Sleep(time.Duration(m.Body[len(m.Body)-1]%7) * 3 * time.Millisecond)
		return nil
	}, queue.ConsumerName("pod-1"), queue.VisibilityTimeout(time.Hour), queue.Concurrency(10), queue.Prefetch(10))
	require.Eventually(t, func() bool { return rec.Distinct() == 50 }, 20*time.Second, 5*time.Millisecond)
	queuetest.WaitStats(t, q, queuetest.Empty, "acked")
	for _, id := range ids {
		assert.Len(t, rec.Get(id), 1, "message %s delivered twice to the same consumer", id)
	}
}

// TestRedisLeaseRenewal: a handler running several visibility timeouts is
// not reclaimed by another consumer while its own consumer is alive.
func TestRedisLeaseRenewal(t *testing.T) {
	noLeaks(t, backend{leaks: true})
	db := redistest.New(t)
	q, err := queue.NewRedis(db.Client, "r", queue.WithPrefix(db.Prefix))
	require.NoError(t, err)
	const vis = 300 * time.Millisecond
	var runs atomic.Int32
	done := make(chan struct{})
	h := func(ctx context.Context, m *queue.Message) error {
		if runs.Add(1) > 1 {
			return nil
		}
		time.Sleep(6 * vis)
		close(done)
		return nil
	}
	_, err = q.Publish(context.Background(), []byte("long"))
	require.NoError(t, err)
	queuetest.StartConsumer(t, q, h, queue.VisibilityTimeout(vis))
	// A second consumer that would steal the message without renewals.
	queuetest.StartConsumer(t, q, h, queue.VisibilityTimeout(vis))
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("handler did not finish")
	}
	queuetest.WaitStats(t, q, func(s queue.Stats) bool { return queuetest.Empty(s) }, "acked")
	assert.Equal(t, int32(1), runs.Load(), "the long handler's message ran again elsewhere: lease not renewed")
}

// TestRedisLeaveGroup: a consumer leaves the group when it stops with
// nothing pending; one that still owns messages stays.
func TestRedisLeaveGroup(t *testing.T) {
	db := redistest.New(t)
	q, err := queue.NewRedis(db.Client, "r", queue.WithPrefix(db.Prefix))
	require.NoError(t, err)
	publishN(t, q, 3)
	ghostRead(t, db.Client, streamKey(db.Prefix, "r"), "ghost", 1)
	rec := queuetest.NewRecorder()
	c := queuetest.StartConsumer(t, q, func(_ context.Context, m *queue.Message) error { rec.Add(m); return nil },
		queue.ConsumerName("worker"), queue.VisibilityTimeout(time.Hour))
	require.Eventually(t, func() bool { return rec.Distinct() == 2 }, 20*time.Second, 5*time.Millisecond)
	require.NoError(t, c.Stop(t))
	cs, err := db.Client.XInfoConsumers(context.Background(), streamKey(db.Prefix, "r"), "consumers").Result()
	require.NoError(t, err)
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	assert.Equal(t, []string{"ghost"}, names)
	st, err := q.Stats(context.Background())
	require.NoError(t, err)
	assert.Equal(t, int64(1), st.InFlight)
	assert.Greater(t, st.OldestAge, time.Duration(0))
}

// TestRedisPublishRetryNoDuplicate: go-redis re-sends a publish whose reply
// timed out (the server was paused past ReadTimeout); the server then runs
// both copies, and the queue must hold each message once.
func TestRedisPublishRetryNoDuplicate(t *testing.T) {
	s := redistest.StartServer(t)
	cnt := redistest.NewCounter()
	c := s.Client(t, func(o *redis.Options) {
		o.ReadTimeout = 150 * time.Millisecond
		o.WriteTimeout = 150 * time.Millisecond
		o.MaxRetries = 8
		o.MinRetryBackoff = 20 * time.Millisecond
		o.MaxRetryBackoff = 100 * time.Millisecond
	})
	c.AddHook(cnt)
	q, err := queue.NewRedis(c, "r", queue.WithPrefix("t:"))
	require.NoError(t, err)
	ctx := context.Background()
	_, err = q.Publish(ctx, []byte("warm-up")) // loads the script
	require.NoError(t, err)
	dialsBefore := cnt.Dials()

	var okIDs sync.Map
	var wg sync.WaitGroup
	var failed atomic.Int32
	stop := make(chan struct{})
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
				id, err := q.Publish(ctx, []byte(fmt.Sprintf("%d-%d", g, i)))
				if err != nil {
					failed.Add(1)
					continue
				}
				okIDs.Store(id, true)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	require.NoError(t, s.Pause())
	time.Sleep(400 * time.Millisecond) // past ReadTimeout: clients time out and re-send
	require.NoError(t, s.Resume())
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()

	check := s.Client(t)
	entries, err := check.XRange(ctx, streamKey("t:", "r"), "-", "+").Result()
	require.NoError(t, err)
	seen := map[string]int{}   // by message ID
	bodies := map[string]int{} // by body: each publish has its own
	for _, e := range entries {
		seen[entryMessageID(e)]++
		bodies[e.Values["body"].(string)]++
	}
	for id, n := range seen {
		assert.Equal(t, 1, n, "message %s is in the stream %d times", id, n)
	}
	for b, n := range bodies {
		assert.Equal(t, 1, n, "the message of body %q is in the stream %d times", b, n)
	}
	okIDs.Range(func(k, _ any) bool {
		assert.Contains(t, seen, k.(string), "a publish that returned its ID is not in Redis")
		return true
	})
	redials := cnt.Dials() - dialsBefore
	t.Logf("%d messages, %d publishes failed, %d reconnects (each a timed-out command re-sent)", len(seen), failed.Load(), redials)
	assert.Positive(t, redials, "the pause should have made the client time out and re-send")
}

// TestRedisRestart: Redis stops and starts (with its append-only file)
// while producers and consumers run. Producers see errors, never a silent
// drop: every publish that returned an ID is processed; consumers reconnect
// and finish.
func TestRedisRestart(t *testing.T) {
	s := redistest.StartServer(t, redistest.WithPersistence(), redistest.WithArgs("--appendfsync", "always"))
	opts := func(o *redis.Options) {
		o.DialTimeout = 200 * time.Millisecond
		o.ReadTimeout = 500 * time.Millisecond
		o.MaxRetries = 1
	}
	pc := s.Client(t, opts)
	cc := s.Client(t, opts)
	pq, err := queue.NewRedis(pc, "r", queue.WithPrefix("t:"))
	require.NoError(t, err)
	cq, err := queue.NewRedis(cc, "r", queue.WithPrefix("t:"))
	require.NoError(t, err)
	ctx := context.Background()

	var processed sync.Map
	var nProcessed atomic.Int64
	queuetest.StartConsumer(t, cq, func(_ context.Context, m *queue.Message) error {
		if _, dup := processed.LoadOrStore(m.ID, true); !dup {
			nProcessed.Add(1)
		}
		return nil
	}, queue.VisibilityTimeout(time.Second))

	var ok []string
	var errs int
	restarted := false
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		id, err := pq.Publish(ctx, []byte(strconv.Itoa(i)))
		if err != nil {
			errs++
		} else {
			ok = append(ok, id)
		}
		if i == 300 {
			require.NoError(t, s.Stop())
			// Publishing to a stopped server fails: never a silent success.
			_, err := pq.Publish(ctx, []byte("down"))
			require.Error(t, err)
			errs++
			require.NoError(t, s.Start())
			restarted = true
		}
		if restarted && len(ok) >= 600 {
			break
		}
	}
	require.True(t, restarted)
	t.Logf("%d publishes succeeded, %d failed across the restart", len(ok), errs)
	require.Eventually(t, func() bool { return nProcessed.Load() >= int64(len(ok)) }, 30*time.Second, 10*time.Millisecond,
		"consumers did not finish after the restart")
	for _, id := range ok {
		_, seen := processed.Load(id)
		require.True(t, seen, "message %s was published but never processed", id)
	}
	queuetest.WaitStats(t, pq, queuetest.Empty, "drained after restart")
}

// TestRedisRestartEmpty: Redis comes back empty (no persistence); the
// consumer recreates its group (NOGROUP) and processes new messages.
func TestRedisRestartEmpty(t *testing.T) {
	s := redistest.StartServer(t)
	c := s.Client(t, func(o *redis.Options) { o.DialTimeout = 200 * time.Millisecond })
	q, err := queue.NewRedis(c, "r", queue.WithPrefix("t:"))
	require.NoError(t, err)
	rec := queuetest.NewRecorder()
	queuetest.StartConsumer(t, q, func(_ context.Context, m *queue.Message) error { rec.Add(m); return nil })
	publishN(t, q, 10)
	require.Eventually(t, func() bool { return rec.Distinct() == 10 }, 20*time.Second, 5*time.Millisecond)
	require.NoError(t, s.Restart())
	var ids []string
	require.Eventually(t, func() bool {
		id, err := q.Publish(context.Background(), []byte("after"))
		if err == nil {
			ids = append(ids, id)
		}
		return len(ids) == 10
	}, 20*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { return rec.Distinct() == 20 }, 20*time.Second, 5*time.Millisecond,
		"the consumer did not recover its group")
}

// TestRedisScriptFlush: scripts are reloaded after SCRIPT FLUSH, in
// pipelines too.
func TestRedisScriptFlush(t *testing.T) {
	db := redistest.New(t)
	s := redistest.StartServer(t)
	c := s.Client(t)
	_ = db
	q, err := queue.NewRedis(c, "r", queue.WithPrefix("t:"))
	require.NoError(t, err)
	ctx := context.Background()
	_, err = q.Publish(ctx, []byte("a"))
	require.NoError(t, err)
	require.NoError(t, c.ScriptFlush(ctx).Err())
	_, err = q.Publish(ctx, []byte("b"))
	require.NoError(t, err)
	require.NoError(t, c.ScriptFlush(ctx).Err())
	_, err = q.PublishBatch(ctx, [][]byte{[]byte("c"), []byte("d")})
	require.NoError(t, err)
	rec := queuetest.NewRecorder()
	queuetest.StartConsumer(t, q, func(_ context.Context, m *queue.Message) error { rec.Add(m); return nil })
	require.Eventually(t, func() bool { return rec.Distinct() == 4 }, 20*time.Second, 5*time.Millisecond)
	require.NoError(t, c.ScriptFlush(ctx).Err())
	queuetest.WaitStats(t, q, queuetest.Empty, "acked after a flush")
}

// TestRedisStalledMessageDeadLettered: a message whose consumers keep dying
// on it (delivered more than MaxAttempts times without being settled) is
// dead-lettered when reclaimed, instead of being reclaimed forever.
func TestRedisStalledMessageDeadLettered(t *testing.T) {
	db := redistest.New(t)
	ctx := context.Background()
	q, err := queue.NewRedis(db.Client, "r", queue.WithPrefix(db.Prefix))
	require.NoError(t, err)
	ids := publishN(t, q, 2)
	stream := streamKey(db.Prefix, "r")
	ghostRead(t, db.Client, stream, "crashed-1", 2)
	entries, err := db.Client.XRange(ctx, stream, "-", "+").Result()
	require.NoError(t, err)
	// The first message was reclaimed by two more consumers that died too.
	for _, who := range []string{"crashed-2", "crashed-3"} {
		require.NoError(t, db.Client.XClaim(ctx, &redis.XClaimArgs{Stream: stream, Group: "consumers", Consumer: who, Messages: []string{entries[0].ID}}).Err())
	}
	rec := queuetest.NewRecorder()
	queuetest.StartConsumer(t, q, func(_ context.Context, m *queue.Message) error { rec.Add(m); return nil },
		queue.MaxAttempts(2), queue.VisibilityTimeout(200*time.Millisecond))
	queuetest.WaitStats(t, q, func(s queue.Stats) bool { return queuetest.Empty(s) && s.Dead == 1 }, "the stalling message is dead, the other done")
	assert.Empty(t, rec.Get(ids[0]), "the stalling message must not run again")
	assert.Len(t, rec.Get(ids[1]), 1, "a message reclaimed once runs normally")
	dead, err := q.DeadLetters(ctx, 0)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	assert.Equal(t, ids[0], dead[0].ID)
	assert.Contains(t, dead[0].LastError, "crashed or stalled")
}

// TestRedisPlainPublishEntries: a message with only a body is stored as its
// body alone, its stream entry ID being the ID Publish returned; one with
// headers carries an "id" field of its own. Handlers finishing out of order
// acknowledge in batches the consumer sorts for ack.lua: the stream ends
// empty (what XTRIM did not reach, XDEL did).
func TestRedisPlainPublishEntries(t *testing.T) {
	noLeaks(t, backend{})
	db := redistest.New(t)
	ctx := context.Background()
	q, err := queue.NewRedis(db.Client, "plain", queue.WithPrefix(db.Prefix))
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })
	stream := streamKey(db.Prefix, "plain")

	plain, err := q.Publish(ctx, []byte("p"))
	require.NoError(t, err)
	batch, err := q.PublishBatch(ctx, [][]byte{[]byte("b0"), []byte("b1")})
	require.NoError(t, err)
	withHeaders, err := q.Publish(ctx, []byte("h"), queue.WithHeaders(map[string]string{"k": "v"}))
	require.NoError(t, err)
	xs, err := db.Client.XRange(ctx, stream, "-", "+").Result()
	require.NoError(t, err)
	require.Len(t, xs, 4)
	for i, id := range append([]string{plain}, batch...) {
		assert.Equal(t, id, xs[i].ID, "a plain message's ID is its entry ID")
		assert.Equal(t, []string{"body"}, slices.Collect(maps.Keys(xs[i].Values)), "stored as its body alone")
	}
	assert.Equal(t, withHeaders, xs[3].Values["id"], "a message with headers has an id field")
	assert.NotEqual(t, withHeaders, xs[3].ID)

	// 200 more, handled with random delays by 16 handlers while the middle
	// one is held: the trim cannot pass it, so the entries acknowledged
	// after it must go by XDEL, picked out of settle batches whose IDs
	// finish out of order and lie on both sides of the trim point.
	ids := publishN(t, q, 200)
	release := make(chan struct{})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	rec := queuetest.NewRecorder()
	queuetest.StartConsumer(t, q, func(_ context.Context, m *queue.Message) error {
		if m.ID == ids[100] {
			<-release
		} else {
			time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
		}
		rec.Add(m)
		return nil
	}, queue.Concurrency(16))
	t.Cleanup(free) // registered after the consumer: runs before its stop, also on failure
	xlen := func() int64 {
		n, err := db.Client.XLen(ctx, stream).Result()
		require.NoError(t, err)
		return n
	}
	require.Eventually(t, func() bool { return rec.Distinct() == 203 }, 20*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { return xlen() == 1 }, 20*time.Second, 5*time.Millisecond,
		"acknowledged entries above the held one left in the stream")
	free()
	require.Eventually(t, func() bool { return rec.Distinct() == 204 && xlen() == 0 }, 20*time.Second, 5*time.Millisecond)
	for _, id := range append([]string{plain, withHeaders}, batch...) {
		require.Len(t, rec.Get(id), 1, "message %s handled once, by the ID Publish returned", id)
	}
}
