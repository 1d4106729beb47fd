package queue_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/outrigger-dev/outrigger/queue"
)

// batcherRec records the batches a flush function receives.
type batcherRec[T any] struct {
	mu      sync.Mutex
	batches [][]T
	at      []time.Time
}

func (r *batcherRec[T]) flush(_ context.Context, items []T) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, slices.Clone(items))
	r.at = append(r.at, time.Now())
	return nil
}

func (r *batcherRec[T]) sizes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []int
	for _, b := range r.batches {
		s = append(s, len(b))
	}
	return s
}

func (r *batcherRec[T]) all() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []T
	for _, b := range r.batches {
		all = append(all, b...)
	}
	return all
}

func batcherNew[T any](t *testing.T, flush func(context.Context, []T) error, opts ...queue.BatcherOption) *queue.Batcher[T] {
	t.Helper()
	b, err := queue.NewBatcher(flush, opts...)
	require.NoError(t, err)
	return b
}

func batcherAdd[T any](t *testing.T, b *queue.Batcher[T], items ...T) {
	t.Helper()
	for _, it := range items {
		require.NoError(t, b.Add(t.Context(), it))
	}
}

// TestBatcherThresholds checks each flush trigger on its own, with time
// faked by testing/synctest.
func TestBatcherThresholds(t *testing.T) {
	type step struct {
		add   []string
		sleep time.Duration
		want  []int // batch sizes flushed so far
	}
	tests := []struct {
		name  string
		opts  []queue.BatcherOption
		steps []step
		close []int // batch sizes after Close
	}{
		{
			name: "items",
			opts: []queue.BatcherOption{queue.MaxItems(3), queue.MaxWait(time.Hour)},
			steps: []step{
				{add: []string{"a", "b"}, want: nil},
				{add: []string{"c"}, want: []int{3}},
				{add: []string{"d", "e", "f", "g"}, want: []int{3, 3}},
				{sleep: 59 * time.Minute, want: []int{3, 3}},
			},
			close: []int{3, 3, 1},
		},
		{
			name: "bytes",
			opts: []queue.BatcherOption{queue.MaxBytes(10, func(s string) int { return len(s) }), queue.MaxWait(time.Hour)},
			steps: []step{
				{add: []string{"aaaa", "bbbb"}, want: nil},
				{add: []string{"cc"}, want: []int{3}},                 // exactly 10 bytes
				{add: []string{"dddddd", "eeeee"}, want: []int{3, 1}}, // 6+5 > 10: first sealed alone
				{add: []string{"ffffffffffffffff"}, want: []int{3, 1, 1, 1}},
			},
			close: []int{3, 1, 1, 1},
		},
		{
			name: "time from oldest item",
			opts: []queue.BatcherOption{queue.MaxItems(100), queue.MaxWait(10 * time.Millisecond)},
			steps: []step{
				{add: []string{"a"}, want: nil},
				{sleep: 6 * time.Millisecond, want: nil},
				{add: []string{"b"}, want: nil},
				{sleep: 3 * time.Millisecond, want: nil},
				{sleep: 2 * time.Millisecond, want: []int{2}}, // 11ms after "a", 5ms after "b"
				{add: []string{"c"}, want: []int{2}},
				{sleep: 10 * time.Millisecond, want: []int{2, 1}},
			},
			close: []int{2, 1},
		},
		{
			name: "items before time",
			opts: []queue.BatcherOption{queue.MaxItems(2), queue.MaxWait(10 * time.Millisecond)},
			steps: []step{
				{add: []string{"a", "b", "c"}, want: []int{2}},
				{sleep: 10 * time.Millisecond, want: []int{2, 1}},
			},
			close: []int{2, 1},
		},
		{
			name:  "defaults",
			opts:  nil,
			steps: []step{{add: []string{"a"}, want: nil}, {sleep: queue.BatcherDefaultMaxWait, want: []int{1}}},
			close: []int{1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var rec batcherRec[string]
				b := batcherNew(t, rec.flush, tt.opts...)
				for i, s := range tt.steps {
					batcherAdd(t, b, s.add...)
					time.Sleep(s.sleep)
					synctest.Wait()
					require.Equal(t, s.want, rec.sizes(), "step %d: batch sizes", i)
				}
				require.NoError(t, b.Close(t.Context()))
				require.Equal(t, tt.close, rec.sizes(), "after Close")
			})
		})
	}
}

func TestBatcherNeverFlushesEmpty(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		b := batcherNew(t, func(_ context.Context, items []int) error {
			calls.Add(1)
			if len(items) == 0 {
				t.Errorf("flush called with an empty batch")
			}
			return nil
		}, queue.MaxItems(2), queue.MaxWait(time.Millisecond))
		require.NoError(t, b.Flush(t.Context()))
		time.Sleep(time.Second)
		batcherAdd(t, b, 1, 2) // sealed by size: the MaxWait entry for it is stale
		time.Sleep(time.Second)
		require.NoError(t, b.Flush(t.Context()))
		require.NoError(t, b.Close(t.Context()))
		require.Equal(t, int32(1), calls.Load())
	})
}

