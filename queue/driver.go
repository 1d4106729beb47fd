package queue

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// ErrUnsupported is returned by a backend for a feature it cannot give (for
// example WithDedupKey on RabbitMQ). Each backend's package doc lists them.
var ErrUnsupported = errors.New("queue: unsupported by this backend")

// This file is the extension point for backends that live in their own
// package (queue/rabbitmq): they resolve the options with the functions
// below and run Consume on the same engine as Redis and Memory, so drain,
// shutdown timeout, batching, panic recovery, retries and dead-lettering
// decisions are identical on every backend.

// Settings is the resolved form of a queue's [Option]s, for backends
// outside this package.
type Settings struct {
	// Prefix is the name prefix given with WithPrefix.
	Prefix string
	// MaxLen is the backlog bound given with MaxLen (0: unbounded).
	MaxLen int
	// BlockWhenFull is the BlockWhenFull option.
	BlockWhenFull bool
	// Logger is the WithLogger logger (a discarding logger by default).
	Logger *slog.Logger
	// Hooks are the WithHooks hooks. A backend calls BeforePublish and
	// AfterPublish around each message it publishes, Reclaimed when it takes
	// over a dead consumer's messages, and passes them to ConsumeSpec.Observe.
	Hooks *Hooks
}

// ResolveOptions applies and validates queue options for a backend outside
// this package.
func ResolveOptions(opts ...Option) (Settings, error) {
	c := defaultQueueConfig()
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if err := c.validate(); err != nil {
		return Settings{}, err
	}
	h := c.hooks
	return Settings{Prefix: c.prefix, MaxLen: c.maxLen, BlockWhenFull: c.blockWhenFull, Logger: c.logger, Hooks: &h}, nil
}

// PublishSettings is the resolved form of a Publish call's
// [PublishOption]s, for backends outside this package.
type PublishSettings struct {
	// Delay is the WithDelay delay.
	Delay time.Duration
	// DedupKey and DedupWindow are the WithDedupKey arguments.
	DedupKey    string
	DedupWindow time.Duration
	// Headers are the WithHeaders headers (nil when none).
	Headers map[string]string
	// ID is the WithID message ID ("" when not given).
	ID string
	// Key is the WithKey ordering key ("" when not given).
	Key string
}

// ResolvePublishOptions applies and validates publish options for a
// backend outside this package.
func ResolvePublishOptions(opts ...PublishOption) (PublishSettings, error) {
	pc := applyPublishOptions(opts)
	if err := pc.validate(); err != nil {
		return PublishSettings{}, err
	}
	return PublishSettings{Delay: pc.delay, DedupKey: pc.dedupKey, DedupWindow: pc.dedupWindow, Headers: pc.headers, ID: pc.id, Key: pc.key}, nil
}

// Delivery is one message a [Driver] hands to the consume engine.
type Delivery struct {
	// Message is what the handler sees.
	Message *Message
	// Handle is the driver's own data for settling the delivery.
	Handle any
	// Stalled, when above the consumer's MaxAttempts, is how many times the
	// message was delivered without being settled (its consumers crashed):
	// it is dead-lettered without running the handler again.
	Stalled int

	d delivery // the engine's view of it, kept here to save an allocation
}

// Outcome says how a delivery ends.
type Outcome uint8

const (
	// OutcomeAck: the handler succeeded; remove the message.
	OutcomeAck Outcome = iota
	// OutcomeRetry: it failed; deliver it again after Settlement.Delay with
	// Attempt+1 and LastError = Settlement.Err.
	OutcomeRetry
	// OutcomeDeadLetter: it failed for the last time; move it to the dead
	// letters with LastError = Settlement.Err.
	OutcomeDeadLetter
	// OutcomeRelease: not processed (shutdown); hand it back as it was,
	// without counting an attempt.
	OutcomeRelease
)

// Settlement is the outcome of one delivery.
type Settlement struct {
	Delivery *Delivery
	Outcome  Outcome
	// Delay is the retry delay (OutcomeRetry).
	Delay time.Duration
	// Err is the handler's error text (OutcomeRetry, OutcomeDeadLetter).
	Err string
}

// Driver is the backend side of one Consume call run by [ConsumeSpec.Run].
// Its methods are called from one goroutine each (Fetch from the fetcher,
// Settle from the settler), concurrently with each other.
type Driver interface {
	// Fetch returns up to max deliveries, waiting for the first one until
	// ctx is done (then it returns what it has, possibly nothing). An error
	// is logged and Fetch is called again after a backoff. A Delivery is
	// returned once: not again before it is settled.
	Fetch(ctx context.Context, max int) ([]*Delivery, error)
	// Settle applies outcomes. An error makes the engine retry the whole
	// batch (with backoff) until the shutdown deadline, so Settle must be
	// idempotent, and must return nil for deliveries it can no longer
	// settle (for example because the broker already took them back).
	// Settle must not keep ss after it returns (the engine reuses it).
	Settle(ctx context.Context, ss []Settlement) error
	// Leave is called once when Consume ends, after the last Settle.
	Leave(ctx context.Context)
}

