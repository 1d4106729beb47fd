package queue_test

import (
	"context"
	"fmt"
	"log"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/queue"
)

// Replay every dead letter of a queue that failed with a timeout, from any
// process that reaches the Redis.
func ExampleInspector_Requeue() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	in, err := queue.NewInspector(rdb, queue.WithPrefix("app:"))
	if err != nil {
		log.Fatal(err)
	}
	n, err := in.Requeue(ctx, "orders", queue.Selection{All: true, ErrorContains: "timeout"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("requeued", n)
}