// TestBatcherPartitionOrder: per-partition order is kept, a batch holds one
// partition, a partition never has two flushes at once, and the
// FlushConcurrency limit holds across partitions.
func TestBatcherPartitionOrder(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	type item struct {
		key string
		seq int
	}
	const keys, perKey, conc = 6, 400, 3
	var (
		mu       sync.Mutex
		got      = map[string][]int{}
		running  atomic.Int32
		maxRun   atomic.Int32
		partBusy sync.Map
	)
	flush := func(_ context.Context, items []item) error {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			m := maxRun.Load()
			if n <= m || maxRun.CompareAndSwap(m, n) {
				break
			}
		}
		k := items[0].key
		if _, loaded := partBusy.LoadOrStore(k, true); loaded {
			t.Errorf("two flushes of partition %s at once", k)
		}
		defer partBusy.Delete(k)
		time.Sleep(50 * time.Microsecond) // let other flushes overlap
		mu.Lock()
		defer mu.Unlock()
		for _, it := range items {
			if it.key != k {
				t.Errorf("batch mixes partitions %s and %s", k, it.key)
			}
			got[it.key] = append(got[it.key], it.seq)
		}
		return nil
	}
	b := batcherNew(t, flush,
		queue.MaxItems(7), queue.MaxWait(200*time.Microsecond), queue.FlushConcurrency(conc),
		queue.Partition(func(it item) string { return it.key }))
	var wg sync.WaitGroup
	for k := range keys {
		wg.Go(func() {
			key := fmt.Sprintf("k%d", k)
			for i := range perKey {
				if err := b.Add(t.Context(), item{key, i}); err != nil {
					t.Errorf("Add: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	require.NoError(t, b.Close(t.Context()))
	want := make([]int, perKey)
	for i := range want {
		want[i] = i
	}
	for k := range keys {
		key := fmt.Sprintf("k%d", k)
		require.Equal(t, want, got[key], "partition %s: items in order, each once", key)
	}
	assert.LessOrEqual(t, maxRun.Load(), int32(conc), "flushes at once")
}

// TestBatcherBackpressure: with the flush blocked and the buffer full, Add
// blocks; its context cancels the wait; a freed flush slot lets it through.
func TestBatcherBackpressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var rec batcherRec[int]
		b := batcherNew(t, func(ctx context.Context, items []int) error {
			<-release
			return rec.flush(ctx, items)
		}, queue.MaxItems(2), queue.Buffer(4), queue.MaxWait(time.Hour))

		batcherAdd(t, b, 1, 2) // batch 1, handed to the (blocked) flush
		synctest.Wait()
		require.Equal(t, 0, b.Stats().Buffered)
		require.Equal(t, 1, b.Stats().InFlight)
		batcherAdd(t, b, 3, 4, 5, 6) // batches 2 and 3 wait: buffer full
		require.Equal(t, 4, b.Stats().Buffered)

		// A blocked Add gives up with its context.
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() { errc <- b.Add(ctx, 99) }()
		synctest.Wait()
		select {
		case err := <-errc:
			t.Fatalf("Add returned %v while the buffer was full, want it blocked", err)
		default:
		}
		cancel()
		require.ErrorIs(t, <-errc, context.Canceled)

		// With a timeout too.
		tctx, tcancel := context.WithTimeout(t.Context(), time.Second)
		defer tcancel()
		require.ErrorIs(t, b.Add(tctx, 99), context.DeadlineExceeded)

		// Another blocked Add goes through once a flush frees room.
		go func() { errc <- b.Add(t.Context(), 7) }()
		synctest.Wait()
		require.Len(t, errc, 0, "Add blocked")
		release <- struct{}{} // batch 1 done; batch 2 handed over: room for 2
		require.NoError(t, <-errc)
		close(release)
		require.NoError(t, b.Close(t.Context()))
		require.Equal(t, []int{1, 2, 3, 4, 5, 6, 7}, rec.all(), "the cancelled items were not taken")
		st := b.Stats()
		require.Equal(t, uint64(3), st.Blocked, "three Adds waited for room")
		require.Equal(t, time.Second, st.BlockedTime, "only the timed-out Add spent fake time blocked")
	})
}

func TestBatcherRetryThenOnError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errDB := errors.New("db down")
		var calls [][]int
		var backoffs []int
		var reported [][]int
		var reportedErr []error
		var mu sync.Mutex
		failFirst := 2
		b := batcherNew(t, func(_ context.Context, items []int) error {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, slices.Clone(items))
			if items[0] == 100 || len(calls) <= failFirst {
				return errDB
			}
			return nil
		}, queue.MaxItems(3), queue.MaxWait(time.Second),
			queue.Retry(3, func(attempt int) time.Duration {
				backoffs = append(backoffs, attempt)
				return time.Duration(attempt) * time.Second
			}),
			queue.OnError(func(items []int, err error) {
				reported = append(reported, slices.Clone(items))
				reportedErr = append(reportedErr, err)
			}))

		// Fails twice, then succeeds on the third attempt: no report.
		start := time.Now()
		require.NoError(t, b.AddWait(t.Context(), 1), "after retries")
		require.Equal(t, 4*time.Second, time.Since(start), "linger 1s, backoff 1s + 2s (fake time)")
		require.Equal(t, [][]int{{1}, {1}, {1}}, calls)
		require.Empty(t, reported)

		// Always fails: reported once with exactly its items, after 3 calls.
		calls, backoffs = nil, nil
		batcherAdd(t, b, 100, 101)
		errc := make(chan error, 1)
		go func() { errc <- b.AddWait(t.Context(), 102) }()
		require.ErrorIs(t, <-errc, errDB)
		require.Equal(t, [][]int{{100, 101, 102}, {100, 101, 102}, {100, 101, 102}}, calls)
		require.Equal(t, []int{1, 2}, backoffs)
		require.Equal(t, [][]int{{100, 101, 102}}, reported)
		require.ErrorIs(t, reportedErr[0], errDB)

		st := b.Stats()
		require.Equal(t, uint64(2), st.Batches)
		require.Equal(t, uint64(1), st.FailedBatches)
		require.Equal(t, uint64(3), st.FailedItems)
		require.Equal(t, uint64(5), st.FlushErrors)
		require.Equal(t, uint64(4), st.Retries)
		require.NoError(t, b.Close(t.Context()))
	})
}

