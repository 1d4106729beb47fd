package queue_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/outrigger-dev/outrigger/queue"
)

// A Batcher turns single rows into bulk writes. Here the "database" prints
// each batch; in a service the flush function would run one COPY or
// multi-row INSERT.
func ExampleNewBatcher() {
	ctx := context.Background()
	b, err := queue.NewBatcher(func(ctx context.Context, ids []int) error {
		fmt.Println("INSERT", ids)
		return nil
	}, queue.MaxItems(3), queue.MaxWait(time.Hour))
	if err != nil {
		panic(err)
	}
	for id := 1; id <= 7; id++ {
		if err := b.Add(ctx, id); err != nil {
			panic(err)
		}
	}
	if err := b.Close(ctx); err != nil { // flushes the last, partial batch
		panic(err)
	}
	st := b.Stats()
	fmt.Printf("%d items in %d batches\n", st.Items, st.Batches)
	// Output:
	// INSERT [1 2 3]
	// INSERT [4 5 6]
	// INSERT [7]
	// 7 items in 3 batches
}

// AddWait returns the result of the item's own flush. A flush that fails
// for some rows only reports them with a BatchError; the other callers of
// the same batch succeed.
func ExampleBatcher_AddWait() {
	ctx := context.Background()
	errDuplicate := errors.New("duplicate key")
	b, err := queue.NewBatcher(func(ctx context.Context, emails []string) error {
		failed := map[int]error{}
		for i, e := range emails {
			if e == "bob@example.com" {
				failed[i] = errDuplicate
			}
		}
		return queue.BatchError{Failed: failed}
	}, queue.MaxItems(3))
	if err != nil {
		panic(err)
	}
	defer b.Close(ctx)

	var mu sync.Mutex
	var lines []string
	var wg sync.WaitGroup
	for _, e := range []string{"ann@example.com", "bob@example.com", "cid@example.com"} {
		wg.Go(func() {
			err := b.AddWait(ctx, e)
			mu.Lock()
			lines = append(lines, fmt.Sprintf("%s: %v", e, err))
			mu.Unlock()
		})
	}
	wg.Wait()
	sort.Strings(lines)
	fmt.Println(strings.Join(lines, "\n"))
	// Output:
	// ann@example.com: <nil>
	// bob@example.com: duplicate key
	// cid@example.com: <nil>
}

type exampleEvent struct {
	Account string
	Seq     int
	Body    string
}

// Partition keeps each account's events in order while batches of different
// accounts are written concurrently; MaxBytes caps a batch's payload; Retry
// and OnError handle a failing sink.
func ExamplePartition() {
	ctx := context.Background()
	var mu sync.Mutex
	written := map[string][]int{}
	b, err := queue.NewBatcher(func(ctx context.Context, evs []exampleEvent) error {
		mu.Lock()
		defer mu.Unlock()
		for _, ev := range evs {
			written[ev.Account] = append(written[ev.Account], ev.Seq)
		}
		return nil
	},
		queue.Partition(func(ev exampleEvent) string { return ev.Account }),
		queue.MaxBytes(1<<20, func(ev exampleEvent) int { return len(ev.Body) }),
		queue.FlushConcurrency(4),
		queue.Retry(3, func(attempt int) time.Duration { return time.Duration(attempt) * 100 * time.Millisecond }),
		queue.OnError(func(evs []exampleEvent, err error) {
			fmt.Printf("gave up on %d events: %v\n", len(evs), err)
		}),
	)
	if err != nil {
		panic(err)
	}
	for seq := range 5 {
		for _, acct := range []string{"acme", "globex"} {
			if err := b.Add(ctx, exampleEvent{Account: acct, Seq: seq, Body: "..."}); err != nil {
				panic(err)
			}
		}
	}
	if err := b.Close(ctx); err != nil {
		panic(err)
	}
	fmt.Println("acme:", written["acme"])
	fmt.Println("globex:", written["globex"])
	// Output:
	// acme: [0 1 2 3 4]
	// globex: [0 1 2 3 4]
}

// A mismatched item type in a generic option is reported by NewBatcher.
func ExampleMaxBytes() {
	_, err := queue.NewBatcher(func(ctx context.Context, rows []string) error { return nil },
		queue.MaxBytes(1<<20, func(b []byte) int { return len(b) }))
	fmt.Println(err)
	// Output:
	// queue: MaxBytes size func is func([]uint8) int, want func(string) int
}
