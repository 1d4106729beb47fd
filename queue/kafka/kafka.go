package kafka

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"

	"github.com/outrigger-dev/outrigger/queue"
)

// Defaults used when the matching Config field is zero.
const (
	// DefaultPartitions is the default Config.Partitions.
	DefaultPartitions = 6
	// DefaultClientID is the default Config.ClientID.
	DefaultClientID = "outrigger"
	// DefaultCommitInterval is the default Config.CommitInterval.
	DefaultCommitInterval = 500 * time.Millisecond
	// DefaultDelayedBuffer is the default Config.DelayedBuffer.
	DefaultDelayedBuffer = 1000
	// DefaultRebalanceTimeout is the default Config.RebalanceTimeout
	// (Kafka's rebalance.timeout.ms default).
	DefaultRebalanceTimeout = time.Minute
)

// maxTiers bounds Config.RetryTopics.
const maxTiers = 16

// DefaultRetryTopics returns the delay tiers used when Config.RetryTopics is
// empty: 1s, 10s, 1m and 10m.
func DefaultRetryTopics() []time.Duration {
	return []time.Duration{time.Second, 10 * time.Second, time.Minute, 10 * time.Minute}
}

// Config says how to reach the brokers and how to lay out the queue's
// topics. Only Brokers is required.
type Config struct {
	// Brokers are the seed brokers, "host:port". Required.
	Brokers []string
	// ClientID is the Kafka client ID of the queue's clients (default
	// DefaultClientID); consumers add their ConsumerName to it.
	ClientID string
	// Partitions is the partition count of the topics New creates (main and
	// retry topics; default DefaultPartitions). Existing topics keep theirs.
	Partitions int
	// ReplicationFactor is the replication factor of the topics New creates.
	// 0 or -1 uses the broker's default.replication.factor.
	ReplicationFactor int
	// GroupID is the consumer group of every Consume call (default
	// "<prefix><name>").
	GroupID string
	// TLS, when not nil, dials the brokers with TLS.
	TLS *tls.Config
	// SASL, when not nil, authenticates with this mechanism
	// (github.com/twmb/franz-go/pkg/sasl/plain, scram, oauth, aws).
	SASL sasl.Mechanism
	// Opts are passed to every franz-go client the queue creates, after the
	// queue's own (so they win). Do not disable idempotent writes or lower
	// the acks: Publish's guarantees rest on them.
	Opts []kgo.Opt
	// RetryTopics are the delay tiers: one topic "<name>.retry.<tier>" per
	// duration, ascending. A retry or a WithDelay message with delay d goes
	// to the largest tier <= d (the first tier when d is below all of them)
	// and is delivered when d has passed. Default DefaultRetryTopics.
	RetryTopics []time.Duration
	// TopicConfigs are topic configs (e.g. "retention.ms") set on the main
	// and retry topics New creates.
	TopicConfigs map[string]string
	// NoCreateTopics makes New check that the topics exist instead of
	// creating them (for clusters where the application may not create
	// topics).
	NoCreateTopics bool
	// CommitInterval is how often consumers commit the offsets of finished
	// messages (default DefaultCommitInterval); they also commit on every
	// revoke and when Consume ends.
	CommitInterval time.Duration
	// SessionTimeout and HeartbeatInterval are the consumer group's
	// session.timeout.ms and heartbeat.interval.ms (franz-go's defaults,
	// 45s and 3s, when zero): how long a consumer that died keeps its
	// partitions.
	SessionTimeout, HeartbeatInterval time.Duration
	// RebalanceTimeout is the group's rebalance.timeout.ms (default
	// DefaultRebalanceTimeout).
	RebalanceTimeout time.Duration
	// RevokeWait is how long a consumer losing partitions in a rebalance
	// lets the messages it already fetched from them finish before it gives
	// them up (their handlers' ctx is then cancelled and their results
	// dropped). Default half of RebalanceTimeout; it must be below it.
	RevokeWait time.Duration
	// DelayedBuffer is how many not-yet-due messages of one retry tier a
	// consumer holds in memory; past it the consumer pauses that tier's
	// topic (default DefaultDelayedBuffer).
	DelayedBuffer int
}