// TestBatcherPartialFailure: a BatchError fails only its items: AddWait of
// the others succeeds, retries resend only the failed ones, and OnError gets
// exactly the items still failed.
func TestBatcherPartialFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errOdd := errors.New("odd")
		errSeven := errors.New("seven")
		var calls [][]int
		var reported []int
		var reportedErr error
		b := batcherNew(t, func(_ context.Context, items []int) error {
			calls = append(calls, slices.Clone(items))
			failed := map[int]error{}
			for i, v := range items {
				switch {
				case v == 7:
					failed[i] = errSeven // fails every time
				case v%2 == 1 && len(calls) == 1:
					failed[i] = errOdd // fails the first time only
				case v == 4 && len(calls) == 1:
					failed[i] = nil // nil error still marks the item failed
				}
			}
			return &queue.BatchError{Failed: failed}
		}, queue.MaxItems(8), queue.MaxWait(time.Hour), queue.Retry(2, nil),
			queue.OnError(func(items []int, err error) {
				reported = slices.Clone(items)
				reportedErr = err
			}))

		results := make([]error, 8)
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() { results[i] = b.AddWait(t.Context(), i) })
			synctest.Wait() // keep Add order = i
		}
		wg.Wait()
		require.Equal(t, [][]int{{0, 1, 2, 3, 4, 5, 6, 7}, {1, 3, 4, 5, 7}}, calls)
		for i, err := range results {
			if i == 7 {
				require.ErrorIs(t, err, errSeven, "item %d", i)
			} else {
				require.NoError(t, err, "item %d", i)
			}
		}
		require.Equal(t, []int{7}, reported)
		var be queue.BatchError
		require.ErrorAs(t, reportedErr, &be)
		require.Equal(t, map[int]error{0: errSeven}, be.Failed, "indexes refer to OnError's items")
		require.ErrorIs(t, reportedErr, errSeven)
		require.NoError(t, b.Close(t.Context()))
	})
}

func TestBatcherBatchErrorOutOfRangeFailsWholeBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := batcherNew(t, func(_ context.Context, items []int) error {
			return queue.BatchError{Failed: map[int]error{len(items): errors.New("bad index")}}
		}, queue.MaxItems(1))
		require.Error(t, b.AddWait(t.Context(), 1))
		require.NoError(t, b.Close(t.Context()))
	})
}

