package queue_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/rediserr"
	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/queue"
)

// replyEnv is one TestInvalidReplies case's queue, inspector and keys, on
// a client that runs the case's replacement for one script.
type replyEnv struct {
	t    *testing.T
	ctx  context.Context
	q    *queue.Redis
	in   *queue.Inspector
	db   *redistest.DB
	name string
}

func (e *replyEnv) key(k string) string { return e.db.Prefix + "{" + e.name + "}:" + k }

// deadLetter adds a dead letter of message id, as fail.lua does.
func (e *replyEnv) deadLetter(id string) {
	e.t.Helper()
	eid, err := e.db.Client.XAdd(e.ctx, &redis.XAddArgs{Stream: e.key("dead"), Values: []any{"id", id, "a", "3", "body", "x", "e", "boom"}}).Result()
	require.NoError(e.t, err)
	require.NoError(e.t, e.db.Client.HSet(e.ctx, e.key("deadindex"), id, eid).Err())
}

// consume runs Consume with handler until stop says so (or it returns), and
// returns its error.
func (e *replyEnv) consume(handler queue.Handler, stop func() bool, opts ...queue.ConsumeOption) error {
	e.t.Helper()
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.q.Consume(ctx, handler, opts...) }()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-tick.C:
			if stop != nil && stop() {
				cancel()
				stop = nil
			}
		case <-e.ctx.Done():
			e.t.Fatal("Consume did not return")
		}
	}
}

func (e *replyEnv) publish() {
	e.t.Helper()
	_, err := e.q.Publish(e.ctx, []byte(`{}`))
	require.NoError(e.t, err)
}