func (c *Config) validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("kafka: Config.Brokers must not be empty")
	}
	for i, b := range c.Brokers {
		if b == "" {
			return fmt.Errorf("kafka: Config.Brokers[%d] must not be empty", i)
		}
	}
	switch {
	case c.Partitions < 0 || c.Partitions > 100000:
		return fmt.Errorf("kafka: Config.Partitions must be between 1 and 100000 (0 for the default %d), got %d", DefaultPartitions, c.Partitions)
	case c.ReplicationFactor < -1 || c.ReplicationFactor > 32767:
		return fmt.Errorf("kafka: Config.ReplicationFactor must be >= 1 (0 or -1 for the broker default), got %d", c.ReplicationFactor)
	case c.CommitInterval < 0:
		return fmt.Errorf("kafka: Config.CommitInterval must be >= 0, got %v", c.CommitInterval)
	case c.SessionTimeout < 0:
		return fmt.Errorf("kafka: Config.SessionTimeout must be >= 0, got %v", c.SessionTimeout)
	case c.HeartbeatInterval < 0:
		return fmt.Errorf("kafka: Config.HeartbeatInterval must be >= 0, got %v", c.HeartbeatInterval)
	case c.RebalanceTimeout < 0:
		return fmt.Errorf("kafka: Config.RebalanceTimeout must be >= 0, got %v", c.RebalanceTimeout)
	case c.RevokeWait < 0:
		return fmt.Errorf("kafka: Config.RevokeWait must be >= 0, got %v", c.RevokeWait)
	case c.DelayedBuffer < 0:
		return fmt.Errorf("kafka: Config.DelayedBuffer must be >= 0, got %d", c.DelayedBuffer)
	}
	if len(c.RetryTopics) > maxTiers {
		return fmt.Errorf("kafka: Config.RetryTopics must have at most %d tiers, got %d", maxTiers, len(c.RetryTopics))
	}
	for i, d := range c.RetryTopics {
		switch {
		case d <= 0:
			return fmt.Errorf("kafka: Config.RetryTopics[%d] must be > 0, got %v", i, d)
		case d%time.Millisecond != 0:
			return fmt.Errorf("kafka: Config.RetryTopics[%d] must be a whole number of milliseconds, got %v", i, d)
		case i > 0 && d <= c.RetryTopics[i-1]:
			return fmt.Errorf("kafka: Config.RetryTopics must be strictly ascending, got %v after %v at [%d]", d, c.RetryTopics[i-1], i)
		}
	}
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = -1
	}
	if len(c.RetryTopics) == 0 {
		c.RetryTopics = DefaultRetryTopics()
	} else {
		c.RetryTopics = append([]time.Duration(nil), c.RetryTopics...)
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = DefaultCommitInterval
	}
	if c.RebalanceTimeout == 0 {
		c.RebalanceTimeout = DefaultRebalanceTimeout
	}
	if c.RevokeWait == 0 {
		c.RevokeWait = c.RebalanceTimeout / 2
	}
	if c.RevokeWait >= c.RebalanceTimeout {
		return fmt.Errorf("kafka: Config.RevokeWait (%v) must be below Config.RebalanceTimeout (%v)", c.RevokeWait, c.RebalanceTimeout)
	}
	if c.SessionTimeout > 0 && c.HeartbeatInterval >= c.SessionTimeout {
		return fmt.Errorf("kafka: Config.HeartbeatInterval (%v) must be below Config.SessionTimeout (%v)", c.HeartbeatInterval, c.SessionTimeout)
	}
	if c.DelayedBuffer == 0 {
		c.DelayedBuffer = DefaultDelayedBuffer
	}
	return nil
}

// tier is one retry topic.
type tier struct {
	delay time.Duration
	topic string
}