func TestBatcherPanickingFlush(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var calls atomic.Int32
	var reported atomic.Int32
	b := batcherNew(t, func(_ context.Context, items []int) error {
		if calls.Add(1) <= 2 {
			panic("boom")
		}
		return nil
	}, queue.MaxItems(1), queue.OnError(func(items []int, err error) {
		reported.Add(int32(len(items)))
		if !errors.Is(err, queue.ErrBatchPanic) {
			t.Errorf("OnError err = %v, want ErrBatchPanic", err)
		}
	}))
	err := b.AddWait(t.Context(), 1)
	require.ErrorIs(t, err, queue.ErrBatchPanic)
	require.ErrorContains(t, err, "boom")
	require.Equal(t, int32(1), reported.Load())
	require.NoError(t, b.Close(t.Context()))

	// Retried like any failure.
	b = batcherNew(t, func(_ context.Context, items []int) error {
		if calls.Add(1) <= 2 {
			panic("boom")
		}
		return nil
	}, queue.MaxItems(1), queue.Retry(3, nil))
	calls.Store(0)
	require.NoError(t, b.AddWait(t.Context(), 1))
	require.Equal(t, int32(3), calls.Load())
	require.NoError(t, b.Close(t.Context()))
}

// TestBatcherCloseDrains: everything accepted before Close is flushed
// exactly once, Add and Flush then fail with ErrClosed, and no goroutine is
// left.
func TestBatcherCloseDrains(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var rec batcherRec[int]
	slow := func(ctx context.Context, items []int) error {
		time.Sleep(time.Millisecond)
		return rec.flush(ctx, items)
	}
	b := batcherNew(t, slow, queue.MaxItems(10), queue.MaxWait(time.Hour), queue.FlushConcurrency(2))
	const n = 1005
	for i := range n {
		require.NoError(t, b.Add(t.Context(), i))
	}
	require.NoError(t, b.Close(t.Context()))
	got := rec.all()
	slices.Sort(got)
	require.Len(t, got, n)
	for i, v := range got {
		require.Equal(t, i, v)
	}
	require.ErrorIs(t, b.Add(t.Context(), 1), queue.ErrClosed)
	require.ErrorIs(t, b.AddWait(t.Context(), 1), queue.ErrClosed)
	require.ErrorIs(t, b.Flush(t.Context()), queue.ErrClosed)
	require.NoError(t, b.Close(t.Context()), "second Close")
	st := b.Stats()
	require.Equal(t, uint64(n), st.Items)
	require.Equal(t, uint64(n), st.FlushedItems)
	require.Equal(t, 0, st.Buffered)
}

// TestBatcherCloseUnblocksAdd: an Add blocked on a full buffer returns
// ErrClosed when Close starts.
func TestBatcherCloseUnblocksAdd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		b := batcherNew(t, func(ctx context.Context, items []int) error {
			<-release
			return nil
		}, queue.MaxItems(1), queue.Buffer(1), queue.MaxWait(time.Hour))
		batcherAdd(t, b, 1, 2) // 1 in flight, 2 waiting: full
		errc := make(chan error, 1)
		go func() { errc <- b.Add(t.Context(), 3) }()
		synctest.Wait()
		closed := make(chan error, 1)
		go func() { closed <- b.Close(t.Context()) }()
		require.ErrorIs(t, <-errc, queue.ErrClosed)
		close(release)
		require.NoError(t, <-closed)
	})
}

// TestBatcherCloseGivesUp: when Close's context ends before the flushes do,
// in-flight flushes see their context cancelled, queued batches are failed
// with ErrClosed (reported, not dropped silently) and Close returns.
func TestBatcherCloseGivesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var reported []int
		var reportedErr []error
		var mu sync.Mutex
		b := batcherNew(t, func(ctx context.Context, items []int) error {
			<-ctx.Done() // a stuck database that honours ctx
			return ctx.Err()
		}, queue.MaxItems(2), queue.MaxWait(time.Hour), queue.OnError(func(items []int, err error) {
			mu.Lock()
			defer mu.Unlock()
			reported = append(reported, items...)
			reportedErr = append(reportedErr, err)
		}))
		batcherAdd(t, b, 1, 2, 3, 4)
		errc := make(chan error, 1)
		go func() { errc <- b.AddWait(t.Context(), 5) }()
		synctest.Wait()
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		err := b.Close(ctx)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorIs(t, <-errc, queue.ErrClosed)
		synctest.Wait()
		mu.Lock()
		slices.Sort(reported)
		require.Equal(t, []int{1, 2, 3, 4, 5}, reported, "every accepted item reported")
		mu.Unlock()
		require.ErrorIs(t, b.Add(t.Context(), 6), queue.ErrClosed)
	})
}

func TestBatcherFlush(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errBad := errors.New("bad")
		var rec batcherRec[int]
		b := batcherNew(t, func(ctx context.Context, items []int) error {
			time.Sleep(time.Second)
			if slices.Contains(items, 13) {
				return errBad
			}
			return rec.flush(ctx, items)
		}, queue.MaxItems(3), queue.MaxWait(time.Hour))
		batcherAdd(t, b, 1, 2, 3, 4)
		require.NoError(t, b.Flush(t.Context()))
		require.Equal(t, []int{3, 1}, rec.sizes(), "Flush waits for in-flight and partial batches")
		batcherAdd(t, b, 13)
		require.ErrorIs(t, b.Flush(t.Context()), errBad)
		batcherAdd(t, b, 5)
		ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
		defer cancel()
		require.ErrorIs(t, b.Flush(ctx), context.DeadlineExceeded)
		require.NoError(t, b.Close(t.Context()))
		require.Equal(t, []int{3, 1, 1}, rec.sizes())
	})
}

