package rabbitmq

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/outrigger-dev/outrigger/queue"
)

// QueueType is the kind of RabbitMQ queue the messages live in.
type QueueType string

const (
	// Quorum queues are replicated with Raft, durable, and survive the loss
	// of a minority of cluster nodes. The default.
	Quorum QueueType = "quorum"
	// Classic queues are durable on one node. Faster; lost with that node's
	// disk.
	Classic QueueType = "classic"
)

// Defaults used when the matching Config field is zero.
const (
	// DefaultPublishChannels is the default Config.PublishChannels.
	DefaultPublishChannels = 4
	// DefaultReconnectMin is the default Config.ReconnectMin.
	DefaultReconnectMin = 100 * time.Millisecond
	// DefaultReconnectMax is the default Config.ReconnectMax.
	DefaultReconnectMax = 10 * time.Second
)

// Config says how to reach the broker and how to lay out the queue.
type Config struct {
	// URL is the AMQP URL, e.g. "amqp://guest:guest@127.0.0.1:5672/".
	// Required.
	URL string
	// QueueType is Quorum (default) or Classic. It applies to the main queue,
	// the dead-letter queue and the delay queues; it cannot change for an
	// existing queue (the broker refuses the declaration).
	QueueType QueueType
	// PublishChannels is how many confirm-mode channels publishes are spread
	// over (default DefaultPublishChannels). Publishes on one channel are
	// pipelined: each waits for its own confirm, not for the others'.
	PublishChannels int
	// ReconnectMin and ReconnectMax bound the backoff between reconnection
	// attempts (defaults DefaultReconnectMin, DefaultReconnectMax); each
	// wait is drawn at random from the upper half of the current backoff.
	ReconnectMin, ReconnectMax time.Duration
	// AMQP is passed to amqp091-go's DialConfig (TLS, heartbeat, vhost,
	// connection name in Properties["connection_name"]). Optional.
	AMQP amqp.Config
}

func (c *Config) validate() error {
	switch {
	case c.URL == "":
		return errors.New("rabbitmq: Config.URL must not be empty")
	case c.QueueType != "" && c.QueueType != Quorum && c.QueueType != Classic:
		return fmt.Errorf("rabbitmq: Config.QueueType must be %q or %q, got %q", Quorum, Classic, c.QueueType)
	case c.PublishChannels < 0:
		return fmt.Errorf("rabbitmq: Config.PublishChannels must be >= 0, got %d", c.PublishChannels)
	case c.ReconnectMin < 0:
		return fmt.Errorf("rabbitmq: Config.ReconnectMin must be >= 0, got %v", c.ReconnectMin)
	case c.ReconnectMax < 0:
		return fmt.Errorf("rabbitmq: Config.ReconnectMax must be >= 0, got %v", c.ReconnectMax)
	}
	if c.QueueType == "" {
		c.QueueType = Quorum
	}
	if c.PublishChannels == 0 {
		c.PublishChannels = DefaultPublishChannels
	}
	if c.ReconnectMin == 0 {
		c.ReconnectMin = DefaultReconnectMin
	}
	if c.ReconnectMax == 0 {
		c.ReconnectMax = DefaultReconnectMax
	}
	if c.ReconnectMax < c.ReconnectMin {
		return fmt.Errorf("rabbitmq: Config.ReconnectMax (%v) must be >= Config.ReconnectMin (%v)", c.ReconnectMax, c.ReconnectMin)
	}
	if c.AMQP.Properties == nil {
		c.AMQP.Properties = amqp.Table{}
	}
	if _, ok := c.AMQP.Properties["connection_name"]; !ok {
		c.AMQP.Properties["connection_name"] = "outrigger-queue"
	}
	return nil
}

// Errors of the RabbitMQ backend. Match them with errors.Is.
var (
	// ErrNotConfirmed is returned by Publish when the connection or channel
	// was lost after the message was sent and before the broker confirmed
	// it: the message may or may not be queued. Retrying may duplicate it.
	ErrNotConfirmed = errors.New("rabbitmq: publish not confirmed (connection lost); the message may or may not be queued")
	// ErrNacked is returned by Publish when the broker refused the message
	// (a negative confirm) for another reason than MaxLen.
	ErrNacked = errors.New("rabbitmq: publish refused by the broker")
)

// Queue is a [queue.Queue] on RabbitMQ. It is safe for concurrent use by
// multiple goroutines. Create it with [New]; Close it when done.
type Queue struct {
	cfg   Config
	set   queue.Settings
	name  string // full name of the main queue (prefix + name)
	dead  string // dead-letter queue
	log   *slog.Logger
	cm    *connManager
	pubs  []*pubChannel
	next  atomic.Uint64 // round robin over pubs
	cnt   queue.CounterSet
	idPfx string
	idSeq atomic.Uint64

	inFlight atomic.Int64 // deliveries held by this process's consumers

	delayMu sync.Mutex            // protects delays
	delays  map[int64]*delayQueue // delay queues by TTL in ms

	mu        sync.Mutex // protects closed and consumers
	closed    bool
	consumers map[*int]context.CancelFunc
	running   sync.WaitGroup
}

