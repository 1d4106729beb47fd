package queue_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outrigger-dev/outrigger/queue"
)

// batcherBenchRow is a typical small row: 32 bytes.
type batcherBenchRow struct {
	ID      int64
	Value   float64
	Payload string
}

// batcherChanLoop is the reference: the channel + ticker loop Go services
// usually hand-roll. Producers send each item on a channel; one goroutine
// appends to a slice and flushes when it holds max items or on each tick.
type batcherChanLoop[T any] struct {
	in   chan T
	done chan struct{}
}

func newBatcherChanLoop[T any](maxItems int, tick time.Duration, flush func(context.Context, []T) error) *batcherChanLoop[T] {
	l := &batcherChanLoop[T]{in: make(chan T, maxItems), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		t := time.NewTicker(tick)
		defer t.Stop()
		buf := make([]T, 0, maxItems)
		for {
			select {
			case it, ok := <-l.in:
				if !ok {
					if len(buf) > 0 {
						_ = flush(context.Background(), buf)
					}
					return
				}
				buf = append(buf, it)
				if len(buf) >= maxItems {
					_ = flush(context.Background(), buf)
					buf = buf[:0]
				}
			case <-t.C:
				if len(buf) > 0 {
					_ = flush(context.Background(), buf)
					buf = buf[:0]
				}
			}
		}
	}()
	return l
}

func (l *batcherChanLoop[T]) Add(ctx context.Context, item T) error {
	select {
	case l.in <- item:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *batcherChanLoop[T]) Close(context.Context) error {
	close(l.in)
	<-l.done
	return nil
}

// BenchmarkBatcherAdd measures Add per item with MaxItems=1000 and 1, 8 and
// 64 producers, for the Batcher and for the hand-rolled channel + ticker
// loop, each flushing to a sink that only counts. ns/op is per item and
// includes draining everything at the end.
func BenchmarkBatcherAdd(b *testing.B) {
	const maxItems = 1000
	type adder interface {
		Add(context.Context, batcherBenchRow) error
		Close(context.Context) error
	}
	impls := []struct {
		name string
		mk   func(flush func(context.Context, []batcherBenchRow) error) adder
	}{
		{"batcher", func(flush func(context.Context, []batcherBenchRow) error) adder {
			bt, err := queue.NewBatcher(flush, queue.MaxItems(maxItems), queue.MaxWait(5*time.Millisecond))
			if err != nil {
				b.Fatal(err)
			}
			return bt
		}},
		{"chanloop", func(flush func(context.Context, []batcherBenchRow) error) adder {
			return newBatcherChanLoop(maxItems, 5*time.Millisecond, flush)
		}},
	}
	for _, producers := range []int{1, 8, 64} {
		for _, impl := range impls {
			b.Run(fmt.Sprintf("impl=%s/producers=%d", impl.name, producers), func(b *testing.B) {
				var flushed atomic.Int64
				a := impl.mk(func(_ context.Context, items []batcherBenchRow) error {
					flushed.Add(int64(len(items)))
					return nil
				})
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer()
				var wg sync.WaitGroup
				for p := range producers {
					n := b.N / producers
					if p < b.N%producers {
						n++
					}
					wg.Go(func() {
						row := batcherBenchRow{Payload: "payload"}
						for i := range n {
							row.ID = int64(i)
							if err := a.Add(ctx, row); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				if err := a.Close(ctx); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if got := flushed.Load(); got != int64(b.N) {
					b.Fatalf("flushed %d items, want %d", got, b.N)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
			})
		}
	}
}

// BenchmarkBatcherAddWait measures the round trip of a caller that waits for
// its item's flush, with 64 callers sharing batches.
func BenchmarkBatcherAddWait(b *testing.B) {
	bt, err := queue.NewBatcher(func(context.Context, []batcherBenchRow) error { return nil },
		queue.MaxItems(64), queue.MaxWait(time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		row := batcherBenchRow{Payload: "payload"}
		for pb.Next() {
			if err := bt.AddWait(context.Background(), row); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	if err := bt.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	st := bt.Stats()
	b.ReportMetric(st.MeanBatchSize, "items/batch")
}

// BenchmarkBatcherAddPartitioned measures Add per item with Partition (16
// keys), MaxItems 1000 and FlushConcurrency 4, from 8 producers, with the
// default Buffer and with one that holds a full batch per partition.
func BenchmarkBatcherAddPartitioned(b *testing.B) {
	const producers, keys = 8, 16
	names := make([]string, keys)
	for i := range names {
		names[i] = fmt.Sprintf("key-%d", i)
	}
	for _, buffer := range []int{0, 1000 * keys} {
		name := "buffer=default"
		opts := []queue.BatcherOption{queue.MaxItems(1000), queue.FlushConcurrency(4),
			queue.Partition(func(r batcherBenchRow) string { return r.Payload })}
		if buffer > 0 {
			name = fmt.Sprintf("buffer=%d", buffer)
			opts = append(opts, queue.Buffer(buffer))
		}
		b.Run(name, func(b *testing.B) {
			var flushed atomic.Int64
			bt, err := queue.NewBatcher(func(_ context.Context, items []batcherBenchRow) error {
				flushed.Add(int64(len(items)))
				return nil
			}, opts...)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			for p := range producers {
				n := b.N / producers
				if p < b.N%producers {
					n++
				}
				wg.Go(func() {
					for i := range n {
						if err := bt.Add(ctx, batcherBenchRow{ID: int64(i), Payload: names[(i+p)%keys]}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			if err := bt.Close(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if got := flushed.Load(); got != int64(b.N) {
				b.Fatalf("flushed %d items, want %d", got, b.N)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
			st := bt.Stats()
			b.ReportMetric(st.MeanBatchSize, "items/batch")
			b.ReportMetric(float64(st.Blocked)/float64(b.N), "blocked/op")
		})
	}
}