// TestBatcherFullBufferFlushesOpenBatches: with MaxWait off and more
// partitions than fit in the buffer, a full buffer of open batches is
// flushed early instead of blocking Add forever.
func TestBatcherFullBufferFlushesOpenBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec batcherRec[int]
		b := batcherNew(t, rec.flush, queue.MaxItems(4), queue.MaxWait(0), queue.Buffer(4),
			queue.Partition(func(i int) string { return fmt.Sprint(i % 8) }))
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		for i := range 64 {
			require.NoError(t, b.Add(ctx, i))
		}
		require.NoError(t, b.Close(t.Context()))
		require.Len(t, rec.all(), 64)
	})
}

// TestBatcherConcurrentProducers runs many producers, AddWait callers and
// Flush calls at once (run with -race).
func TestBatcherConcurrentProducers(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const producers, perProducer = 16, 500
	var mu sync.Mutex
	seen := make(map[int]int)
	b := batcherNew(t, func(_ context.Context, items []int) error {
		mu.Lock()
		defer mu.Unlock()
		for _, v := range items {
			seen[v]++
		}
		return nil
	}, queue.MaxItems(37), queue.MaxWait(100*time.Microsecond), queue.FlushConcurrency(4))
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range perProducer {
				v := p*perProducer + i
				var err error
				switch {
				case i%50 == 0:
					err = b.AddWait(t.Context(), v)
				case i%97 == 0:
					if err = b.Add(t.Context(), v); err == nil {
						err = b.Flush(t.Context())
					}
				default:
					err = b.Add(t.Context(), v)
				}
				if err != nil {
					t.Errorf("producer %d item %d: %v", p, i, err)
					return
				}
				if i%100 == 0 {
					_ = b.Stats()
				}
			}
		})
	}
	wg.Wait()
	require.NoError(t, b.Close(t.Context()))
	require.Len(t, seen, producers*perProducer)
	for v, n := range seen {
		require.Equal(t, 1, n, "item %d flushed %d times", v, n)
	}
	st := b.Stats()
	require.Equal(t, uint64(producers*perProducer), st.Items)
	require.Equal(t, uint64(producers*perProducer), st.FlushedItems)
	require.InDelta(t, float64(st.FlushedItems)/float64(st.Batches), st.MeanBatchSize, 1e-9)
	require.LessOrEqual(t, st.MeanBatchSize, 37.0)
}

func TestBatcherStatsBufferWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := batcherNew(t, func(context.Context, []int) error { return nil },
			queue.MaxItems(10), queue.MaxWait(20*time.Millisecond))
		batcherAdd(t, b, 1)
		time.Sleep(5 * time.Millisecond)
		batcherAdd(t, b, 2)
		time.Sleep(time.Second)
		batcherAdd(t, b, 3)
		require.NoError(t, b.Close(t.Context()))
		st := b.Stats()
		require.Equal(t, uint64(2), st.Batches)
		require.Equal(t, 1.5, st.MeanBatchSize)
		require.Equal(t, 20*time.Millisecond, st.BufferWait, "oldest item's wait; the closed batch waited 0")
		require.Equal(t, 20*time.Millisecond, st.MaxBufferWait)
		require.Equal(t, 10*time.Millisecond, st.MeanBufferWait)
	})
}

func TestBatcherPartitionOrSizePanic(t *testing.T) {
	b := batcherNew(t, func(context.Context, []int) error { return nil },
		queue.Partition(func(i int) string { panic("no key") }))
	require.ErrorContains(t, b.Add(t.Context(), 1), "panicked")
	require.NoError(t, b.Close(t.Context()))
}

