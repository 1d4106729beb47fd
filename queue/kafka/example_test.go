package kafka_test

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/outrigger-dev/outrigger/queue"
	"github.com/outrigger-dev/outrigger/queue/kafka"
)

// Messages with one key are handled one at a time, in publish order.
func Example() {
	// An in-process cluster for the example; use your brokers' addresses.
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx := context.Background()
	q, err := kafka.New(ctx, kafka.Config{Brokers: c.ListenAddrs(), Partitions: 3}, "quotes")
	if err != nil {
		panic(err)
	}
	defer q.Close()
	for _, p := range []string{"101", "102", "103"} {
		if _, err := q.Publish(ctx, []byte(p), queue.WithKey("ACME")); err != nil {
			panic(err)
		}
	}
	got := make(chan string)
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- q.Consume(cctx, func(ctx context.Context, m *queue.Message) error {
			got <- string(m.Body)
			return nil
		}, queue.Concurrency(16))
	}()
	for range 3 {
		select {
		case p := <-got:
			fmt.Println("ACME", p)
		case <-time.After(30 * time.Second):
			panic("no message")
		}
	}
	cancel()
	if err := <-done; err != nil {
		panic(err)
	}
	// Output:
	// ACME 101
	// ACME 102
	// ACME 103
}