// TestInvalidReplies: a script that answers with a reply of another shape
// than its header documents (the reply of a script that is not the one we
// ship, or a bug in it) is an error of the Invalid class where it is read:
// returned by the call (Publish, Stats, Requeue, the Inspector), or ending
// Consume (a settle, a lease renewal), or counted and logged once at Error
// level by the background work that has no caller (moving delayed
// messages, leaving the group). Never read as zeros or skipped. Each case
// swaps one script for the wrong-shaped one on the queue's client (Redis
// really runs it), on a single node and on a Cluster.
func TestInvalidReplies(t *testing.T) {
	full := queue.WithHeaders(map[string]string{"k": "v"}) // not the plain form of publish.lua
	cases := []struct {
		name  string // <script>/<what>
		with  string // the script run instead
		op    func(e *replyEnv) error
		want  string // in the error
		logOp string // the op of the Error log line and the Invalid count; "" for the Inspector, which has none
	}{
		// the full form (headers), one result per message
		{name: "publish/too-few", with: "return {}", want: "0 results for 1 messages", logOp: "publish",
			op: func(e *replyEnv) error { _, err := e.q.Publish(e.ctx, []byte("x"), full); return err }},
		{name: "publish/unknown-result", with: "return {'maybe'}", want: `result "maybe"`, logOp: "publish",
			op: func(e *replyEnv) error { _, err := e.q.Publish(e.ctx, []byte("x"), full); return err }},
		{name: "publish/not-an-array", with: "return 1", want: "unexpected type", logOp: "publish",
			op: func(e *replyEnv) error { _, err := e.q.Publish(e.ctx, []byte("x"), full); return err }},
		// the plain form, the entry IDs joined by commas
		{name: "publish/plain/count", with: "return 1", want: "1 (int64), not the entry IDs of 1 messages", logOp: "publish",
			op: func(e *replyEnv) error { _, err := e.q.Publish(e.ctx, []byte("x")); return err }},
		{name: "publish/plain/empty", with: "return ''", want: `"" is not the entry IDs of 1 messages`, logOp: "publish",
			op: func(e *replyEnv) error { _, err := e.q.Publish(e.ctx, []byte("x")); return err }},
		{name: "publish/plain/too-many", with: "return '1-0,2-0'", want: `"1-0,2-0" is not the entry IDs of 1 messages`, logOp: "publish",
			op: func(e *replyEnv) error { _, err := e.q.Publish(e.ctx, []byte("x")); return err }},
		{name: "publish/plain/batch", with: "return '1-0'", want: `"1-0" is not the entry IDs of 2 messages`, logOp: "publish",
			op: func(e *replyEnv) error {
				_, err := e.q.PublishBatch(e.ctx, [][]byte{[]byte("a"), []byte("b")})
				return err
			}},
		{name: "publish/plain/batch-empty-id", with: "return '1-0,'", want: `"1-0," is not the entry IDs of 2 messages`, logOp: "publish",
			op: func(e *replyEnv) error {
				_, err := e.q.PublishBatch(e.ctx, [][]byte{[]byte("a"), []byte("b")})
				return err
			}},
		{name: "stats/short", with: "return {1, 2}", want: "stats.lua: 2 elements", logOp: "stats",
			op: func(e *replyEnv) error { _, err := e.q.Stats(e.ctx); return err }},
		{name: "stats/not-a-number", with: "return {'many', 0, 0, 0, '', '0'}", want: "stats.lua: element 0", logOp: "stats",
			op: func(e *replyEnv) error { _, err := e.q.Stats(e.ctx); return err }},
		{name: "requeue/ids", with: "return 1", want: "unexpected type", logOp: "requeue",
			op: func(e *replyEnv) error { return e.q.Requeue(e.ctx, "m1") }},
		{name: "requeue/all-moved-nothing", with: "return {}", want: "left dead letter", logOp: "requeue",
			op: func(e *replyEnv) error { e.deadLetter("m1"); return e.q.Requeue(e.ctx) }},
		{name: "ack", with: "return 'acked'", want: "ack.lua", logOp: "settle",
			op: func(e *replyEnv) error {
				e.publish()
				return e.consume(func(context.Context, *queue.Message) error { return nil }, nil)
			}},
		{name: "fail", with: "return 2", want: "fail.lua", logOp: "settle",
			op: func(e *replyEnv) error {
				e.publish()
				return e.consume(func(context.Context, *queue.Message) error { return errors.New("again") }, nil)
			}},
		{name: "tally", with: "return 0", want: "tally.lua", logOp: "settle",
			op: func(e *replyEnv) error {
				e.publish()
				return e.consume(func(context.Context, *queue.Message) error { return nil }, nil)
			}},
		{name: "renew", with: "return 5", want: "unexpected type", logOp: "renew",
			op: func(e *replyEnv) error {
				e.publish()
				// the handler runs until Consume gives up on it
				return e.consume(func(ctx context.Context, _ *queue.Message) error { <-ctx.Done(); return ctx.Err() }, nil,
					queue.VisibilityTimeout(300*time.Millisecond), queue.ShutdownTimeout(50*time.Millisecond))
			}},
		{name: "move", with: "return {1}", logOp: "move",
			op: func(e *replyEnv) error {
				return e.consume(func(context.Context, *queue.Message) error { return nil },
					func() bool { return e.q.Counters().Invalid > 0 })
			}},
		{name: "leave", with: "return 'gone'", logOp: "leave",
			op: func(e *replyEnv) error {
				e.publish()
				return e.consume(func(context.Context, *queue.Message) error { return nil },
					func() bool { return e.q.Counters().Acked > 0 })
			}},
		{name: "inspect_info", with: "return {0}", want: "inspect_info.lua: 1 elements",
			op: func(e *replyEnv) error { _, err := e.in.Queue(e.ctx, e.name); return err }},
		{name: "inspect_delayed", with: "return {1, 'm1', 5, 7}", want: "inspect_delayed.lua: element 3",
			op: func(e *replyEnv) error {
				_, err := e.in.Messages(e.ctx, e.name, queue.StateDelayed, queue.PageOptions{})
				return err
			}},
		{name: "inspect_dead/missing-entries", with: "return {'', 1}", want: "0 entries for 1 selected",
			op: func(e *replyEnv) error {
				_, err := e.in.Messages(e.ctx, e.name, queue.StateDead, queue.PageOptions{})
				return err
			}},
		{name: "inspect_dead/bad-entry", with: "return {'', 1, {'x'}}", want: "want a stream entry",
			op: func(e *replyEnv) error {
				_, err := e.in.Messages(e.ctx, e.name, queue.StateDead, queue.PageOptions{})
				return err
			}},
		{name: "inspect_dead/requeue", with: "return {'', 'two'}", want: "inspect_dead.lua: element 1",
			op: func(e *replyEnv) error {
				e.deadLetter("m1")
				_, err := e.in.Requeue(e.ctx, e.name, queue.Selection{All: true})
				return err
			}},
		{name: "inspect_delete", with: "return 1", want: "unexpected type",
			op: func(e *replyEnv) error {
				_, err := e.in.Delete(e.ctx, e.name, queue.Selection{IDs: []string{"m1"}})
				return err
			}},
	}
	for _, mk := range []func(testing.TB) *redistest.DB{redistest.New, redistest.NewCluster} {
		db := mk(t)
		for i, tc := range cases {
			t.Run("cluster="+strconv.FormatBool(db.Cluster)+"/"+tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				script, _, _ := strings.Cut(tc.name, "/")
				src, err := os.ReadFile("scripts/" + script + ".lua")
				require.NoError(t, err)
				swap := redistest.NewScriptSwap()
				swap.Swap(string(src), tc.with)
				c := db.NewClient(t)
				c.AddHook(swap)
				logger, logs := redistest.NewLogs()
				e := &replyEnv{t: t, ctx: ctx, db: db, name: "r" + strconv.Itoa(i)}
				e.q, err = queue.NewRedis(c, e.name, queue.WithPrefix(db.Prefix), queue.WithLogger(logger))
				require.NoError(t, err)
				t.Cleanup(func() { _ = e.q.Close() })
				e.in, err = queue.NewInspector(c, queue.WithPrefix(db.Prefix))
				require.NoError(t, err)

				err = tc.op(e)
				if tc.want != "" {
					require.Error(t, err, "a reply of the wrong shape was accepted")
					assert.True(t, rediserr.IsInvalid(err), "got class %v for %v, want invalid", rediserr.Classify(err), err)
					assert.ErrorContains(t, err, tc.want)
				} else {
					assert.NoError(t, err, "background work does not end Consume")
				}
				if tc.logOp != "" {
					assert.Positive(t, e.q.Counters().Invalid, "counted")
					assert.Len(t, logs.With(slog.LevelError, "op", tc.logOp), 1, "logged once at Error:\n%s", logs)
				}
			})
		}
	}
}
