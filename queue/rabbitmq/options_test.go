package rabbitmq

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/queue"
)

func TestNewValidation(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		cfg  Config
		qn   string
		opts []queue.Option
		want string
	}{
		{"no url", Config{}, "q", nil, "Config.URL"},
		{"queue type", Config{URL: "amqp://x", QueueType: "stream"}, "q", nil, "Config.QueueType"},
		{"publish channels", Config{URL: "amqp://x", PublishChannels: -1}, "q", nil, "Config.PublishChannels"},
		{"reconnect", Config{URL: "amqp://x", ReconnectMin: time.Second, ReconnectMax: time.Millisecond}, "q", nil, "Config.ReconnectMax"},
		{"empty name", Config{URL: "amqp://x"}, "", nil, "name"},
		{"max len", Config{URL: "amqp://x"}, "q", []queue.Option{queue.MaxLen(-1)}, "MaxLen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := New(ctx, tt.cfg, tt.qn, tt.opts...)
			require.Error(t, err)
			assert.Nil(t, q)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	// An unreachable broker fails New (nothing listens on port 1).
	_, err := New(ctx, Config{URL: "amqp://guest:guest@127.0.0.1:1/"}, "q")
	require.ErrorContains(t, err, "dial")
}

func TestDelayTTL(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want int64
	}{
		{0, 1}, {time.Microsecond, 1}, {10 * time.Millisecond, 10}, {31 * time.Millisecond, 31},
		{33 * time.Millisecond, 34}, {time.Second, 1024}, {time.Minute, 60 * 1024},
	}
	for _, tt := range tests {
		got := delayTTL(tt.in)
		assert.Equal(t, tt.want, got, "delayTTL(%v)", tt.in)
		assert.GreaterOrEqual(t, time.Duration(got)*time.Millisecond, tt.in, "never early")
		assert.LessOrEqual(t, time.Duration(got)*time.Millisecond, tt.in+tt.in/16+time.Millisecond, "at most 1/16 late")
	}
}

// TestMaxLen: the broker bounds the main queue's ready messages.
func TestMaxLen(t *testing.T) {
	for _, qt := range []QueueType{Classic, Quorum} {
		t.Run("type="+string(qt), func(t *testing.T) {
			q := newTestQueue(t, Config{QueueType: qt}, "bounded", queue.MaxLen(2))
			ctx := context.Background()
			// Classic queues refuse exactly at the limit; quorum queues
			// apply it asynchronously and may take a few more first.
			ok := 0
			var err error
			for ok < 50 {
				if _, err = q.Publish(ctx, []byte("x")); err != nil {
					break
				}
				ok++
			}
			require.ErrorIs(t, err, queue.ErrFull)
			if qt == Classic {
				assert.Equal(t, 2, ok, "publishes accepted before ErrFull")
			} else {
				assert.GreaterOrEqual(t, ok, 2, "publishes accepted before ErrFull")
			}
			ids, err := q.PublishBatch(ctx, [][]byte{[]byte("y")})
			require.ErrorIs(t, err, queue.ErrFull)
			assert.Equal(t, []string{""}, ids)
			assert.Equal(t, int64(2), q.Counters().Full)
			if qt != Classic {
				return
			}

			bq := newTestQueue(t, Config{QueueType: qt}, "blocking", queue.MaxLen(1), queue.BlockWhenFull(true))
			_, err = bq.Publish(ctx, []byte("1"))
			require.NoError(t, err)
			tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			_, err = bq.Publish(tctx, []byte("2"))
			cancel()
			require.ErrorIs(t, err, context.DeadlineExceeded)
			published := make(chan error, 1)
			go func() { _, err := bq.Publish(ctx, []byte("3")); published <- err }()
			got := make(chan string, 4)
			cctx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() {
				done <- bq.Consume(cctx, func(_ context.Context, m *queue.Message) error { got <- string(m.Body); return nil })
			}()
			select {
			case err := <-published:
				require.NoError(t, err)
			case <-time.After(20 * time.Second):
				t.Fatal("a blocked Publish did not go through once there was room")
			}
			assert.Equal(t, "1", <-got)
			assert.Equal(t, "3", <-got)
			stop()
			require.NoError(t, <-done)
		})
	}
}

func TestReservedHeaders(t *testing.T) {
	q := newTestQueue(t, Config{QueueType: Classic}, "headers")
	_, err := q.Publish(context.Background(), []byte("x"), queue.WithHeaders(map[string]string{"x-outrigger-attempt": "9"}))
	require.ErrorContains(t, err, "reserved")
	require.False(t, errors.Is(err, queue.ErrUnsupported))
}

// TestStalledQuorum: a message whose consumers keep dying (here: taken and
// handed back unacked by a raw AMQP channel, as the broker does when a
// consumer's connection dies) is dead-lettered after MaxAttempts deliveries
// without running again; graceful shutdowns that release it do not count.
func TestStalledQuorum(t *testing.T) {
	ctx := context.Background()
	q := newTestQueue(t, Config{QueueType: Quorum}, "stalled")

	// Released three times by graceful shutdowns, then still run.
	id, err := q.Publish(ctx, []byte("released"))
	require.NoError(t, err)
	for i := range 3 {
		started := make(chan struct{})
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- q.Consume(cctx, func(ctx context.Context, m *queue.Message) error {
				close(started)
				<-ctx.Done()
				return ctx.Err()
			}, queue.MaxAttempts(1), queue.ShutdownTimeout(10*time.Millisecond), queue.Concurrency(1))
		}()
		select {
		case <-started:
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: message not delivered", i)
		}
		cancel()
		require.NoError(t, <-done)
	}
	ran := make(chan *queue.Message, 1)
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- q.Consume(cctx, func(_ context.Context, m *queue.Message) error { ran <- m; return nil }, queue.MaxAttempts(1))
	}()
	select {
	case m := <-ran:
		assert.Equal(t, id, m.ID)
		assert.Equal(t, 1, m.Attempt, "releases do not count as attempts")
	case <-time.After(20 * time.Second):
		t.Fatal("a message released at shutdown three times was not run (dead-lettered?)")
	}
	cancel()
	require.NoError(t, <-done)

	// Handed back unacked three times (crashed consumers): with
	// MaxAttempts(2) it is dead-lettered without running.
	id, err = q.Publish(ctx, []byte("crashes"))
	require.NoError(t, err)
	conn, err := amqp.Dial(brokerURL())
	require.NoError(t, err)
	defer conn.Close()
	ch, err := conn.Channel()
	require.NoError(t, err)
	for i := range 3 {
		require.Eventually(t, func() bool {
			d, ok, err := ch.Get(q.name, false)
			require.NoError(t, err)
			if ok {
				require.NoError(t, d.Nack(false, true))
			}
			return ok
		}, 20*time.Second, 5*time.Millisecond, "get %d", i)
	}
	var calls atomic.Int32
	cctx, cancel = context.WithCancel(ctx)
	go func() {
		done <- q.Consume(cctx, func(context.Context, *queue.Message) error { calls.Add(1); return nil }, queue.MaxAttempts(2))
	}()
	require.Eventually(t, func() bool {
		st, err := q.Stats(ctx)
		return err == nil && st.Dead == 1 && st.Ready == 0
	}, 20*time.Second, 10*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	assert.Equal(t, int32(0), calls.Load(), "the handler must not run again")
	dead, err := q.DeadLetters(ctx, 0)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	assert.Equal(t, id, dead[0].ID)
	assert.Contains(t, dead[0].LastError, "without finishing")
}
