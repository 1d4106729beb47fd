package kafka

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/queue"
)

// TestStopLatency cancels idle and busy consumers and measures how long
// Consume takes to return (issue #25: within 100ms plus the running
// handlers' time). The bound checked is generous (the machine is shared);
// the figures are logged and BenchmarkStop measures them.
func TestStopLatency(t *testing.T) {
	q := newTestQueue(t, testConfig(testBrokers(t)), "stop")
	ctx := context.Background()
	var idle, busy []time.Duration
	for i := range 6 {
		cctx, cancel := context.WithCancel(ctx)
		started := make(chan struct{}, 1)
		done := make(chan error, 1)
		go func() {
			done <- q.Consume(cctx, func(ctx context.Context, m *queue.Message) error {
				select {
				case started <- struct{}{}:
				default:
				}
				return nil
			}, queue.Concurrency(4))
		}()
		isBusy := i%2 == 1
		if isBusy {
			// A consumer that has joined and handled a message.
			_, err := q.Publish(ctx, []byte("x"))
			require.NoError(t, err)
			select {
			case <-started:
			case <-time.After(30 * time.Second):
				t.Fatal("message not delivered")
			}
		}
		at := time.Now()
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(20 * time.Second):
			t.Fatal("Consume did not return within 20s of the cancel")
		}
		if isBusy {
			busy = append(busy, time.Since(at))
		} else {
			idle = append(idle, time.Since(at))
		}
	}
	slices.Sort(idle)
	slices.Sort(busy)
	t.Logf("Consume returned after the cancel in: idle %v, after a message %v", idle, busy)
	require.Less(t, busy[len(busy)-1], 10*time.Second, "generous bound")
}

// BenchmarkStop measures how long Consume takes to return after its ctx is
// cancelled, on an idle consumer that has joined the group (issue #25).
func BenchmarkStop(b *testing.B) {
	q := newTestQueue(b, testConfig(testBrokers(b)), "stopbench")
	ctx := context.Background()
	var total time.Duration
	for b.Loop() {
		cctx, cancel := context.WithCancel(ctx)
		got := make(chan struct{}, 1)
		done := make(chan error, 1)
		go func() {
			done <- q.Consume(cctx, func(context.Context, *queue.Message) error {
				select {
				case got <- struct{}{}:
				default:
				}
				return nil
			})
		}()
		if _, err := q.Publish(ctx, []byte("x")); err != nil {
			b.Fatal(err)
		}
		<-got
		at := time.Now()
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		total += time.Since(at)
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N), "stop-µs")
}
