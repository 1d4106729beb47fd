package queue_test

import (
	"context"
	"errors"
	"log"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/queue"
)

// With Sentinel, a failover promotes a replica that may lag behind the
// primary: WaitReplicas acknowledges a publish only once a replica has it.
// A publish that no replica acknowledged in time may still be delivered, so
// retry it under the same ID: the queue drops the repeat.
func ExampleWaitReplicas() {
	client := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:    "mymaster",
		SentinelAddrs: []string{"127.0.0.1:26379"},
		ReadTimeout:   time.Second, // above the WAIT timeout
	})
	defer client.Close()
	q, err := queue.NewRedis(client, "orders", queue.WaitReplicas(1, 200*time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for attempt := 0; attempt < 3; attempt++ {
		_, err = q.Publish(ctx, []byte(`{"order":42}`), queue.WithID("order-42"))
		if !errors.Is(err, queue.ErrNotReplicated) {
			break
		}
	}
	if err != nil {
		log.Print(err)
	}
}
