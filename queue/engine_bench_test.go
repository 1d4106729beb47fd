package queue

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
)

// batchDriver is a Driver that serves b.N in-memory messages in batches of
// the size asked for and settles by counting: what remains is the engine's
// own cost per message (hand-off to the workers, settlement, bookkeeping).
type batchDriver struct {
	left    atomic.Int64
	settled atomic.Int64
	done    chan struct{}
	total   int64
	msg     Message
}

func (d *batchDriver) Fetch(ctx context.Context, max int) ([]*Delivery, error) {
	n := min(int64(max), d.left.Load())
	if n <= 0 {
		<-ctx.Done()
		return nil, nil
	}
	d.left.Add(-n)
	out := make([]*Delivery, n)
	for i := range out {
		out[i] = &Delivery{Message: &d.msg}
	}
	return out, nil
}

func (d *batchDriver) Settle(_ context.Context, ss []Settlement) error {
	if d.settled.Add(int64(len(ss))) == d.total {
		close(d.done)
	}
	return nil
}

func (d *batchDriver) Leave(context.Context) {}

// BenchmarkEngine: the consume engine alone, a no-op handler at
// concurrency 32 (as in bench/queue and bench/kafka), b.N messages.
func BenchmarkEngine(b *testing.B) {
	for _, conc := range []int{1, 32} {
		b.Run("conc="+strconv.Itoa(conc), func(b *testing.B) {
			d := &batchDriver{done: make(chan struct{}), total: int64(b.N)}
			d.left.Store(int64(b.N))
			spec, err := NewConsumeSpec(func(context.Context, *Message) error { return nil }, Concurrency(conc))
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			b.ReportAllocs()
			b.ResetTimer()
			errc := make(chan error, 1)
			go func() { errc <- spec.Run(ctx, d, nil, nil) }()
			<-d.done
			b.StopTimer()
			cancel()
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
		})
	}
}
