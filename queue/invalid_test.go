package queue_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/queue"
)

// TestInvalidAnswersStopConsume: an answer that means a bug or bad data (a
// queue key holding another type) is not retried forever: Publish returns
// it, Consume returns it promptly, it is counted and logged once at Error.
func TestInvalidAnswersStopConsume(t *testing.T) {
	for _, mk := range []func(testing.TB) *redistest.DB{redistest.New, redistest.NewCluster} {
		db := mk(t)
		t.Run("cluster="+map[bool]string{false: "false", true: "true"}[db.Cluster], func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			logger, logs := redistest.NewLogs()
			q, err := queue.NewRedis(db.Client, "bad", queue.WithPrefix(db.Prefix), queue.WithLogger(logger))
			require.NoError(t, err)
			t.Cleanup(func() { _ = q.Close() })
			stream := db.Prefix + "{bad}:stream" // the layout NewRedis documents
			require.NoError(t, db.Client.Set(ctx, stream, "not a stream", 0).Err())

			_, err = q.Publish(ctx, []byte(`{}`))
			require.Error(t, err)
			var re redis.Error
			assert.True(t, errors.As(err, &re), "Publish: %v is not the Redis reply", err)
			assert.Contains(t, err.Error(), "queue: publish")

			done := make(chan error, 1)
			go func() {
				done <- q.Consume(ctx, func(context.Context, *queue.Message) error { return nil })
			}()
			select {
			case err := <-done:
				require.Error(t, err, "Consume returned nil on an invalid answer")
				assert.True(t, errors.As(err, &re), "Consume: %v is not the Redis reply", err)
				assert.Contains(t, err.Error(), "WRONGTYPE")
			case <-ctx.Done():
				t.Fatal("Consume kept retrying an invalid answer")
			}
			assert.GreaterOrEqual(t, q.Counters().Invalid, int64(2))
			// one line per operation that met the answer: the publish, the
			// consumer's fetch, and its leaving the group as it stopped
			var ops []string
			for _, r := range logs.Records(slog.LevelError) {
				ops = append(ops, r.Attrs["op"])
			}
			assert.Equal(t, []string{"publish", "fetch", "leave"}, ops, "error lines:\n%s", logs)
		})
	}
}

// TestInvalidSettleStopsConsume: a queue key replaced by another type while
// a message is handled stops Consume with the error; nothing is lost from
// Redis' view (the message was never acknowledged).
func TestInvalidSettleStopsConsume(t *testing.T) {
	db := redistest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	q, err := queue.NewRedis(db.Client, "swap", queue.WithPrefix(db.Prefix))
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })
	_, err = q.Publish(ctx, []byte(`{"n":1}`))
	require.NoError(t, err)
	stream := db.Prefix + "{swap}:stream"
	err = q.Consume(ctx, func(ctx context.Context, m *queue.Message) error {
		// someone else's code overwrites the queue's stream
		return db.Client.Set(ctx, stream, "x", 0).Err()
	})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "WRONGTYPE")
	assert.Positive(t, q.Counters().Invalid)
	assert.Zero(t, q.Counters().Acked)
}