func TestNewBatcherValidation(t *testing.T) {
	nop := func(context.Context, []int) error { return nil }
	tests := []struct {
		name  string
		flush func(context.Context, []int) error
		opts  []queue.BatcherOption
		want  string // "" means valid
	}{
		{"defaults", nop, nil, ""},
		{"nil flush", nil, nil, "flush func must not be nil"},
		{"MaxItems 0", nop, []queue.BatcherOption{queue.MaxItems(0)}, "queue: MaxItems must be >= 1, got 0"},
		{"MaxItems -1", nop, []queue.BatcherOption{queue.MaxItems(-1)}, "queue: MaxItems must be >= 1, got -1"},
		{"MaxBytes 0", nop, []queue.BatcherOption{queue.MaxBytes(0, func(int) int { return 1 })}, "queue: MaxBytes must be >= 1, got 0"},
		{"MaxBytes nil size", nop, []queue.BatcherOption{queue.MaxBytes[int](10, nil)}, "MaxBytes size func must not be nil"},
		{"MaxBytes wrong type", nop, []queue.BatcherOption{queue.MaxBytes(10, func(s string) int { return len(s) })}, "queue: MaxBytes size func is func(string) int, want func(int) int"},
		{"MaxWait 0 alone", nop, []queue.BatcherOption{queue.MaxWait(0)}, "queue: MaxWait must be > 0 unless MaxItems or MaxBytes is set, got 0s"},
		{"MaxWait -1s alone", nop, []queue.BatcherOption{queue.MaxWait(-time.Second)}, "MaxWait must be > 0"},
		{"MaxWait 0 with MaxItems", nop, []queue.BatcherOption{queue.MaxWait(0), queue.MaxItems(10)}, ""},
		{"MaxWait 0 with MaxBytes", nop, []queue.BatcherOption{queue.MaxWait(0), queue.MaxBytes(10, func(int) int { return 1 })}, ""},
		{"FlushConcurrency 0", nop, []queue.BatcherOption{queue.FlushConcurrency(0)}, "queue: FlushConcurrency must be >= 1, got 0"},
		{"Buffer 0", nop, []queue.BatcherOption{queue.Buffer(0)}, "queue: Buffer must be >= 1, got 0"},
		{"Buffer below MaxItems", nop, []queue.BatcherOption{queue.MaxItems(10), queue.Buffer(9)}, ""},
		{"Retry 0", nop, []queue.BatcherOption{queue.Retry(0, nil)}, "queue: Retry attempts must be >= 1, got 0"},
		{"OnError nil", nop, []queue.BatcherOption{queue.OnError[int](nil)}, "OnError func must not be nil"},
		{"OnError wrong type", nop, []queue.BatcherOption{queue.OnError(func([]string, error) {})}, "queue: OnError func is func([]string, error), want func([]int, error)"},
		{"Partition nil", nop, []queue.BatcherOption{queue.Partition[int](nil)}, "Partition func must not be nil"},
		{"Partition wrong type", nop, []queue.BatcherOption{queue.Partition(func(string) string { return "" })}, "queue: Partition func is func(string) string, want func(int) string"},
		{"zero option", nop, []queue.BatcherOption{{}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := queue.NewBatcher(tt.flush, tt.opts...)
			if tt.want == "" {
				require.NoError(t, err)
				require.NoError(t, b.Close(t.Context()))
				return
			}
			require.ErrorContains(t, err, tt.want)
			require.Nil(t, b)
		})
	}
}

func TestBatchErrorMessage(t *testing.T) {
	e1, e2 := errors.New("e1"), errors.New("e2")
	err := error(queue.BatchError{Failed: map[int]error{5: e2, 2: e1}})
	require.Equal(t, "queue: 2 batch items failed; item 2: e1", err.Error())
	require.ErrorIs(t, err, e1)
	require.ErrorIs(t, err, e2)
}

// TestBatcherPartitionDeadlines: each partition's batch lingers from its own
// oldest item.
func TestBatcherPartitionDeadlines(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec batcherRec[string]
		b := batcherNew(t, rec.flush, queue.MaxItems(100), queue.MaxWait(10*time.Millisecond),
			queue.Partition(func(s string) string { return s[:1] }))
		start := time.Now()
		batcherAdd(t, b, "a1")
		time.Sleep(3 * time.Millisecond)
		batcherAdd(t, b, "b1", "a2")
		time.Sleep(8 * time.Millisecond)
		batcherAdd(t, b, "b2", "a3") // a3 opens a new batch of partition a
		time.Sleep(20 * time.Millisecond)
		require.NoError(t, b.Close(t.Context()))
		rec.mu.Lock()
		defer rec.mu.Unlock()
		require.Equal(t, [][]string{{"a1", "a2"}, {"b1", "b2"}, {"a3"}}, rec.batches)
		var offs []time.Duration
		for _, at := range rec.at {
			offs = append(offs, at.Sub(start))
		}
		require.Equal(t, []time.Duration{10 * time.Millisecond, 13 * time.Millisecond, 21 * time.Millisecond}, offs)
	})
}