// Queue is a [queue.Queue] on Kafka. It is safe for concurrent use by
// multiple goroutines. Create it with [New]; Close it when done.
type Queue struct {
	cfg   Config
	set   queue.Settings
	name  string // main topic (prefix + name)
	group string
	tiers []tier
	dead  string
	log   *slog.Logger
	cl    *kgo.Client // producer and admin requests
	adm   *kadm.Client
	cnt   queue.CounterSet
	// stale counts settlements of deliveries whose partition this process
	// had already given up (the engine counted them; Counters corrects).
	stale [4]atomic.Int64
	idPfx string
	idSeq atomic.Uint64

	deadMu  sync.Mutex // serializes dead-letter index reads
	deadIdx *deadIndex // nil until first used (protected by deadMu)

	mu        sync.Mutex // protects consumers and writes of closed
	closed    atomic.Bool
	consumers map[*driver]context.CancelFunc
	running   sync.WaitGroup

	// probeEvery, when set (by tests), replaces probeInterval's period.
	probeEvery time.Duration
}

var _ queue.Queue = (*Queue)(nil)

// New connects to Kafka, creates (or, with Config.NoCreateTopics, checks)
// the queue's topics and returns the queue. The topics are
// "<prefix><name>" (prefix from queue.WithPrefix), one retry topic
// "<prefix><name>.retry.<tier>" per Config.RetryTopics tier and the
// dead-letter topic "<prefix><name>.dead". Of the queue options, WithPrefix
// and WithLogger apply; MaxLen returns queue.ErrUnsupported (Kafka has no
// bound on a topic's backlog); PublishRetryWindow, PublishPipelines and
// WaitReplicas are Redis options and are ignored. ctx bounds the
// connection and the topic creation.
func New(ctx context.Context, cfg Config, name string, opts ...queue.Option) (*Queue, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if name == "" {
		return nil, errors.New("kafka: name must not be empty")
	}
	set, err := queue.ResolveOptions(opts...)
	if err != nil {
		return nil, err
	}
	if set.MaxLen > 0 {
		return nil, fmt.Errorf("kafka: MaxLen (a bounded backlog): %w", queue.ErrUnsupported)
	}
	full := set.Prefix + name
	q := &Queue{
		cfg:       cfg,
		set:       set,
		name:      full,
		group:     cfg.GroupID,
		dead:      full + ".dead",
		consumers: make(map[*driver]context.CancelFunc),
	}
	if q.group == "" {
		q.group = full
	}
	for _, d := range cfg.RetryTopics {
		q.tiers = append(q.tiers, tier{delay: d, topic: full + ".retry." + tierName(d)})
	}
	for _, t := range q.topics(true) {
		if err := checkTopicName(t); err != nil {
			return nil, err
		}
	}
	q.log = set.Logger.With("queue", full)
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	q.idPfx = hex.EncodeToString(rnd[:]) + "-" + strconv.FormatInt(time.Now().UnixMilli(), 36) + "-"

	popts := append(q.baseOpts(""),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.RecordPartitioner(kgo.UniformBytesPartitioner(64<<10, true, true, nil)),
	)
	popts = append(popts, cfg.Opts...)
	q.cl, err = kgo.NewClient(popts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: client: %w", err)
	}
	q.adm = kadm.NewClient(q.cl)
	if err := q.ensureTopics(ctx); err != nil {
		q.cl.Close()
		return nil, err
	}
	return q, nil
}

// baseOpts are the options every client of the queue gets (before
// Config.Opts).
func (q *Queue) baseOpts(consumer string) []kgo.Opt {
	id := q.cfg.ClientID
	if consumer != "" {
		id += "-" + consumer
	}
	o := []kgo.Opt{
		kgo.SeedBrokers(q.cfg.Brokers...),
		kgo.ClientID(id),
		kgo.WithLogger(kgoLogger{q.log}),
	}
	if q.cfg.TLS != nil {
		o = append(o, kgo.DialTLSConfig(q.cfg.TLS.Clone()))
	}
	if q.cfg.SASL != nil {
		o = append(o, kgo.SASL(q.cfg.SASL))
	}
	return o
}

// topics lists the queue's topics: main, retry tiers and (withDead) the
// dead-letter topic.
func (q *Queue) topics(withDead bool) []string {
	ts := []string{q.name}
	for _, t := range q.tiers {
		ts = append(ts, t.topic)
	}
	if withDead {
		ts = append(ts, q.dead)
	}
	return ts
}

// tierFor returns the index of the tier a delay d goes to: the largest
// tier <= d, or the first.
func (q *Queue) tierFor(d time.Duration) int {
	i := 0
	for j, t := range q.tiers {
		if t.delay <= d {
			i = j
		}
	}
	return i
}

