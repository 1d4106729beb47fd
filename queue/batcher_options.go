package queue

import (
	"fmt"
	"log/slog"
	"time"
)

// Defaults used by [NewBatcher] when the matching option is not given.
const (
	// BatcherDefaultMaxItems is the default [MaxItems].
	BatcherDefaultMaxItems = 500
	// BatcherDefaultMaxWait is the default [MaxWait]: a short linger, so that
	// a caller waiting on [Batcher.AddWait] is not slowed down noticeably.
	BatcherDefaultMaxWait = 5 * time.Millisecond
	// BatcherDefaultFlushConcurrency is the default [FlushConcurrency]: one
	// flush at a time, so that batches reach the sink in the order they were
	// filled.
	BatcherDefaultFlushConcurrency = 1
)

// BatcherOption configures a [Batcher]. Options are built by the package-level
// functions [MaxItems], [MaxBytes], [MaxWait], [FlushConcurrency], [Buffer],
// [Retry], [OnError], [Partition], [BatchTimeout] and [BatchLogger], and checked by
// [NewBatcher]. The zero BatcherOption does nothing.
type BatcherOption struct {
	apply func(*batcherSettings)
}

// batcherSettings collects the options before NewBatcher checks them. The
// generic options (MaxBytes, OnError, Partition) keep their function as an
// any; NewBatcher asserts it to the Batcher's item type.
type batcherSettings struct {
	maxItems    int
	maxItemsSet bool
	maxBytes    int
	maxBytesSet bool
	size        any // func(T) int
	maxWait     time.Duration
	maxWaitSet  bool
	concurrency int
	buffer      int
	bufferSet   bool
	attempts    int
	backoff     func(attempt int) time.Duration
	onError     any // func(items []T, err error)
	onErrorSet  bool
	partition   any // func(T) string
	partSet     bool
	logger      *slog.Logger
	timeout     time.Duration
	errs        []error
}

// MaxItems flushes a batch as soon as it holds n items. n must be >= 1; the
// default is [BatcherDefaultMaxItems].
func MaxItems(n int) BatcherOption {
	return BatcherOption{func(s *batcherSettings) {
		if n < 1 {
			s.errs = append(s.errs, fmt.Errorf("queue: MaxItems must be >= 1, got %d", n))
		}
		s.maxItems, s.maxItemsSet = n, true
	}}
}

// MaxBytes flushes a batch as soon as the sizes of its items, as reported by
// size, add up to n or more. An item that would take a non-empty batch over n
// starts a new batch instead, so a batch exceeds n only when it holds a single
// item larger than n. size is called once per item, outside any lock, and must
// be cheap. T must be the Batcher's item type (NewBatcher checks it); it is
// inferred from size:
//
//	queue.MaxBytes(1<<20, func(r Row) int { return len(r.Payload) })
//
// By default there is no byte limit.
func MaxBytes[T any](n int, size func(T) int) BatcherOption {
	return BatcherOption{func(s *batcherSettings) {
		if n < 1 {
			s.errs = append(s.errs, fmt.Errorf("queue: MaxBytes must be >= 1, got %d", n))
		}
		if size == nil {
			s.errs = append(s.errs, fmt.Errorf("queue: MaxBytes size func must not be nil"))
		}
		s.maxBytes, s.maxBytesSet, s.size = n, true, size
	}}
}

// MaxWait flushes a batch when its oldest item has waited d in the buffer.
// The default is [BatcherDefaultMaxWait]. A d <= 0 turns the time trigger
// off, which is allowed only together with an explicit [MaxItems] or
// [MaxBytes]; batches are then flushed only when full, by [Batcher.Flush] or
// by [Batcher.Close].
func MaxWait(d time.Duration) BatcherOption {
	return BatcherOption{func(s *batcherSettings) {
		s.maxWait, s.maxWaitSet = d, true
	}}
}