// TestBatcherAddWaitPerPartition: AddWait results are per item even when
// partitions fail independently.
func TestBatcherAddWaitPerPartition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errB := errors.New("partition b down")
		b := batcherNew(t, func(_ context.Context, items []string) error {
			if items[0][0] == 'b' {
				return errB
			}
			return nil
		}, queue.MaxItems(2), queue.FlushConcurrency(2),
			queue.Partition(func(s string) string { return s[:1] }))
		res := map[string]error{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, s := range []string{"a1", "b1", "a2", "b2", "a3"} {
			wg.Go(func() {
				err := b.AddWait(t.Context(), s)
				mu.Lock()
				res[s] = err
				mu.Unlock()
			})
		}
		wg.Wait()
		require.NoError(t, res["a1"])
		require.NoError(t, res["a2"])
		require.NoError(t, res["a3"])
		require.ErrorIs(t, res["b1"], errB)
		require.ErrorIs(t, res["b2"], errB)
		require.NoError(t, b.Close(t.Context()))
		st := b.Stats()
		require.Equal(t, uint64(3), st.Batches) // a1 a2 | b1 b2 | a3 (by MaxWait)
		require.Equal(t, uint64(1), st.FailedBatches)
		require.Equal(t, uint64(2), st.FailedItems)
		require.Equal(t, 0, st.Buffered)
		require.Equal(t, 0, st.InFlight)
	})
}

// TestBatcherAddAcceptsWithDoneContextWhenRoom documents that ctx bounds
// only the wait for room.
func TestBatcherAddAcceptsWithDoneContextWhenRoom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec batcherRec[int]
		b := batcherNew(t, rec.flush)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		require.NoError(t, b.Add(ctx, 1))
		require.NoError(t, b.Close(t.Context()))
		require.Equal(t, []int{1}, rec.all())
	})
}

func TestNewBatcherTypeMismatchNamesInterfaceType(t *testing.T) {
	_, err := queue.NewBatcher(func(context.Context, []error) error { return nil },
		queue.Partition(func(string) string { return "" }))
	require.EqualError(t, err, "queue: Partition func is func(string) string, want func(error) string")
}

// TestBatcherRandomized drives random configurations with random per-item
// and whole-batch failures and panics, and checks the invariants: every
// accepted item either succeeds exactly once or is reported failed exactly
// once (to OnError and to its AddWait caller), no batch is empty or over its
// limits, per-partition order holds, and FlushConcurrency is respected.
func TestBatcherRandomized(t *testing.T) {
	for seed := range 24 {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { batcherRandomRun(t, uint64(seed)) })
		})
	}
}

