package queue_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/queue"
)

// A service publishes each answer as it arrives and returns; a consumer
// processes them. NewRedis(client, "quotes") has the same API.
func Example() {
	q := queue.NewMemory("quotes")
	defer q.Close()
	ctx := context.Background()
	for _, sym := range []string{"ACME", "INIT", "TECH"} {
		if _, err := q.Publish(ctx, []byte(sym)); err != nil {
			fmt.Println(err)
		}
	}

	var mu sync.Mutex
	var got []string
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error)
	go func() {
		done <- q.Consume(cctx, func(ctx context.Context, m *queue.Message) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, string(m.Body))
			if len(got) == 3 {
				cancel()
			}
			return nil
		}, queue.Concurrency(2))
	}()
	fmt.Println(<-done)
	sort.Strings(got)
	fmt.Println(got)
	// Output:
	// <nil>
	// [ACME INIT TECH]
}

// A batch handler receives up to BatchSize messages and reports one result
// per message: only the messages whose result is nil are acknowledged.
func ExampleBatchHandler() {
	q := queue.NewMemory("rows")
	defer q.Close()
	ctx := context.Background()
	if _, err := q.PublishBatch(ctx, [][]byte{[]byte("a"), []byte("b"), []byte("c")}); err != nil {
		fmt.Println(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	var batches []string
	err := q.ConsumeBatch(cctx, func(ctx context.Context, ms []*queue.Message) []error {
		var rows []string
		for _, m := range ms {
			rows = append(rows, string(m.Body))
		}
		batches = append(batches, strings.Join(rows, ","))
		cancel()
		return nil // all stored, e.g. with one multi-row INSERT
	}, queue.BatchSize(10), queue.BatchWait(10*time.Millisecond), queue.Concurrency(1))
	fmt.Println(err, batches)
	// Output: <nil> [a,b,c]
}

// A message that keeps failing ends in the dead-letter list with its last
// error; Requeue brings it back.
func ExampleMemory_DeadLetters() {
	q := queue.NewMemory("jobs")
	defer q.Close()
	ctx := context.Background()
	id, _ := q.Publish(ctx, []byte("bad"))
	cctx, cancel := context.WithCancel(ctx)
	_ = q.Consume(cctx, func(ctx context.Context, m *queue.Message) error {
		if m.Attempt == 3 {
			defer cancel()
		}
		return errors.New("cannot parse")
	}, queue.MaxAttempts(3), queue.Backoff(func(int) time.Duration { return time.Millisecond }))
	dead, _ := q.DeadLetters(ctx, 10)
	fmt.Println(len(dead), dead[0].ID == id, dead[0].Attempt, dead[0].LastError)
	fmt.Println(q.Requeue(ctx, id))
	st, _ := q.Stats(ctx)
	fmt.Println(st.Ready, st.Dead)
	// Output:
	// 1 true 3 cannot parse
	// <nil>
	// 1 0
}

type Quote struct {
	Symbol string  `json:"symbol"`
	Bid    float64 `json:"bid"`
}

// Typed carries Go values, JSON-encoded unless another Codec is given.
func ExampleTyped() {
	q := queue.NewMemory("quotes")
	defer q.Close()
	quotes := queue.Typed[Quote](q, nil)
	ctx := context.Background()
	_, _ = quotes.Publish(ctx, Quote{Symbol: "ACME", Bid: 101.25})
	cctx, cancel := context.WithCancel(ctx)
	_ = quotes.Consume(cctx, func(ctx context.Context, v Quote, m *queue.Message) error {
		fmt.Println(v.Symbol, v.Bid, m.Attempt)
		cancel()
		return nil
	})
	// Output: ACME 101.25 1
}

// WithDedupKey drops a second publish of the same key within the window.
func ExampleWithDedupKey() {
	q := queue.NewMemory("webhooks")
	defer q.Close()
	ctx := context.Background()
	first, err := q.Publish(ctx, []byte("payment 42"), queue.WithDedupKey("evt-42", time.Hour))
	fmt.Println(err)
	again, err := q.Publish(ctx, []byte("payment 42"), queue.WithDedupKey("evt-42", time.Hour))
	fmt.Println(errors.Is(err, queue.ErrDuplicate), again == first)
	// Output:
	// <nil>
	// true true
}

// The Redis backend takes any go-redis client: single node, Sentinel or
// Cluster. Several replicas run the same code; each message is handled by
// one of them (at least once).
func ExampleNewRedis() {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	q, err := queue.NewRedis(client, "quotes", queue.WithPrefix("myapp:"), queue.MaxLen(1_000_000))
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	// Until SIGINT; then running handlers get up to 30s to finish.
	err = q.Consume(ctx, func(ctx context.Context, m *queue.Message) error {
		fmt.Printf("%s (attempt %d): %s\n", m.ID, m.Attempt, m.Body)
		return nil
	}, queue.Concurrency(16), queue.VisibilityTimeout(time.Minute), queue.MaxAttempts(8),
		queue.ShutdownTimeout(30*time.Second))
	if err != nil {
		fmt.Println(err)
	}
}