var _ queue.Queue = (*Queue)(nil)

// New connects to RabbitMQ and declares the queue name (with the WithPrefix
// prefix), durable, of Config.QueueType, and its dead-letter queue
// "<name>.dead". Delay queues "<name>.delay.<ms>" are declared on first use.
// Of the queue options, WithPrefix, MaxLen, BlockWhenFull and WithLogger
// apply; PublishRetryWindow and PublishPipelines are Redis-only and
// ignored. The context bounds the first connection and the declarations.
func New(ctx context.Context, cfg Config, name string, opts ...queue.Option) (*Queue, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if name == "" {
		return nil, errors.New("rabbitmq: name must not be empty")
	}
	set, err := queue.ResolveOptions(opts...)
	if err != nil {
		return nil, err
	}
	full := set.Prefix + name
	if len(full)+len(".delay.1000000000") > 255 {
		return nil, fmt.Errorf("rabbitmq: name must be at most %d bytes with its prefix, got %d", 255-len(".delay.1000000000"), len(full))
	}
	log := set.Logger.With("queue", full)
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	q := &Queue{
		cfg: cfg, set: set, name: full, dead: full + ".dead", log: log,
		idPfx:     hex.EncodeToString(rnd[:]) + "-" + strconv.FormatInt(time.Now().UnixMilli(), 36) + "-",
		delays:    make(map[int64]*delayQueue),
		consumers: make(map[*int]context.CancelFunc),
	}
	type result struct {
		cm  *connManager
		err error
	}
	done := make(chan result, 1)
	go func() {
		cm, err := newConnManager(cfg.URL, cfg.AMQP, cfg.ReconnectMin, cfg.ReconnectMax, log)
		done <- result{cm, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, r.err
		}
		q.cm = r.cm
	case <-ctx.Done():
		go func() {
			if r := <-done; r.cm != nil {
				r.cm.close()
			}
		}()
		return nil, fmt.Errorf("rabbitmq: dial: %w", ctx.Err())
	}
	q.pubs = make([]*pubChannel, cfg.PublishChannels)
	for i := range q.pubs {
		q.pubs[i] = &pubChannel{cm: q.cm}
	}
	if err := q.declare(ctx); err != nil {
		q.shutdown()
		return nil, err
	}
	return q, nil
}

// queueArgs are the arguments of the main and dead-letter queues.
func (q *Queue) queueArgs(main bool) amqp.Table {
	args := amqp.Table{"x-queue-type": string(q.cfg.QueueType)}
	if main && q.set.MaxLen > 0 {
		args["x-max-length"] = int64(q.set.MaxLen)
		args["x-overflow"] = "reject-publish"
	}
	return args
}

// declare declares the main and dead-letter queues.
func (q *Queue) declare(ctx context.Context) error {
	ch, err := q.cm.channel(ctx)
	if err != nil {
		return err
	}
	defer ch.Close()
	if _, err := ch.QueueDeclare(q.name, true, false, false, false, q.queueArgs(true)); err != nil {
		return fmt.Errorf("rabbitmq: declare queue %q: %w", q.name, err)
	}
	if _, err := ch.QueueDeclare(q.dead, true, false, false, false, q.queueArgs(false)); err != nil {
		return fmt.Errorf("rabbitmq: declare queue %q: %w", q.dead, err)
	}
	return nil
}

// Name returns the full name of the main queue (prefix included).
func (q *Queue) Name() string { return q.name }

// Counters returns this process's running totals.
func (q *Queue) Counters() queue.Counters { return q.cnt.Snapshot() }

// newID returns a message ID unique across processes.
func (q *Queue) newID() string {
	return q.idPfx + strconv.FormatUint(q.idSeq.Add(1), 36)
}

func (q *Queue) isClosed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed
}

// Close fails later calls with queue.ErrClosed, stops running Consume calls
// (they drain as when their ctx is done) and waits for them, then closes
// the connection. Messages stay in the broker.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	for _, cancel := range q.consumers {
		cancel()
	}
	q.mu.Unlock()
	q.running.Wait()
	q.shutdown()
	return nil
}

func (q *Queue) shutdown() {
	for _, p := range q.pubs {
		p.close()
	}
	q.cm.close()
}

// Delete deletes the queue's broker objects: the main queue, the
// dead-letter queue and the delay queues this process declared (delay
// queues of other processes expire on their own), with every message in
// them. Use it to remove a queue for good, and in tests.
func (q *Queue) Delete(ctx context.Context) error {
	if q.isClosed() {
		return fmt.Errorf("rabbitmq: %w", queue.ErrClosed)
	}
	ch, err := q.cm.channel(ctx)
	if err != nil {
		return err
	}
	defer ch.Close()
	names := []string{q.name, q.dead}
	q.delayMu.Lock()
	for _, d := range q.delays {
		names = append(names, d.name)
	}
	clear(q.delays)
	q.delayMu.Unlock()
	for _, n := range names {
		if _, err := ch.QueueDelete(n, false, false, false); err != nil {
			return fmt.Errorf("rabbitmq: delete queue %q: %w", n, err)
		}
	}
	return nil
}