// batcherMix is a small deterministic hash for the random runs.
func batcherMix(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

func batcherRandomRun(t *testing.T, seed uint64) {
	var rmu sync.Mutex // r is also called from flushes and backoffs
	r := func(n int) int {
		rmu.Lock()
		defer rmu.Unlock()
		seed = batcherMix(seed + 0x9e3779b97f4a7c15)
		return int(seed % uint64(n))
	}
	const producers, perProducer = 4, 150
	maxItems := 1 + r(12)
	conc := 1 + r(4)
	attempts := 1 + r(3)
	parts := 0
	if r(2) == 0 {
		parts = 1 + r(5)
	}
	maxBytes := 0
	if r(3) == 0 {
		maxBytes = 5 + r(40)
	}
	size := func(v int) int { return 1 + v%7 }
	opts := []queue.BatcherOption{
		queue.MaxItems(maxItems), queue.FlushConcurrency(conc),
		queue.Buffer(1 + r(4*maxItems)),
		queue.Retry(attempts, func(int) time.Duration { return time.Duration(r(3)) * time.Millisecond }),
	}
	maxWait := queue.BatcherDefaultMaxWait
	switch r(3) {
	case 0:
		maxWait = time.Duration(1+r(5)) * time.Millisecond
	case 1:
		maxWait = 0 // AddWait could then wait forever for a batch to fill: only Add
	}
	opts = append(opts, queue.MaxWait(maxWait))
	if parts > 0 {
		opts = append(opts, queue.Partition(func(v int) string { return fmt.Sprint(v % parts) }))
	}
	if maxBytes > 0 {
		opts = append(opts, queue.MaxBytes(maxBytes, size))
	}
	t.Logf("maxItems=%d conc=%d attempts=%d parts=%d maxBytes=%d maxWait=%v", maxItems, conc, attempts, parts, maxBytes, maxWait)

	var (
		mu        sync.Mutex
		succeeded = map[int]int{}
		reported  = map[int]int{}
		tries     = map[int]int{}
		firstSeen []int // items in the order of their first flush attempt
		running   int
	)
	fail := func(v, try int) bool { return batcherMix(uint64(v)<<8|uint64(try))%4 == 0 }
	flush := func(_ context.Context, items []int) error {
		mu.Lock()
		running++
		if running > conc {
			t.Errorf("%d flushes at once, FlushConcurrency %d", running, conc)
		}
		defer func() {
			mu.Lock()
			running--
			mu.Unlock()
		}()
		if len(items) == 0 || len(items) > maxItems {
			t.Errorf("batch of %d items, MaxItems %d", len(items), maxItems)
		}
		if maxBytes > 0 && len(items) > 1 {
			total := 0
			for _, v := range items {
				total += size(v)
			}
			if total > maxBytes {
				t.Errorf("batch of %d bytes, MaxBytes %d", total, maxBytes)
			}
		}
		mode := batcherMix(uint64(items[0])<<8|uint64(tries[items[0]])) % 8
		failed := map[int]error{}
		for i, v := range items {
			if tries[v] == 0 {
				firstSeen = append(firstSeen, v)
			}
			tries[v]++
			if fail(v, tries[v]) {
				failed[i] = fmt.Errorf("item %d try %d", v, tries[v])
			}
		}
		switch mode {
		case 0: // whole batch fails
			mu.Unlock()
			time.Sleep(time.Duration(r(3)) * time.Millisecond)
			return errors.New("whole batch")
		case 1:
			mu.Unlock()
			time.Sleep(time.Duration(r(3)) * time.Millisecond)
			panic("flush panic")
		}
		for i, v := range items {
			if _, ok := failed[i]; !ok {
				succeeded[v]++
			}
		}
		mu.Unlock()
		time.Sleep(time.Duration(r(3)) * time.Millisecond)
		if len(failed) > 0 {
			return queue.BatchError{Failed: failed}
		}
		return nil
	}
	opts = append(opts, queue.OnError(func(items []int, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			t.Errorf("OnError with a nil error")
		}
		for _, v := range items {
			reported[v]++
		}
	}))
	b := batcherNew(t, flush, opts...)

	waitErr := make([]error, producers*perProducer)
	waited := make([]bool, producers*perProducer)
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range perProducer {
				v := p*perProducer + i
				if maxWait > 0 && batcherMix(uint64(v))%3 == 0 {
					waited[v] = true
					waitErr[v] = b.AddWait(t.Context(), v) // checked against the outcome below
					continue
				}
				if err := b.Add(t.Context(), v); err != nil {
					t.Errorf("Add(%d): %v", v, err)
				}
				if v%41 == 0 {
					_ = b.Flush(t.Context()) // errors are the batches' failures, checked below
				}
			}
		})
	}
	wg.Wait()
	require.NoError(t, b.Close(t.Context()))

	mu.Lock()
	defer mu.Unlock()
	failedCount := 0
	for v := range producers * perProducer {
		s, rep := succeeded[v], reported[v]
		if s+rep != 1 {
			t.Errorf("item %d: succeeded %d times, reported failed %d times; want exactly one outcome", v, s, rep)
		}
		if tries[v] > attempts {
			t.Errorf("item %d tried %d times, Retry attempts %d", v, tries[v], attempts)
		}
		if waited[v] && (waitErr[v] == nil) != (s == 1) {
			t.Errorf("item %d: AddWait returned %v but succeeded %d times", v, waitErr[v], s)
		}
		failedCount += rep
	}
	// Order: items of one producer in one partition are first attempted in
	// the order they were added (all of them when there is one stream
	// flushed one batch at a time).
	if parts > 0 || conc == 1 {
		last := map[[2]int]int{}
		for _, v := range firstSeen {
			k := [2]int{v / perProducer, 0}
			if parts > 0 {
				k[1] = v % parts
			}
			if prev, ok := last[k]; ok && v < prev {
				t.Errorf("item %d first flushed after %d (same producer and partition)", v, prev)
			}
			last[k] = v
		}
	}
	st := b.Stats()
	require.Equal(t, uint64(producers*perProducer), st.Items)
	require.Equal(t, uint64(failedCount), st.FailedItems)
	require.Equal(t, 0, st.Buffered)
}

func TestBatcherBatchTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		b := batcherNew(t, func(ctx context.Context, items []int) error {
			if calls.Add(1) == 1 {
				<-ctx.Done() // the first call hangs until its timeout
				return ctx.Err()
			}
			return nil
		}, queue.MaxItems(1), queue.BatchTimeout(time.Second), queue.Retry(2, nil))
		start := time.Now()
		require.NoError(t, b.AddWait(t.Context(), 1))
		require.Equal(t, time.Second, time.Since(start))
		require.Equal(t, int32(2), calls.Load())
		require.NoError(t, b.Close(t.Context()))
	})
}

// TestBatcherBufferBelowMaxItems: a buffer smaller than MaxItems caps the
// batches at the buffer size instead of blocking Add for ever.
func TestBatcherBufferBelowMaxItems(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var rec batcherRec[int]
		b := batcherNew(t, rec.flush, queue.MaxItems(100), queue.MaxWait(time.Hour), queue.Buffer(4))
		for i := range 10 {
			require.NoError(t, b.Add(t.Context(), i))
		}
		require.NoError(t, b.Close(t.Context()))
		require.Len(t, rec.all(), 10)
		for _, n := range rec.sizes() {
			require.LessOrEqual(t, n, 4)
		}
	})
}
