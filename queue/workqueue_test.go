package queue

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWorkQueue: every delivery pushed is popped exactly once, by
// whichever worker, in push order for a single worker; close lets the
// workers take what is left and then return.
func TestWorkQueue(t *testing.T) {
	tests := []struct {
		name    string
		workers int
		batches int
		size    int
		hold    time.Duration // each handler's time
	}{
		{"one worker", 1, 200, 7, 0},
		{"quick handlers", 32, 500, 20, 0},
		{"single deliveries", 8, 2000, 1, 0},
		{"slow handlers", 16, 10, 16, time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newWorkQueue(tt.workers)
			var mu sync.Mutex
			got := map[string]int{}
			var order, pushed []string
			var wg sync.WaitGroup
			for range tt.workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						d, ok := q.pop()
						if !ok {
							return
						}
						if tt.hold > 0 {
							time.Sleep(tt.hold)
						}
						mu.Lock()
						got[d.msg.ID]++
						order = append(order, d.msg.ID)
						mu.Unlock()
					}
				}()
			}
			for b := range tt.batches {
				ds := make([]*delivery, tt.size)
				for i := range ds {
					ds[i] = &delivery{msg: &Message{ID: strconv.Itoa(b) + "/" + strconv.Itoa(i)}}
					pushed = append(pushed, ds[i].msg.ID)
				}
				q.push(ds)
				if b%50 == 0 {
					time.Sleep(100 * time.Microsecond) // let the workers park
				}
			}
			q.close()
			wg.Wait()
			require.Len(t, got, tt.batches*tt.size, "deliveries popped")
			for id, n := range got {
				assert.Equal(t, 1, n, "delivery %s popped %d times", id, n)
			}
			if tt.workers == 1 {
				assert.Equal(t, pushed, order, "one worker pops in push order")
			}
			q.mu.Lock()
			defer q.mu.Unlock()
			assert.Zero(t, q.idle, "workers still counted as parked")
		})
	}
}

// TestWorkQueueFansOut: a burst of handlers that block until all of them
// run reaches every parked worker.
func TestWorkQueueFansOut(t *testing.T) {
	const workers = 16
	q := newWorkQueue(workers)
	var running atomic.Int64
	all := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, ok := q.pop(); !ok {
					return
				}
				if running.Add(1) == workers {
					close(all)
				}
				<-all
			}
		}()
	}
	require.Eventually(t, func() bool { q.mu.Lock(); defer q.mu.Unlock(); return q.idle == workers }, 10*time.Second, time.Millisecond)
	ds := make([]*delivery, workers)
	for i := range ds {
		ds[i] = &delivery{msg: &Message{}}
	}
	q.push(ds)
	select {
	case <-all:
	case <-time.After(20 * time.Second):
		t.Fatalf("%d of %d blocked handlers started", running.Load(), workers)
	}
	q.close()
	wg.Wait()
}