// tierName formats a tier for a topic name: "500ms", "1s", "10m", "1h".
func tierName(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(int64(d/time.Millisecond), 10) + "ms"
}

// checkTopicName applies Kafka's topic name rules.
func checkTopicName(t string) error {
	if len(t) > 249 {
		return fmt.Errorf("kafka: topic %q is %d bytes, Kafka allows 249: shorten the name or prefix", t, len(t))
	}
	if t == "." || t == ".." {
		return fmt.Errorf("kafka: topic name %q is not allowed", t)
	}
	for _, c := range t {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("kafka: name and prefix may only contain ASCII letters, digits, '.', '_' and '-' (Kafka topic rules), got %q in %q", c, t)
		}
	}
	return nil
}

// Name returns the main topic's name (prefix included).
func (q *Queue) Name() string { return q.name }

// GroupID returns the consumer group of the queue's consumers.
func (q *Queue) GroupID() string { return q.group }

// Topics returns every topic of the queue: main, retry tiers (ascending)
// and dead-letter topic, in that order.
func (q *Queue) Topics() []string { return q.topics(true) }

// Client returns the franz-go client the queue publishes with, for admin
// requests of your own (kadm.NewClient). Do not close it: Close does.
func (q *Queue) Client() *kgo.Client { return q.cl }

// Counters returns this process's running totals.
func (q *Queue) Counters() queue.Counters {
	c := q.cnt.Snapshot()
	ack, retry, dead := q.stale[queue.OutcomeAck].Load(), q.stale[queue.OutcomeRetry].Load(), q.stale[queue.OutcomeDeadLetter].Load()
	// Deliveries of partitions given up in a rebalance were neither acked
	// nor retried here: the new owner handles them again.
	c.Acked -= ack
	c.Retried -= retry
	c.DeadLettered -= dead
	c.Released += ack + retry + dead
	return c
}

// newID returns a message ID unique across processes.
func (q *Queue) newID() string {
	var b [64]byte
	return string(q.appendID(b[:0]))
}

// appendID appends a new message ID to b.
func (q *Queue) appendID(b []byte) []byte {
	return strconv.AppendUint(append(b, q.idPfx...), q.idSeq.Add(1), 36)
}

func (q *Queue) isClosed() bool { return q.closed.Load() }

// drivers returns the running Consume calls' drivers.
func (q *Queue) drivers() []*driver {
	q.mu.Lock()
	defer q.mu.Unlock()
	ds := make([]*driver, 0, len(q.consumers))
	for d := range q.consumers {
		ds = append(ds, d)
	}
	return ds
}

var errClosed = fmt.Errorf("kafka: %w", queue.ErrClosed)

// Close fails later calls with queue.ErrClosed, stops running Consume calls
// (they drain as when their ctx is done, commit and leave the group) and
// waits for them, then flushes and closes the producer. Messages stay in
// Kafka.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed.Load() {
		q.mu.Unlock()
		return nil
	}
	q.closed.Store(true)
	for _, cancel := range q.consumers {
		cancel()
	}
	q.mu.Unlock()
	q.running.Wait()
	q.deadMu.Lock()
	if q.deadIdx != nil {
		q.deadIdx.cl.Close()
		q.deadIdx = nil
	}
	q.deadMu.Unlock()
	q.cl.Close()
	return nil
}

// kgoLogger sends franz-go's warnings and errors to the queue's logger (at
// most Warn: the client retries on its own) and drops the rest.
type kgoLogger struct{ l *slog.Logger }

func (k kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelDebug
	if level <= kgo.LogLevelWarn && level != kgo.LogLevelNone && !cancellation(keyvals) {
		lv = slog.LevelWarn
	}
	k.l.Log(context.Background(), lv, "kafka: franz-go: "+msg, keyvals...)
}

// cancellation reports whether a franz-go log line is about a cancelled
// context or a closed client: a shutdown, logged at Debug only.
func cancellation(keyvals []any) bool {
	for _, v := range keyvals {
		if err, ok := v.(error); ok && (errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed)) {
			return true
		}
	}
	return false
}