// Gate is implemented by a [Driver] that can take a delivery back between
// Fetch and the start of its handler (a Kafka partition given up in a
// rebalance), or whose handlers need a context of the driver's (cancelled
// when it takes their deliveries back).
//
// Before a [Handler] runs a delivery, the engine calls Enter with the
// delivery and the context the handler would get (after [Hooks].OnProcess).
// The handler then runs with the returned ctx, and done, if not nil, is
// called once it has returned. When ok is false the handler does not run
// and the delivery is settled as OutcomeRelease. A [BatchHandler]'s
// deliveries do not go through Enter.
type Gate interface {
	Enter(ctx context.Context, d *Delivery) (hctx context.Context, done func(), ok bool)
}

// ConsumeSpec is a validated Consume call (handler and options), for
// backends outside this package.
type ConsumeSpec struct {
	cc consumeConfig
	h  Handler
	bh BatchHandler
}

// NewConsumeSpec validates Consume's handler (a [Handler] or a
// [BatchHandler], as for [Queue.Consume]) and options.
func NewConsumeSpec(handler any, opts ...ConsumeOption) (*ConsumeSpec, error) {
	h, bh, err := toHandlers(handler)
	if err != nil {
		return nil, err
	}
	s := &ConsumeSpec{h: h, bh: bh}
	if err := s.cc.apply(opts, bh != nil); err != nil {
		return nil, err
	}
	return s, nil
}

// Prefetch is the resolved [Prefetch]: the most deliveries the engine holds.
func (s *ConsumeSpec) Prefetch() int { return s.cc.prefetch }

// Concurrency is the resolved [Concurrency].
func (s *ConsumeSpec) Concurrency() int { return s.cc.concurrency }

// MaxAttempts is the resolved [MaxAttempts].
func (s *ConsumeSpec) MaxAttempts() int { return s.cc.maxAttempts }

// ConsumerName is the [ConsumerName] given ("" when none).
func (s *ConsumeSpec) ConsumerName() string { return s.cc.consumer }

// Observe makes Run call hooks (OnProcess, OnProcessed) for the messages of
// queue; a nil hooks calls none.
func (s *ConsumeSpec) Observe(queue string, hooks *Hooks) { s.cc.queue, s.cc.hooks = queue, hooks }

// Run consumes from d until ctx is done, then drains like [Redis.Consume].
// Settled outcomes are counted in cnt, problems logged to log (nil: silent).
func (s *ConsumeSpec) Run(ctx context.Context, d Driver, cnt *CounterSet, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cnt == nil {
		cnt = new(CounterSet)
	}
	be := &driverBackend{d: d, maxAttempts: s.cc.maxAttempts}
	be.gate, _ = d.(Gate)
	return runEngine(ctx, be, &cnt.c, s.cc, s.h, s.bh, log)
}

// CounterSet is the live, concurrency-safe form of [Counters], for backends
// outside this package. The zero value is ready to use.
type CounterSet struct{ c counters }

// Snapshot returns the running totals.
func (s *CounterSet) Snapshot() Counters { return s.c.snapshot() }

// CountPublish records the outcome of one publish (nil, ErrDuplicate or
// ErrFull are counted; other errors are not).
func (s *CounterSet) CountPublish(err error) { s.c.countPublish(err) }

// driverBackend adapts a Driver to the engine. Its buffers are reused:
// fetch is called from the engine's fetcher only, settle from its settler
// only, and neither result is kept past the next call.
type driverBackend struct {
	d           Driver
	gate        Gate // d, if it is one
	maxAttempts int
	fetched     []*delivery  // fetch's result (used by the fetcher only)
	settled     []Settlement // settle's argument to the Driver (used by the settler only)
}

func (b *driverBackend) fetch(ctx context.Context, max int) ([]*delivery, error) {
	ds, err := b.d.Fetch(ctx, max)
	out := b.fetched[:0]
	for _, x := range ds {
		x.d = delivery{msg: x.Message, ext: x}
		if x.Stalled > b.maxAttempts {
			x.d.stalled = int64(x.Stalled)
		}
		out = append(out, &x.d)
	}
	clear(out[len(out):cap(out)]) // drop what an earlier, longer fetch left
	b.fetched = out
	return out, err
}

func (b *driverBackend) settle(ctx context.Context, ss []settlement) error {
	out := b.settled[:0]
	for _, s := range ss {
		o := OutcomeAck
		switch s.kind {
		case settleRetry:
			o = OutcomeRetry
		case settleDead:
			o = OutcomeDeadLetter
		case settleRelease:
			o = OutcomeRelease
		}
		out = append(out, Settlement{Delivery: s.d.ext, Outcome: o, Delay: s.delay, Err: s.err})
	}
	err := b.d.Settle(ctx, out)
	clear(out) // drop the deliveries for the collector
	b.settled = out
	return err
}

func (*driverBackend) renew(context.Context, []*delivery) error { return nil }
func (*driverBackend) background(<-chan struct{})               {}
func (b *driverBackend) leave(ctx context.Context)              { b.d.Leave(ctx) }
