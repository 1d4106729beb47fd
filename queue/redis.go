package queue

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/internal/coalesce"
	"github.com/outrigger-dev/outrigger/internal/rediserr"
)

var (
	//go:embed scripts/publish.lua
	publishLua    string
	publishScript = redis.NewScript(publishLua)
	//go:embed scripts/ack.lua
	ackLua    string
	ackScript = redis.NewScript(ackLua)
	//go:embed scripts/fail.lua
	failLua    string
	failScript = redis.NewScript(failLua)
	//go:embed scripts/move.lua
	moveLua    string
	moveScript = redis.NewScript(moveLua)
	//go:embed scripts/renew.lua
	renewLua    string
	renewScript = redis.NewScript(renewLua)
	//go:embed scripts/requeue.lua
	requeueLua    string
	requeueScript = redis.NewScript(requeueLua)
	//go:embed scripts/stats.lua
	statsLua    string
	statsScript = redis.NewScript(statsLua)
	//go:embed scripts/leave.lua
	leaveLua    string
	leaveScript = redis.NewScript(leaveLua)
	//go:embed scripts/tally.lua
	tallyLua    string
	tallyScript = redis.NewScript(tallyLua)
)

// groupName is the consumer group every consumer of a queue joins.
const groupName = "consumers"

// Redis is a [Queue] on a Redis stream with one consumer group. It works
// with any go-redis client: single node, Sentinel or Cluster (all keys of a
// queue share the hash tag {name}).
//
// Keys, under the WithPrefix prefix p:
//
//	p{name}:stream     the messages not yet acknowledged (ready and in flight)
//	p{name}:delayed    sorted set of delayed and backing-off message IDs
//	p{name}:payloads   hash of their entries
//	p{name}:dead       dead-letter stream
//	p{name}:deadindex  hash: message ID -> dead-letter entry
//	p{name}:id:<id>    a published ID, kept for PublishRetryWindow
//	p{name}:dedup:<k>  a dedup key, kept for its window
//	p{name}:wake:<c>   consumer c's wake stream (ends its blocking read when
//	                   its Consume is cancelled); deleted when it stops
//
// Acknowledged entries are deleted (the acknowledged head of the stream with
// XTRIM MINID, the rest with XDEL), so the stream holds only the backlog; no
// unacknowledged entry is ever trimmed. Redis is safe for concurrent use by multiple goroutines.
type Redis struct {
	client redis.UniversalClient
	name   string
	cfg    queueConfig

	stream, delayed, payloads, dead, deadIndex, idPrefix, dedupPrefix, wakePrefix string

	idBase string        // random per Redis value
	idSeq  atomic.Uint64 // message ID counter

	cnt       counters
	faults    rediserr.Reporter        // logs each kind of invalid answer once
	pub       *coalesce.Group[*pubReq] // shares publish pipelines among concurrent calls
	moverWake chan struct{}            // pokes a local mover when a delayed message is added

	mu        sync.Mutex
	closed    bool                        // protected by mu
	consumers map[*int]context.CancelFunc // running Consume calls (protected by mu)
	running   sync.WaitGroup
}

// NewRedis returns the queue name on client. It touches no key: the stream
// and its consumer group are created on first use.
func NewRedis(client redis.UniversalClient, name string, opts ...Option) (*Redis, error) {
	if client == nil {
		return nil, errors.New("queue: client must not be nil")
	}
	if err := checkName(name); err != nil {
		return nil, err
	}
	cfg := defaultQueueConfig()
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := checkWaitClient(client, &cfg); err != nil {
		return nil, err
	}
	base := cfg.prefix + "{" + name + "}:"
	q := &Redis{
		client:      client,
		name:        name,
		cfg:         cfg,
		stream:      base + "stream",
		delayed:     base + "delayed",
		payloads:    base + "payloads",
		dead:        base + "dead",
		deadIndex:   base + "deadindex",
		idPrefix:    base + "id:",
		dedupPrefix: base + "dedup:",
		wakePrefix:  base + "wake:",
		idBase:      randomHex(6),
		consumers:   make(map[*int]context.CancelFunc),
		moverWake:   make(chan struct{}, 1),
	}
	q.pub = coalesce.New(cfg.publishPipes, cfg.maxPublishBatch, q.flushPublishCtx)
	return q, nil
}