// FlushConcurrency lets up to n flushes run at the same time. n must be >= 1;
// the default is [BatcherDefaultFlushConcurrency]. Without [Partition], n > 1
// means batches may complete out of order; with Partition, the batches of one
// partition are still flushed one at a time, in order. When each flush is a
// database commit, throughput grows with n up to about the size of the
// connection pool: commits (fsyncs) overlap.
func FlushConcurrency(n int) BatcherOption {
	return BatcherOption{func(s *batcherSettings) {
		if n < 1 {
			s.errs = append(s.errs, fmt.Errorf("queue: FlushConcurrency must be >= 1, got %d", n))
		}
		s.concurrency = n
	}}
}

// Buffer bounds the number of items accepted but not yet handed to a flush
// (the batches being filled plus the full batches waiting for a flush slot).
// When the buffer is full, [Batcher.Add] blocks until a flush starts and
// frees room. n must be >= 1; the default is MaxItems × (FlushConcurrency +
// 1). The memory held is bounded by about Buffer + FlushConcurrency ×
// MaxItems items. When the buffer is full and no full batch is queued, the
// open batches are flushed early, smaller: a Buffer below MaxItems caps
// batches at Buffer items, and with [Partition] a buffer of MaxItems × the
// partitions active at once keeps batches full.
func Buffer(n int) BatcherOption {
	return BatcherOption{func(s *batcherSettings) {
		if n < 1 {
			s.errs = append(s.errs, fmt.Errorf("queue: Buffer must be >= 1, got %d", n))
		}
		s.buffer, s.bufferSet = n, true
	}}
}

// Retry calls the flush function up to attempts times in all for a batch
// that fails. Between attempts it waits backoff(attempt), where attempt is 1
// after the first failure; a nil backoff retries at once. When a flush
// reports per-item failures with a [BatchError], only the failed items are
// retried. attempts must be >= 1; the default is 1 (no retry). Waits are cut
// short only when [Batcher.Close] gives up.
func Retry(attempts int, backoff func(attempt int) time.Duration) BatcherOption {
	return BatcherOption{func(s *batcherSettings) {
		if attempts < 1 {
			s.errs = append(s.errs, fmt.Errorf("queue: Retry attempts must be >= 1, got %d", attempts))
		}
		s.attempts, s.backoff = attempts, backoff
	}}
}

// OnError is called once for each batch that still has failed items after
// all attempts, with exactly those items (in their original order) and the
// error. When only some items of the batch failed, err is a [BatchError]
// whose indexes refer to items. fn runs on the flushing goroutine before the
// batch's [Batcher.AddWait] callers are released; it must not retain items
// after it returns. A panic in fn is recovered and logged. T must be the
// Batcher's item type (NewBatcher checks it).
func OnError[T any](fn func(items []T, err error)) BatcherOption {
	return BatcherOption{func(s *batcherSettings) {
		if fn == nil {
			s.errs = append(s.errs, fmt.Errorf("queue: OnError func must not be nil"))
		}
		s.onError, s.onErrorSet = fn, true
	}}
}

// Partition splits items into independent streams by key: each partition has
// its own batches and thresholds, a batch holds items of one partition only,
// and the batches of a partition are flushed one at a time, in order, so the
// order of items within a partition is preserved even with
// [FlushConcurrency] > 1. key is called once per item, outside any lock. T
// must be the Batcher's item type (NewBatcher checks it).
func Partition[T any](key func(T) string) BatcherOption {
	return BatcherOption{func(s *batcherSettings) {
		if key == nil {
			s.errs = append(s.errs, fmt.Errorf("queue: Partition func must not be nil"))
		}
		s.partition, s.partSet = key, true
	}}
}

// BatchLogger sets the logger for failed flushes and recovered panics. The
// default logs nothing.
func BatchLogger(l *slog.Logger) BatcherOption {
	return BatcherOption{func(s *batcherSettings) {
		s.logger = l
	}}
}

// BatchTimeout bounds each call of the flush function: its context is
// cancelled after d. A timed-out call is a failure like any other (retried
// per [Retry]). d <= 0, the default, means no limit.
func BatchTimeout(d time.Duration) BatcherOption {
	return BatcherOption{func(s *batcherSettings) {
		s.timeout = d
	}}
}
