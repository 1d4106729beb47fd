package lock_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/lock"
)

// Do holds the lock while fn runs, refreshing it and cancelling fn's
// context if it is lost. NewLocal stands in for lock.New(redisClient) here.
func ExampleLocker_Do() {
	var l lock.Locker = lock.NewLocal()
	err := l.Do(context.Background(), "nightly-report", 10*time.Second, func(ctx context.Context, token uint64) error {
		// ctx is cancelled the moment the lock is lost; pass token to
		// whatever you write to, so that it can reject a stale holder.
		fmt.Println("generating the report, token > 0:", token > 0)
		return nil
	})
	fmt.Println("err:", err)
	// Output:
	// generating the report, token > 0: true
	// err: <nil>
}

// TryAcquire makes one attempt: another holder means ErrNotAcquired.
func ExampleLocker_TryAcquire() {
	ctx := context.Background()
	l := lock.NewLocal()
	a, _ := l.TryAcquire(ctx, "cron:cleanup", time.Minute)
	_, err := l.TryAcquire(ctx, "cron:cleanup", time.Minute)
	fmt.Println(errors.Is(err, lock.ErrNotAcquired))
	_ = a.Release(ctx)
	b, err := l.TryAcquire(ctx, "cron:cleanup", time.Minute)
	fmt.Println(err, b.Token() > a.Token())
	_ = b.Release(ctx)
	// Output:
	// true
	// <nil> true
}

// A protected resource keeps the highest token it has seen and rejects
// writes from a holder whose lock has since passed to someone else.
func ExampleFence() {
	ctx := context.Background()
	fence, _ := lock.NewStoreFence(&lock.MemoryTokenStore{}) // or lock.NewFence(redisClient, "fence:")
	l := lock.NewLocal()

	old, _ := l.TryAcquire(ctx, "invoice-42", time.Minute)
	fmt.Println("old holder writes:", fence.Check(ctx, "invoice-42", old.Token()))
	_ = old.Release(ctx) // or: its lease expired while it was paused

	cur, _ := l.TryAcquire(ctx, "invoice-42", time.Minute)
	fmt.Println("new holder writes:", fence.Check(ctx, "invoice-42", cur.Token()))
	err := fence.Check(ctx, "invoice-42", old.Token())
	fmt.Println("old holder again, stale:", errors.Is(err, lock.ErrStaleToken))
	_ = cur.Release(ctx)
	// Output:
	// old holder writes: <nil>
	// new holder writes: <nil>
	// old holder again, stale: true
}

// On Redis, every replica of a service creates a Locker on the shared
// deployment; a waiting Acquire is handed the lock by the release.
func ExampleNew() {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	l, err := lock.New(client, lock.WithPrefix("myapp:lock:"), lock.WithMaxWait(30*time.Second))
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	lk, err := l.Acquire(ctx, "migrations", 30*time.Second)
	if err != nil {
		return // ErrNotAcquired after 30s, or ctx.Err()
	}
	defer lk.Release(ctx)
	select {
	case <-lk.Lost():
		// stop: the lock could not be kept
	default:
		// migrate, passing lk.Token() to the database
	}
}

// Redlock holds the lock on a majority of independent nodes.
func ExampleNewRedlock() {
	var clients []redis.UniversalClient
	for _, addr := range []string{"10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"} {
		clients = append(clients, redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true}))
	}
	l, err := lock.NewRedlock(clients, lock.WithNodeTimeout(100*time.Millisecond))
	if err != nil {
		panic(err)
	}
	_ = l.Do(context.Background(), "leader", 10*time.Second, func(ctx context.Context, token uint64) error {
		<-ctx.Done() // lead until the lock is lost or the context ends
		return nil
	})
}
