package queue

import (
	"fmt"
	"log/slog"
	"time"
)

// Defaults used when the matching option is not given.
const (
	// DefaultConcurrency is the default [Concurrency].
	DefaultConcurrency = 8
	// DefaultVisibilityTimeout is the default [VisibilityTimeout].
	DefaultVisibilityTimeout = 30 * time.Second
	// DefaultMaxAttempts is the default [MaxAttempts].
	DefaultMaxAttempts = 10
	// DefaultShutdownTimeout is the default [ShutdownTimeout].
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultBatchSize is the default [BatchSize] of a batch handler.
	DefaultBatchSize = 100
	// DefaultBatchWait is the default [BatchWait] of a batch handler.
	DefaultBatchWait = 10 * time.Millisecond
	// DefaultPublishRetryWindow is the default [PublishRetryWindow].
	DefaultPublishRetryWindow = time.Minute
)

// DefaultBackoff is the retry delay used when [Backoff] is not given: one
// second after the first failure, doubling each time, at most five minutes.
func DefaultBackoff(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	if attempt > 9 {
		return 5 * time.Minute
	}
	return min(time.Second<<(attempt-1), 5*time.Minute)
}

// Option configures a queue ([NewRedis], [NewMemory]).
type Option func(*queueConfig)

type queueConfig struct {
	prefix          string
	maxLen          int
	blockWhenFull   bool
	logger          *slog.Logger
	retryWindow     time.Duration
	publishPipes    int
	maxPublishBatch int
	waitReplicas    int              // WaitReplicas n (0: off)
	waitTimeout     time.Duration    // WaitReplicas timeout
	now             func() time.Time // Memory only; tests
	hooks           Hooks
}

func defaultQueueConfig() queueConfig {
	return queueConfig{
		retryWindow:     DefaultPublishRetryWindow,
		publishPipes:    2,
		maxPublishBatch: 512,
		now:             time.Now,
	}
}

