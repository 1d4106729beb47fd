package rabbitmq_test

import (
	"context"
	"fmt"
	"time"

	"github.com/outrigger-dev/outrigger/queue"
	"github.com/outrigger-dev/outrigger/queue/rabbitmq"
)

func Example() {
	ctx := context.Background()
	q, err := rabbitmq.New(ctx, rabbitmq.Config{URL: "amqp://guest:guest@127.0.0.1:5672/"}, "example-quotes",
		queue.WithPrefix(fmt.Sprintf("example-%d.", time.Now().UnixNano())))
	if err != nil {
		fmt.Println("no broker:", err)
		return
	}
	defer q.Close()
	defer q.Delete(ctx)

	if _, err := q.Publish(ctx, []byte("quote 42")); err != nil {
		fmt.Println(err)
		return
	}
	cctx, cancel := context.WithCancel(ctx)
	err = q.Consume(cctx, func(ctx context.Context, m *queue.Message) error {
		fmt.Printf("%s (attempt %d)\n", m.Body, m.Attempt)
		cancel() // stop after one message
		return nil
	}, queue.Concurrency(4))
	fmt.Println("consume:", err)
	// Output:
	// quote 42 (attempt 1)
	// consume: <nil>
}