func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("queue: name must not be empty")
	case strings.ContainsAny(name, "{}"):
		return fmt.Errorf("queue: name must not contain '{' or '}', got %q", name)
	}
	return nil
}

// checkWaitClient checks that WaitReplicas can work with client: WAIT must
// run on the connection of the publishes, and be read within ReadTimeout.
func checkWaitClient(client redis.UniversalClient, cfg *queueConfig) error {
	if cfg.waitReplicas == 0 {
		return nil
	}
	rt, ok := readTimeout(client)
	if !ok {
		return fmt.Errorf("queue: WaitReplicas needs a *redis.Client or *redis.ClusterClient, got %T", client)
	}
	if rt > 0 && cfg.waitTimeout >= rt {
		return fmt.Errorf("queue: WaitReplicas timeout must be below the client's ReadTimeout %v, got %v", rt, cfg.waitTimeout)
	}
	return nil
}

// readTimeout returns the read timeout of client (after go-redis's
// defaults: 0 and below is none), when it is a *redis.Client or a
// *redis.ClusterClient.
func readTimeout(client redis.UniversalClient) (time.Duration, bool) {
	switch c := client.(type) {
	case *redis.Client:
		return c.Options().ReadTimeout, true
	case *redis.ClusterClient:
		return c.Options().ReadTimeout, true
	}
	return 0, false
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Name returns the queue's name.
func (q *Redis) Name() string { return q.name }

func (q *Redis) newID() string {
	return q.idBase + strconv.FormatUint(q.idSeq.Add(1), 36)
}

// pubReq is one message on its way to Redis.
type pubReq struct {
	id       string
	idKey    string // set for WithID: the ID is remembered for the retry window
	dedupKey string
	dedupMS  int64
	delayMS  int64
	body     []byte
	headers  map[string]string
	res      string // "ok", "dup:<id>", "full"
	err      error
}

func (q *Redis) buildReq(body []byte, pc *publishConfig) *pubReq {
	r := &pubReq{id: pc.id, body: body, headers: pc.headers, delayMS: pc.delay.Milliseconds()}
	if r.id != "" {
		r.idKey = q.idPrefix + r.id
	}
	if pc.dedupKey != "" {
		r.dedupKey = q.dedupPrefix + pc.dedupKey
		r.dedupMS = max(pc.dedupWindow.Milliseconds(), 1)
	}
	if pc.delay > 0 && r.delayMS == 0 {
		r.delayMS = 1
	}
	return r
}

// Publish adds a message. Concurrent calls are coalesced into shared
// pipelines; each returns once Redis holds its message, with its own ID or
// error. A client retry of the same publish (after a timeout) is dropped by
// Redis, so it never shows up as a second message.
func (q *Redis) Publish(ctx context.Context, body []byte, opts ...PublishOption) (string, error) {
	pc := applyPublishOptions(opts)
	if err := pc.validate(); err != nil {
		return "", err
	}
	if err := q.checkOpen(); err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	ctx = q.cfg.hooks.beforePublish(ctx, q.name, &pc)
	id, err := q.publish(ctx, body, &pc)
	q.cfg.hooks.AfterPublish(ctx, q.name, id, err)
	return id, err
}

func (q *Redis) publish(ctx context.Context, body []byte, pc *publishConfig) (string, error) {
	wait := 5 * time.Millisecond
	for {
		r := q.buildReq(body, pc)
		if err := q.pub.Do(ctx, r); err != nil {
			return "", err
		}
		id, err := r.result()
		q.cnt.countPublish(err)
		if err != nil && rediserr.IsInvalid(err) {
			return "", q.noteInvalid("publish", fmt.Errorf("queue: publish to %q: %w", q.name, err))
		}
		if err == nil && pc.delay > 0 {
			q.wakeMover()
		}
		if !errors.Is(err, ErrFull) || !q.cfg.blockWhenFull {
			return id, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", fmt.Errorf("queue: waiting for room: %w", context.Cause(ctx))
		case <-t.C:
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}

// wakeMover makes one local delayed-message mover recompute its sleep.
func (q *Redis) wakeMover() {
	select {
	case q.moverWake <- struct{}{}:
	default:
	}
}

// pubBody is a pubReq as its body argument (go-redis writes an
// encoding.BinaryMarshaler's bytes).
type pubBody pubReq

// MarshalBinary returns the message's body.
func (r *pubBody) MarshalBinary() ([]byte, error) { return r.body, nil }

func (r *pubReq) result() (string, error) {
	switch {
	case r.err != nil:
		return "", r.err
	case r.res == "ok":
		return r.id, nil
	case r.res == "full":
		return "", ErrFull
	case strings.HasPrefix(r.res, "dup:"):
		return r.res[4:], ErrDuplicate
	default:
		return "", fmt.Errorf("queue: publish: %w", rediserr.BadReply("publish.lua: result %q", r.res))
	}
}

// PublishBatch adds the messages in one pipeline. The returned slice has
// one ID per body; when err is not nil it reports the first failure and the
// IDs of the messages that failed are "".
func (q *Redis) PublishBatch(ctx context.Context, bodies [][]byte) ([]string, error) {
	if err := q.checkOpen(); err != nil {
		return nil, err
	}
	if len(bodies) == 0 {
		return []string{}, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var pc publishConfig
	reqs := make([]*pubReq, len(bodies))
	var ctxs []context.Context // per message, with publish hooks
	if q.cfg.hooks.OnPublish != nil || q.cfg.hooks.OnPublished != nil {
		ctxs = make([]context.Context, len(bodies))
	}
	for i, b := range bodies {
		if ctxs != nil {
			pc = publishConfig{}
			ctxs[i] = q.cfg.hooks.beforePublish(ctx, q.name, &pc)
		}
		reqs[i] = q.buildReq(b, &pc)
	}
	q.flushPublishCtx(ctx, reqs)
	ids := make([]string, len(bodies))
	var first error
	for i, r := range reqs {
		id, err := r.result()
		q.cnt.countPublish(err)
		if ctxs != nil {
			q.cfg.hooks.AfterPublish(ctxs[i], q.name, id, err)
		}
		if err != nil {
			if first == nil {
				first = fmt.Errorf("queue: message %d of %d: %w", i, len(bodies), err)
			}
			continue
		}
		ids[i] = id
	}
	if rediserr.IsInvalid(first) {
		// one answer (or one per script call) for the batch: counted once
		q.noteInvalid("publish", first)
	}
	return ids, first
}

// maxPerCall bounds the messages of one publish script call, so that one
// call does not hold Redis for long.
const maxPerCall = 500

// flushPublishCtx sends reqs in one pipeline of publish script calls (one
// per maxPerCall messages), falling back to EVAL for a script the server
// does not know (after a restart or SCRIPT FLUSH).
func (q *Redis) flushPublishCtx(ctx context.Context, reqs []*pubReq) {
	type call struct {
		keys  []string
		args  []any
		reqs  []*pubReq
		plain bool // the plain form: bodies only; the reply is their entry IDs, which are their IDs
		cmd   *redis.Cmd
		wait  *redis.Cmd // WAIT after cmd (WaitReplicas)
	}
	reqs0 := reqs
	calls := make([]*call, 0, (len(reqs)+maxPerCall-1)/maxPerCall)
	for len(reqs) > 0 {
		part := reqs[:min(len(reqs), maxPerCall)]
		reqs = reqs[len(part):]
		c := &call{reqs: part, plain: q.plain(part)}
		c.keys = append(make([]string, 0, 5), q.stream, q.delayed, q.payloads, q.idPrefix+"call:"+q.newID())
		if c.plain {
			// The plain form (see scripts/publish.lua): bodies only, the
			// IDs come back.
			c.args = make([]any, 0, 4+len(part)) // +1: the metrics TTL (withMetrics)
			c.args = append(c.args, q.cfg.retryWindow.Milliseconds(), 0, -len(part))
			for _, r := range part {
				// A pointer: a slice in an interface would cost an
				// allocation.
				c.args = append(c.args, (*pubBody)(r))
			}
			c.keys, c.args = q.withMetrics(c.keys, c.args)
			calls = append(calls, c)
			continue
		}
		c.args = make([]any, 0, 4+8*len(part)) // +1: the metrics TTL (withMetrics)
		c.args = append(c.args, q.cfg.retryWindow.Milliseconds(), q.cfg.maxLen, len(part))
		for _, r := range part {
			if r.id == "" {
				r.id = q.newID()
			}
			idk, ddk := 0, 0
			if r.idKey != "" {
				c.keys = append(c.keys, r.idKey)
				idk = len(c.keys)
			}
			if r.dedupKey != "" {
				c.keys = append(c.keys, r.dedupKey)
				ddk = len(c.keys)
			}
			c.args = append(c.args, r.id, idk, ddk, r.dedupMS, r.delayMS, 1+len(r.headers), "body", r.body)
			for k, v := range r.headers {
				c.args = append(c.args, "h:"+k, v)
			}
		}
		c.keys, c.args = q.withMetrics(c.keys, c.args)
		calls = append(calls, c)
	}
	// With WaitReplicas, WAIT ends each pipeline: it counts the writes of
	// its own connection, so the pipeline runs on the queue's primary.
	var node redis.Cmdable = q.client
	if q.cfg.waitReplicas > 0 {
		if cc, ok := q.client.(*redis.ClusterClient); ok {
			n, err := cc.MasterForKey(ctx, q.stream)
			if err != nil {
				for _, r := range reqs0 {
					r.err = fmt.Errorf("queue: publish: %w", err)
				}
				return
			}
			node = n
		}
	}
	run := func(cs []*call, eval bool) {
		pipe := node.Pipeline()
		for _, c := range cs {
			if eval {
				c.cmd = publishScript.Eval(ctx, pipe, c.keys, c.args...)
			} else {
				c.cmd = publishScript.EvalSha(ctx, pipe, c.keys, c.args...)
			}
		}
		var wait *redis.Cmd
		if q.cfg.waitReplicas > 0 {
			wait = pipe.Do(ctx, "WAIT", q.cfg.waitReplicas, q.cfg.waitTimeout.Milliseconds())
		}
		_, _ = pipe.Exec(ctx)
		for _, c := range cs {
			c.wait = wait
		}
	}
	run(calls, false)
	var retry []*call
	for _, c := range calls {
		if isNoScript(c.cmd.Err()) {
			retry = append(retry, c)
		}
	}
	if len(retry) > 0 {
		run(retry, true)
	}
	reload := false
	for _, c := range calls {
		var res []string
		var err error
		if c.plain {
			err = setPlainIDs(c.cmd, c.reqs)
		} else if res, err = c.cmd.StringSlice(); err == nil && len(res) != len(c.reqs) {
			err = rediserr.BadReply("publish.lua: %d results for %d messages", len(res), len(c.reqs))
		}
		var waitErr error
		if err == nil && c.wait != nil {
			waitErr = q.checkWait(c.wait)
		}
		if (err != nil || waitErr != nil) && node != q.client {
			reload = true // the slot's master may have moved
		}
		for i, r := range c.reqs {
			switch {
			case err != nil:
				r.err = fmt.Errorf("queue: publish: %w", err)
			case waitErr != nil && (c.plain || res[i] != "full"): // "full" wrote nothing
				r.err = fmt.Errorf("queue: publish: %w", waitErr)
			case c.plain:
				r.res = "ok"
			default:
				r.res = res[i]
			}
		}
	}
	if reload {
		q.client.(*redis.ClusterClient).ReloadState(ctx)
	}
}

// setPlainIDs sets the IDs of reqs from the reply of a plain-form
// publish.lua call: their entry IDs in order, joined by commas. The IDs
// share the reply's string.
func setPlainIDs(cmd *redis.Cmd, reqs []*pubReq) error {
	if err := cmd.Err(); err != nil {
		return err
	}
	all, ok := cmd.Val().(string)
	if !ok {
		return rediserr.BadReply("publish.lua: %v (%T), not the entry IDs of %d messages", cmd.Val(), cmd.Val(), len(reqs))
	}
	rest := all
	for i, r := range reqs {
		id, tail, found := strings.Cut(rest, ",")
		if id == "" || found == (i == len(reqs)-1) { // a comma after each ID but the last
			return rediserr.BadReply("publish.lua: %q is not the entry IDs of %d messages", all, len(reqs))
		}
		r.id, rest = id, tail
	}
	return nil
}

// plain reports whether the messages of reqs can be sent in the plain form
// of scripts/publish.lua: straight into the stream, with a body only (the
// entry ID is the message's), and no backlog bound to check.
func (q *Redis) plain(reqs []*pubReq) bool {
	if q.cfg.maxLen > 0 {
		return false
	}
	for _, r := range reqs {
		if r.idKey != "" || r.dedupKey != "" || r.delayMS > 0 || len(r.headers) > 0 {
			return false
		}
	}
	return true
}

// checkWait turns a WAIT reply into nil or an error matching
// ErrNotReplicated.
func (q *Redis) checkWait(w *redis.Cmd) error {
	n, err := w.Int64()
	if err != nil {
		return fmt.Errorf("waiting for replicas: %w", err)
	}
	if n < int64(q.cfg.waitReplicas) {
		return fmt.Errorf("%w: %d of %d replicas within %v", ErrNotReplicated, n, q.cfg.waitReplicas, q.cfg.waitTimeout)
	}
	return nil
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

func (q *Redis) checkOpen() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	return nil
}

// Consume runs handler on the queue's messages until ctx is done (or Close
// is called), then stops fetching, releases the messages it fetched but did
// not start, waits up to ShutdownTimeout for running handlers, settles what
// they finished, and returns nil. Errors talking to Redis are logged and
// retried, never returned: Consume survives Redis restarts. It returns an
// error only for invalid arguments or a closed queue.
//
// handler is a [Handler], a [BatchHandler], or a func literal of one of
// those shapes; anything else returns an error matching ErrInvalidHandler.
func (q *Redis) Consume(ctx context.Context, handler any, opts ...ConsumeOption) error {
	h, bh, err := toHandlers(handler)
	if err != nil {
		return err
	}
	return q.consume(ctx, h, bh, opts)
}

// ConsumeBatch is Consume with a [BatchHandler]: it is handed up to
// BatchSize messages, or what arrived within BatchWait.
func (q *Redis) ConsumeBatch(ctx context.Context, handler BatchHandler, opts ...ConsumeOption) error {
	if handler == nil {
		return fmt.Errorf("%w: handler is nil", ErrInvalidHandler)
	}
	return q.consume(ctx, nil, handler, opts)
}

func (q *Redis) consume(ctx context.Context, h Handler, bh BatchHandler, opts []ConsumeOption) error {
	var cc consumeConfig
	if err := cc.apply(opts, bh != nil); err != nil {
		return err
	}
	if cc.consumer == "" {
		host, _ := os.Hostname()
		cc.consumer = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), randomHex(4))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	key := new(int)
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	q.consumers[key] = cancel
	q.running.Add(1)
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		delete(q.consumers, key)
		q.mu.Unlock()
		q.running.Done()
	}()
	cc.queue, cc.hooks = q.name, &q.cfg.hooks
	return runEngine(ctx, newRedisConsumer(q, cc), &q.cnt, cc, h, bh, q.cfg.logger.With("queue", q.name, "consumer", cc.consumer))
}

// Counters returns this queue value's running totals.
func (q *Redis) Counters() Counters { return q.cnt.snapshot() }

// Close fails later calls with ErrClosed, stops running Consume calls (they
// drain as when their ctx is done) and waits for them. Publish calls already
// under way complete. It does not close the Redis client.
func (q *Redis) Close() error {
	q.mu.Lock()
	q.closed = true
	for _, cancel := range q.consumers {
		cancel()
	}
	q.mu.Unlock()
	q.running.Wait()
	return nil
}

// noteInvalid counts err and logs it once per kind at Error level when it
// is an answer that means a bug or bad data (rediserr.Invalid), for an
// error returned to the caller of op; it returns err.
func (q *Redis) noteInvalid(op string, err error) error {
	if rediserr.IsInvalid(err) {
		q.cnt.invalid.Add(1)
		q.faults.Report(q.cfg.logger, "queue: redis answer means a bug or bad data", op, err, "queue", q.name)
	}
	return err
}

// logFailure logs err, from background work under ctx: an answer that means
// a bug or bad data is counted and logged once per kind at Error level (the
// work goes on: there is no caller to return it to), the consumer's own
// shutdown at DEBUG, anything else at WARN.
func (q *Redis) logFailure(ctx context.Context, op, msg string, err error) {
	if rediserr.ClassifyCtx(ctx, err) == rediserr.Invalid {
		q.cnt.invalid.Add(1)
		q.faults.Report(q.cfg.logger, msg, op, err, "queue", q.name)
		return
	}
	q.cfg.logger.Log(ctx, failureLevel(ctx, err), msg, "queue", q.name, "err", err)
}