func (c *queueConfig) validate() error {
	switch {
	case c.maxLen < 0:
		return fmt.Errorf("queue: MaxLen must be >= 0, got %d", c.maxLen)
	case c.retryWindow <= 0:
		return fmt.Errorf("queue: PublishRetryWindow must be > 0, got %v", c.retryWindow)
	case c.publishPipes < 1:
		return fmt.Errorf("queue: PublishPipelines must be >= 1, got %d", c.publishPipes)
	case c.waitReplicas < 0:
		return fmt.Errorf("queue: WaitReplicas n must be >= 0, got %d", c.waitReplicas)
	case c.waitReplicas > 0 && c.waitTimeout <= 0:
		return fmt.Errorf("queue: WaitReplicas timeout must be > 0, got %v", c.waitTimeout)
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// WithPrefix puts every Redis key of the queue under prefix (default: none).
// The keys are "<prefix>{<name>}:<suffix>": they share one hash tag, so one
// queue lives on one Redis Cluster slot.
func WithPrefix(prefix string) Option { return func(c *queueConfig) { c.prefix = prefix } }

// MaxLen bounds the backlog (ready + in-flight + delayed messages; dead
// letters do not count). When it is reached Publish returns [ErrFull], or
// waits for room when [BlockWhenFull] is true. 0, the default, is unbounded.
func MaxLen(n int) Option { return func(c *queueConfig) { c.maxLen = n } }

// BlockWhenFull makes Publish wait (polling, until its ctx is done) instead
// of returning [ErrFull] when the queue holds [MaxLen] messages.
func BlockWhenFull(block bool) Option { return func(c *queueConfig) { c.blockWhenFull = block } }

// WithLogger logs the queue's background problems (lost connections,
// reclaimed messages, recovered panics). Silent by default.
func WithLogger(l *slog.Logger) Option { return func(c *queueConfig) { c.logger = l } }

// PublishRetryWindow is how long Redis remembers a published message ID so
// that a client retry of the same publish (go-redis re-sends a command after
// a timeout) is not added twice, and a second publish with the same [WithID]
// is dropped. It must exceed the client's total retry time. Default one
// minute.
func PublishRetryWindow(d time.Duration) Option { return func(c *queueConfig) { c.retryWindow = d } }

// PublishPipelines is how many pipelines concurrent Publish calls may have
// in flight at once on a [Redis] queue (default 2). Calls that arrive while
// they are all busy are coalesced into the next pipeline.
func PublishPipelines(n int) Option { return func(c *queueConfig) { c.publishPipes = n } }

// WaitReplicas makes every publish of a [Redis] queue wait until n replicas
// of the primary acknowledged it, for at most timeout: the publish pipeline
// ends with Redis WAIT on the same connection (on a Cluster, on the master
// of the queue's slot), so one WAIT covers every message of the pipeline.
// A publish that fewer replicas acknowledged in time fails with an error
// matching [ErrNotReplicated]. Its outcome is then unknown, not failed: the
// primary holds the message, which is delivered unless a failover discards
// it, so retry it with [WithID] to stay exactly once.
//
// This narrows the window in which a failover to a lagging replica (Redis
// replication is asynchronous) loses acknowledged publishes: an
// acknowledged message is on n replicas as well. It does not close it (a
// replica that acknowledged may not be the one promoted when n is below the
// number of replicas, and WAIT does not make the write durable on disk);
// see RELIABILITY.md for measured figures. A publish costs one
// more command, shared by the coalesced pipeline, plus the replication
// round trip.
//
// timeout must be > 0 and below the client's ReadTimeout, because WAIT is
// read with the rest of the pipeline. n = 0 (the default) disables it. The
// client must be a *redis.Client (single node or Sentinel) or a
// *redis.ClusterClient. [Memory] has no replicas and ignores it.
func WaitReplicas(n int, timeout time.Duration) Option {
	return func(c *queueConfig) { c.waitReplicas, c.waitTimeout = n, timeout }
}

// ConsumeOption configures one Consume call.
type ConsumeOption func(*consumeConfig)

type consumeConfig struct {
	concurrency     int
	prefetch        int
	visibility      time.Duration
	maxAttempts     int
	backoff         func(attempt int) time.Duration
	consumer        string
	shutdownTimeout time.Duration
	batchSize       int
	batchWait       time.Duration
	block           time.Duration // how long one read blocks before rechecking ctx
	queue           string        // the queue's name, for hooks
	hooks           *Hooks        // the queue's hooks (nil: none)
}

func (c *consumeConfig) apply(opts []ConsumeOption, batch bool) error {
	*c = consumeConfig{
		concurrency:     DefaultConcurrency,
		visibility:      DefaultVisibilityTimeout,
		maxAttempts:     DefaultMaxAttempts,
		backoff:         DefaultBackoff,
		shutdownTimeout: DefaultShutdownTimeout,
		batchSize:       1,
		block:           300 * time.Millisecond,
	}
	if batch {
		c.batchSize = DefaultBatchSize
		c.batchWait = DefaultBatchWait
	}
	for _, o := range opts {
		if o != nil {
			o(c)
		}
	}
	switch {
	case c.concurrency < 1:
		return fmt.Errorf("queue: Concurrency must be >= 1, got %d", c.concurrency)
	case c.prefetch < 0:
		return fmt.Errorf("queue: Prefetch must be >= 1, got %d", c.prefetch)
	case c.visibility <= 0:
		return fmt.Errorf("queue: VisibilityTimeout must be > 0, got %v", c.visibility)
	case c.maxAttempts < 1:
		return fmt.Errorf("queue: MaxAttempts must be >= 1, got %d", c.maxAttempts)
	case c.backoff == nil:
		return fmt.Errorf("queue: Backoff must not be nil")
	case c.shutdownTimeout < 0:
		return fmt.Errorf("queue: ShutdownTimeout must be >= 0, got %v", c.shutdownTimeout)
	case c.batchSize < 1:
		return fmt.Errorf("queue: BatchSize must be >= 1, got %d", c.batchSize)
	case c.batchWait < 0:
		return fmt.Errorf("queue: BatchWait must be >= 0, got %v", c.batchWait)
	}
	if c.prefetch == 0 {
		c.prefetch = max(4*c.concurrency, c.batchSize*c.concurrency, 16)
	}
	if !batch && c.batchSize > 1 {
		return fmt.Errorf("queue: BatchSize %d needs a BatchHandler", c.batchSize)
	}
	return nil
}

// Concurrency is how many handlers run at once in one Consume call (default
// [DefaultConcurrency]; with a batch handler, how many batches).
func Concurrency(n int) ConsumeOption { return func(c *consumeConfig) { c.concurrency = n } }

// Prefetch is how many messages one Consume call holds at most, running or
// waiting for a free handler; it is also the COUNT of each read. Default:
// 4 × Concurrency (at least 16, and at least BatchSize × Concurrency).
// Prefetched messages of a consumer that dies wait for the visibility
// timeout like running ones, so do not set it much higher than needed.
func Prefetch(n int) ConsumeOption {
	return func(c *consumeConfig) {
		c.prefetch = n
		if n == 0 {
			c.prefetch = -1 // explicit 0 is invalid
		}
	}
}

// VisibilityTimeout is how long a message delivered to a consumer that
// stopped renewing its lease (it died) stays invisible before another
// consumer reclaims it. Live consumers renew the lease of running handlers
// every third of it, so handlers may run longer. Default 30 s. Unused by
// [Memory], whose consumers cannot die apart from the process.
func VisibilityTimeout(d time.Duration) ConsumeOption {
	return func(c *consumeConfig) { c.visibility = d }
}

// MaxAttempts is how many times a message is tried before it is
// dead-lettered (default [DefaultMaxAttempts]). 1 means no retries. On
// Redis, a message reclaimed from dead or stalled consumers after more than
// MaxAttempts deliveries is dead-lettered too, without running again.
func MaxAttempts(n int) ConsumeOption { return func(c *consumeConfig) { c.maxAttempts = n } }

// Backoff gives the delay before retry number attempt (1 after the first
// failure). Default [DefaultBackoff]. A delay <= 0 retries at once.
func Backoff(fn func(attempt int) time.Duration) ConsumeOption {
	return func(c *consumeConfig) { c.backoff = fn }
}

// ConsumerName names the consumer in the Redis consumer group (default: host
// name, process ID and a random suffix, unique per Consume call). A
// consumer that restarts with the same name takes over its own pending
// messages at once instead of after the visibility timeout, so a stable
// name (e.g. the pod name) speeds up recovery. Names must be unique among
// live consumers.
func ConsumerName(name string) ConsumeOption { return func(c *consumeConfig) { c.consumer = name } }

// ShutdownTimeout bounds how long Consume waits, after its ctx is done, for
// running handlers to finish (default 30 s). When it passes, the handlers'
// ctx is cancelled; messages whose handler still fails or has not finished
// are released to other consumers without counting as an attempt.
func ShutdownTimeout(d time.Duration) ConsumeOption {
	return func(c *consumeConfig) { c.shutdownTimeout = d }
}

// BatchSize is the most messages handed to one call of a [BatchHandler]
// (default [DefaultBatchSize]).
func BatchSize(n int) ConsumeOption { return func(c *consumeConfig) { c.batchSize = n } }

// BatchWait is how long a [BatchHandler] call waits, after its first
// message, for more messages to fill the batch (default
// [DefaultBatchWait]). 0 takes only what is already fetched.
func BatchWait(d time.Duration) ConsumeOption { return func(c *consumeConfig) { c.batchWait = d } }

// PublishOption configures one Publish call.
type PublishOption func(*publishConfig)

type publishConfig struct {
	delay       time.Duration
	dedupKey    string
	dedupWindow time.Duration
	headers     map[string]string
	id          string
	key         string
}

func (p *publishConfig) validate() error {
	switch {
	case p.delay < 0:
		return fmt.Errorf("queue: WithDelay must be >= 0, got %v", p.delay)
	case p.dedupKey != "" && p.dedupWindow <= 0:
		return fmt.Errorf("queue: WithDedupKey window must be > 0, got %v", p.dedupWindow)
	}
	for k := range p.headers {
		if k == "" {
			return fmt.Errorf("queue: WithHeaders key must not be empty")
		}
	}
	return nil
}

// WithDelay makes the message visible to consumers only after d.
func WithDelay(d time.Duration) PublishOption { return func(p *publishConfig) { p.delay = d } }

// WithDedupKey drops the message, returning the first message's ID and
// [ErrDuplicate], when a message with the same key was published within
// window.
func WithDedupKey(key string, window time.Duration) PublishOption {
	return func(p *publishConfig) { p.dedupKey, p.dedupWindow = key, window }
}

// WithHeaders attaches headers to the message (copied).
func WithHeaders(h map[string]string) PublishOption {
	return func(p *publishConfig) {
		if len(h) == 0 {
			return
		}
		if p.headers == nil {
			p.headers = make(map[string]string, len(h))
		}
		for k, v := range h {
			p.headers[k] = v
		}
	}
}

// WithID gives the message its ID instead of a generated one. A second
// publish with the same ID within [PublishRetryWindow] is taken for a retry
// of the first and dropped (returning the ID and no error), which makes an
// application-level retry of Publish safe.
func WithID(id string) PublishOption { return func(p *publishConfig) { p.id = id } }

// WithKey gives the message an ordering key. On queue/kafka the key picks
// the partition, and messages with one key are handled one at a time, in
// publish order (messages with different keys run concurrently); only a
// message that failed and is retried loses its place. The Redis, memory and
// RabbitMQ backends accept it and ignore it: they do not order messages,
// with or without a key. "" means no key.
func WithKey(key string) PublishOption { return func(p *publishConfig) { p.key = key } }

// applyPublishOptions returns the publish configuration opts give. With no
// options the caller's configuration stays on its stack (calling an option
// with a pointer to it would move it to the heap: an allocation per
// publish).
func applyPublishOptions(opts []PublishOption) publishConfig {
	if len(opts) == 0 {
		return publishConfig{}
	}
	pc := new(publishConfig)
	for _, o := range opts {
		if o != nil {
			o(pc)
		}
	}
	return *pc
}
