package queue

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/internal/keyscan"
	"github.com/outrigger-dev/outrigger/internal/rediserr"
)

var (
	//go:embed scripts/inspect_info.lua
	inspectInfoLua    string
	inspectInfoScript = redis.NewScript(inspectInfoLua)
	//go:embed scripts/inspect_dead.lua
	inspectDeadLua    string
	inspectDeadScript = redis.NewScript(inspectDeadLua)
	//go:embed scripts/inspect_delete.lua
	inspectDeleteLua    string
	inspectDeleteScript = redis.NewScript(inspectDeleteLua)
	//go:embed scripts/inspect_delayed.lua
	inspectDelayedLua    string
	inspectDelayedScript = redis.NewScript(inspectDelayedLua)
)

// Errors of the Inspector.
var (
	// ErrEmptySelection is returned by Inspector.Requeue and
	// Inspector.Delete for a Selection that names nothing: give IDs, an
	// error substring, or All.
	ErrEmptySelection = errors.New("queue: empty selection: give message IDs, an error substring or All")
	// ErrUnknownState is returned by Inspector.Messages for a State it
	// does not know.
	ErrUnknownState = errors.New("queue: unknown message state")
)

// Inspector looks at and operates the Redis queues under one key prefix,
// from any process that reaches the Redis (a console, a command-line tool,
// a replica of the service): it lists the queues with their counts and
// throughput, pages through their messages by state, filters dead letters
// by error, requeues and deletes dead letters in bounded batches, and
// pauses and resumes consumption on every replica. It reads only what the
// queues keep in Redis, so it needs no registration. It is safe for
// concurrent use.
type Inspector struct {
	client redis.UniversalClient
	prefix string
	batch  int // dead letters examined per script call
}

// NewInspector returns an inspector of the queues under the prefix set
// with [WithPrefix] (default: none), the option given to [NewRedis]. Other
// options are ignored.
func NewInspector(client redis.UniversalClient, opts ...Option) (*Inspector, error) {
	if client == nil {
		return nil, errors.New("queue: client must not be nil")
	}
	cfg := defaultQueueConfig()
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	return &Inspector{client: client, prefix: cfg.prefix, batch: 500}, nil
}

// Prefix returns the key prefix the inspector reads.
func (in *Inspector) Prefix() string { return in.prefix }

// keys of one queue, as NewRedis names them.
type queueKeys struct {
	stream, delayed, payloads, dead, deadIndex, paused, metrics string
}

func (in *Inspector) keys(name string) queueKeys {
	base := in.prefix + "{" + name + "}:"
	return queueKeys{
		stream: base + "stream", delayed: base + "delayed", payloads: base + "payloads",
		dead: base + "dead", deadIndex: base + "deadindex", paused: base + "paused",
		metrics: metricsBase(in.prefix, name),
	}
}

// QueueInfo is one queue at a glance.
type QueueInfo struct {
	// Name is the queue's name.
	Name string `json:"name"`
	// Ready, InFlight, Delayed and Dead count the messages in each state
	// (see [Stats]).
	Ready    int64 `json:"ready"`
	InFlight int64 `json:"in_flight"`
	Delayed  int64 `json:"delayed"`
	Dead     int64 `json:"dead"`
	// OldestAge is the age of the oldest ready or in-flight message.
	OldestAge time.Duration `json:"oldest_age"`
	// OldestDeadAge is how long ago the oldest dead letter died.
	OldestDeadAge time.Duration `json:"oldest_dead_age"`
	// Consumers counts the consumers in the group (running Consume calls,
	// and ones that died recently, until swept).
	Consumers int64 `json:"consumers"`
	// Paused reports that consumption is paused ([Inspector.Pause]).
	Paused bool `json:"paused"`
	// PausedAt is when it was paused (zero when not paused).
	PausedAt time.Time `json:"paused_at"`
	// Throughput is the messages acknowledged per second over the last
	// five minutes, by every replica.
	Throughput float64 `json:"throughput"`
	// Acked is the messages acknowledged over the last five minutes.
	Acked int64 `json:"acked_5m"`
	// Published is the messages published over the last five minutes.
	Published int64 `json:"published_5m"`
	// Failed is the failed attempts (retried or dead-lettered) over the
	// last five minutes.
	Failed int64 `json:"failed_5m"`
}

// Queues lists the queues under the prefix, sorted by name. It finds them
// with SCAN (a queue shows once it has a stream: after its first
// immediate publish, dead letter or consumer), so it walks the whole
// keyspace: it is for an operator's look, not for a hot path.
func (in *Inspector) Queues(ctx context.Context) ([]QueueInfo, error) {
	names, err := in.QueueNames(ctx)
	if err != nil {
		return nil, err
	}
	return in.queues(ctx, names)
}

// QueueNames returns the names of the queues under the prefix, sorted (see
// [Inspector.Queues]).
func (in *Inspector) QueueNames(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	pattern := keyscan.Escape(in.prefix) + "{*}:*"
	err := keyscan.Each(ctx, in.client, pattern, "stream", func(keys []string) error {
		for _, k := range keys {
			rest, ok := strings.CutPrefix(k, in.prefix+"{")
			if !ok {
				continue
			}
			name, suffix, ok := strings.Cut(rest, "}:")
			if ok && (suffix == "stream" || suffix == "dead") && checkName(name) == nil {
				seen[name] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("queue: list queues: %w", err)
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}

// Queue returns one queue's counts. A queue that does not exist reads as
// empty.
func (in *Inspector) Queue(ctx context.Context, name string) (QueueInfo, error) {
	if err := checkName(name); err != nil {
		return QueueInfo{}, err
	}
	qs, err := in.queues(ctx, []string{name})
	if err != nil {
		return QueueInfo{}, err
	}
	return qs[0], nil
}

// recent is how many minutes QueueInfo's rates cover.
const recent = 5

func (in *Inspector) queues(ctx context.Context, names []string) ([]QueueInfo, error) {
	type req struct {
		info *redis.Cmd
		mins []*redis.MapStringStringCmd
	}
	reqs := make([]req, len(names))
	now := time.Now()
	run := func(eval bool) error {
		_, err := in.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, n := range names {
				k := in.keys(n)
				keys := []string{k.stream, k.delayed, k.dead, k.paused}
				if eval {
					reqs[i].info = inspectInfoScript.Eval(ctx, p, keys, groupName)
				} else {
					reqs[i].info = inspectInfoScript.EvalSha(ctx, p, keys, groupName)
				}
				reqs[i].mins = reqs[i].mins[:0]
				for m := range recent {
					reqs[i].mins = append(reqs[i].mins, p.HGetAll(ctx, metricsKey(k.metrics, now.Add(-time.Duration(m)*time.Minute))))
				}
			}
			return nil
		})
		return err
	}
	err := run(false)
	if err != nil && isNoScript(err) {
		err = run(true)
	}
	if err != nil {
		return nil, fmt.Errorf("queue: inspect: %w", err)
	}
	out := make([]QueueInfo, len(names))
	for i, n := range names {
		res, err := reqs[i].info.Slice()
		if err != nil {
			return nil, fmt.Errorf("queue: inspect %q: %w", n, err)
		}
		r := newScriptReply("inspect_info.lua", res, 10)
		nowMS := r.int(5)
		length, pending := r.int(0), r.int(1)
		qi := QueueInfo{
			Name: n, Ready: max(length-pending, 0), InFlight: pending,
			Delayed: r.int(2), Dead: r.int(3), Consumers: r.int(7),
		}
		qi.OldestAge = ageOf(r.str(4), nowMS)
		qi.OldestDeadAge = ageOf(r.str(8), nowMS)
		p := r.str(6)
		r.str(9) // the last delivered ID, unused here
		if r.err != nil {
			return nil, fmt.Errorf("queue: inspect %q: %w", n, r.err)
		}
		if p != "" {
			qi.Paused = true
			ms, _, _ := strings.Cut(p, "|")
			if t, err := strconv.ParseInt(ms, 10, 64); err == nil {
				qi.PausedAt = time.UnixMilli(t)
			}
		}
		var acked int64
		for _, m := range reqs[i].mins {
			v := m.Val()
			acked += atoi(v["acked"])
			qi.Published += atoi(v["published"])
			qi.Failed += atoi(v["retried"]) + atoi(v["dead"])
		}
		// The current minute is partly over: rate over the time covered.
		covered := time.Duration(recent-1)*time.Minute + time.Duration(now.Unix()%60)*time.Second
		qi.Acked = acked
		qi.Throughput = float64(acked) / covered.Seconds()
		out[i] = qi
	}
	return out, nil
}

func atoi(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// ageOf is the age of a stream entry ID at nowMS.
func ageOf(id string, nowMS int64) time.Duration {
	if id == "" {
		return 0
	}
	ms, _, _ := strings.Cut(id, "-")
	t, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return 0
	}
	return max(time.Duration(nowMS-t)*time.Millisecond, 0)
}

// Sample is one minute of a queue's metrics.
type Sample struct {
	// Minute is the start of the minute.
	Minute time.Time `json:"minute"`
	// Counts of what every replica did that minute.
	Published int64 `json:"published"`
	Acked     int64 `json:"acked"`
	Retried   int64 `json:"retried"`
	Dead      int64 `json:"dead"`
	Released  int64 `json:"released"`
	Requeued  int64 `json:"requeued"`
	Deleted   int64 `json:"deleted"`
	// Depth is the backlog (ready, in flight and delayed) and DeadLetters
	// the dead letters, as last recorded that minute; -1 when nothing was
	// recorded (nothing happened: the chart carries the last value on).
	Depth       int64 `json:"depth"`
	DeadLetters int64 `json:"dead_letters"`
}

// History returns the queue's metrics for the last minutes (at most 120,
// the time they are kept), oldest first, one Sample per minute, the
// current (partial) minute last. The counts come from every replica's
// publishes and settlements and from the Inspector's requeues and
// deletes, recorded in Redis as they happen, so the chart of the last
// hour is there whenever somebody looks.
func (in *Inspector) History(ctx context.Context, name string, minutes int) ([]Sample, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	minutes = min(max(minutes, 1), int(metricsTTL/time.Minute))
	base := in.keys(name).metrics
	now := time.Now()
	cmds := make([]*redis.MapStringStringCmd, minutes)
	_, err := in.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range cmds {
			cmds[i] = p.HGetAll(ctx, metricsKey(base, now.Add(-time.Duration(minutes-1-i)*time.Minute)))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("queue: history of %q: %w", name, err)
	}
	out := make([]Sample, minutes)
	for i, c := range cmds {
		v := c.Val()
		t := now.Add(-time.Duration(minutes-1-i) * time.Minute)
		s := Sample{
			Minute:    time.Unix(t.Unix()/60*60, 0),
			Published: atoi(v["published"]), Acked: atoi(v["acked"]), Retried: atoi(v["retried"]),
			Dead: atoi(v["dead"]), Released: atoi(v["released"]), Requeued: atoi(v["requeued"]),
			Deleted: atoi(v["deleted"]), Depth: -1, DeadLetters: -1,
		}
		if d, ok := v["depth"]; ok {
			s.Depth = atoi(d)
		}
		if d, ok := v["deadletters"]; ok {
			s.DeadLetters = atoi(d)
		}
		out[i] = s
	}
	return out, nil
}

// ConsumerInfo is one consumer of a queue's group.
type ConsumerInfo struct {
	// Name is the consumer's name ([ConsumerName]).
	Name string `json:"name"`
	// Pending counts the messages delivered to it and not yet settled.
	Pending int64 `json:"pending"`
	// Idle is the time since it last tried to read (a paused or stopped
	// consumer's grows).
	Idle time.Duration `json:"idle"`
}

// Consumers lists the consumers of the queue's group, sorted by name.
func (in *Inspector) Consumers(ctx context.Context, name string) ([]ConsumerInfo, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	cs, err := in.client.XInfoConsumers(ctx, in.keys(name).stream, groupName).Result()
	if err != nil {
		if isNoGroup(err) || strings.Contains(err.Error(), "no such key") {
			return []ConsumerInfo{}, nil
		}
		return nil, fmt.Errorf("queue: consumers of %q: %w", name, err)
	}
	out := make([]ConsumerInfo, len(cs))
	for i, c := range cs {
		out[i] = ConsumerInfo{Name: c.Name, Pending: c.Pending, Idle: c.Idle}
	}
	slices.SortFunc(out, func(a, b ConsumerInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// State is a message's state, for [Inspector.Messages].
type State string

// Message states.
const (
	// StateReady: in the stream, not yet delivered.
	StateReady State = "ready"
	// StateInFlight: delivered to a consumer and not yet settled.
	StateInFlight State = "in-flight"
	// StateDelayed: waiting for its delay or retry backoff.
	StateDelayed State = "delayed"
	// StateDead: dead-lettered.
	StateDead State = "dead"
)

// ParseState returns the State named s ("ready", "in-flight" or
// "inflight", "delayed", "dead").
func ParseState(s string) (State, error) {
	switch State(strings.ToLower(s)) {
	case StateReady:
		return StateReady, nil
	case StateInFlight, "inflight", "pending":
		return StateInFlight, nil
	case StateDelayed, "retrying", "scheduled":
		return StateDelayed, nil
	case StateDead, "dead-letters", "deadletters":
		return StateDead, nil
	}
	return "", fmt.Errorf("%w %q: want ready, in-flight, delayed or dead", ErrUnknownState, s)
}

// MessageInfo is a message as the Inspector shows it.
type MessageInfo struct {
	// ID is the message ID (stable across retries and requeues).
	ID string `json:"id"`
	// State is where the message is.
	State State `json:"state"`
	// Body is the payload; Headers the headers given at publish.
	Body    []byte            `json:"body"`
	Headers map[string]string `json:"headers,omitempty"`
	// Attempt is the attempt the message is on (or died on).
	Attempt int `json:"attempt"`
	// PublishedAt is when it was first published.
	PublishedAt time.Time `json:"published_at"`
	// LastError is the error of its last failed attempt.
	LastError string `json:"last_error,omitempty"`
	// EntryID is its Redis stream entry ID (ready, in flight and dead).
	EntryID string `json:"entry_id,omitempty"`
	// Consumer, Idle and Deliveries describe an in-flight delivery: who
	// holds it, since when it was last renewed or delivered, and how many
	// times it was delivered.
	Consumer   string        `json:"consumer,omitempty"`
	Idle       time.Duration `json:"idle,omitempty"`
	Deliveries int64         `json:"deliveries,omitempty"`
	// DueAt is when a delayed message becomes ready.
	DueAt time.Time `json:"due_at,omitzero"`
	// DeadAt is when a dead letter died.
	DeadAt time.Time `json:"dead_at,omitzero"`
}

// PageOptions selects a page of [Inspector.Messages].
type PageOptions struct {
	// Cursor continues after the previous page (its Page.Next); "" starts
	// at the beginning.
	Cursor string
	// Limit is the most messages returned (default 50, at most 1000).
	Limit int
	// ErrorContains keeps only dead letters whose last error contains it,
	// ignoring ASCII case (dead letters only; "" keeps all).
	ErrorContains string
}

// Page is one page of messages.
type Page struct {
	// Messages, oldest first (for delayed messages: soonest due first).
	Messages []MessageInfo `json:"messages"`
	// Next is the cursor of the next page, "" when this one is the last.
	Next string `json:"next"`
	// Total is the number of messages in the state (before the error
	// filter).
	Total int64 `json:"total"`
}

// Messages returns a page of the queue's messages in state. Dead letters
// can be filtered by error: the filter runs in Redis, over at most a few
// thousand entries per call, so a page of a large dead-letter stream with
// few matches may come back short (or empty) with a Next cursor to go on.
func (in *Inspector) Messages(ctx context.Context, name string, state State, o PageOptions) (Page, error) {
	if err := checkName(name); err != nil {
		return Page{}, err
	}
	if o.Limit <= 0 {
		o.Limit = 50
	}
	o.Limit = min(o.Limit, 1000)
	k := in.keys(name)
	var p Page
	var err error
	switch state {
	case StateReady:
		p, err = in.readyPage(ctx, k, o)
	case StateInFlight:
		p, err = in.inFlightPage(ctx, k, o)
	case StateDelayed:
		p, err = in.delayedPage(ctx, k, o)
	case StateDead:
		p, err = in.deadPage(ctx, k, o)
	default:
		return Page{}, fmt.Errorf("%w %q", ErrUnknownState, state)
	}
	if err != nil {
		return Page{}, fmt.Errorf("queue: %s messages of %q: %w", state, name, err)
	}
	if p.Messages == nil {
		p.Messages = []MessageInfo{}
	}
	return p, nil
}

func info(state State, entryID string, fields map[string]any) MessageInfo {
	m := parseEntry(entryID, fields)
	mi := MessageInfo{
		ID: m.ID, State: state, Body: m.Body, Headers: m.Headers, Attempt: m.Attempt,
		PublishedAt: m.PublishedAt, LastError: m.LastError,
	}
	if state != StateDelayed {
		mi.EntryID = entryID
	}
	return mi
}

// lastDelivered returns the group's last delivered ID ("" without a group).
func (in *Inspector) lastDelivered(ctx context.Context, stream string) (string, error) {
	gs, err := in.client.XInfoGroups(ctx, stream).Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return "", nil
		}
		return "", err
	}
	for _, g := range gs {
		if g.Name == groupName {
			return g.LastDeliveredID, nil
		}
	}
	return "", nil
}

func (in *Inspector) readyPage(ctx context.Context, k queueKeys, o PageOptions) (Page, error) {
	last, err := in.lastDelivered(ctx, k.stream)
	if err != nil {
		return Page{}, err
	}
	start := "-"
	if last != "" && last != "0-0" {
		start = "(" + last
	}
	if o.Cursor != "" && (last == "" || compareEntryIDs(o.Cursor, last) > 0) {
		start = "(" + o.Cursor
	}
	xs, err := in.client.XRangeN(ctx, k.stream, start, "+", int64(o.Limit)+1).Result()
	if err != nil {
		return Page{}, err
	}
	var p Page
	for i, x := range xs {
		if i == o.Limit {
			p.Next = xs[i-1].ID
			break
		}
		p.Messages = append(p.Messages, info(StateReady, x.ID, x.Values))
	}
	length, pending, err := in.lengths(ctx, k.stream)
	if err != nil {
		return Page{}, err
	}
	p.Total = max(length-pending, 0)
	return p, nil
}

// lengths returns the stream's length and the group's pending count.
func (in *Inspector) lengths(ctx context.Context, stream string) (int64, int64, error) {
	var l *redis.IntCmd
	var pe *redis.XPendingCmd
	_, err := in.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		l = p.XLen(ctx, stream)
		pe = p.XPending(ctx, stream, groupName)
		return nil
	})
	if err != nil && !isNoGroup(err) && !strings.Contains(err.Error(), "no such key") {
		return 0, 0, err
	}
	var pending int64
	if v, err := pe.Result(); err == nil {
		pending = v.Count
	}
	return l.Val(), pending, nil
}

func (in *Inspector) inFlightPage(ctx context.Context, k queueKeys, o PageOptions) (Page, error) {
	start := "-"
	if o.Cursor != "" {
		start = "(" + o.Cursor
	}
	ps, err := in.client.XPendingExt(ctx, &redis.XPendingExtArgs{
		Stream: k.stream, Group: groupName, Start: start, End: "+", Count: int64(o.Limit) + 1,
	}).Result()
	if err != nil {
		if isNoGroup(err) || strings.Contains(err.Error(), "no such key") {
			return Page{}, nil
		}
		return Page{}, err
	}
	var p Page
	if len(ps) > o.Limit {
		ps = ps[:o.Limit]
		p.Next = ps[len(ps)-1].ID
	}
	ranges := make([]*redis.XMessageSliceCmd, len(ps))
	_, err = in.client.Pipelined(ctx, func(pp redis.Pipeliner) error {
		for i, e := range ps {
			ranges[i] = pp.XRange(ctx, k.stream, e.ID, e.ID)
		}
		return nil
	})
	if err != nil {
		return Page{}, err
	}
	for i, e := range ps {
		xs := ranges[i].Val()
		if len(xs) == 0 {
			continue // settled meanwhile
		}
		mi := info(StateInFlight, e.ID, xs[0].Values)
		mi.Consumer, mi.Idle, mi.Deliveries = e.Consumer, e.Idle, e.RetryCount
		p.Messages = append(p.Messages, mi)
	}
	_, pending, err := in.lengths(ctx, k.stream)
	if err != nil {
		return Page{}, err
	}
	p.Total = pending
	return p, nil
}

func (in *Inspector) delayedPage(ctx context.Context, k queueKeys, o PageOptions) (Page, error) {
	off := int64(0)
	if o.Cursor != "" {
		n, err := strconv.ParseInt(o.Cursor, 10, 64)
		if err != nil || n < 0 {
			return Page{}, fmt.Errorf("bad cursor %q", o.Cursor)
		}
		off = n
	}
	res, err := inspectDelayedScript.Run(ctx, in.client, []string{k.delayed, k.payloads}, off, o.Limit).Slice()
	if err != nil {
		return Page{}, err
	}
	r := newScriptReply("inspect_delayed.lua", res, -1)
	if r.err == nil && (len(res)-1)%3 != 0 {
		r.err = rediserr.BadReply("inspect_delayed.lua: %d elements, want 1 + 3 per message", len(res))
	}
	p := Page{Total: r.int(0)}
	for i := 1; i+2 < len(res) && r.err == nil; i += 3 {
		id := r.str(i)
		due := r.int(i + 1)
		fields := r.fields(i + 2)
		mi := info(StateDelayed, "", fields)
		if mi.ID == "" {
			mi.ID = id
		}
		mi.DueAt = time.UnixMilli(due)
		p.Messages = append(p.Messages, mi)
	}
	if r.err != nil {
		return Page{}, r.err
	}
	if next := off + int64(o.Limit); next < p.Total {
		p.Next = strconv.FormatInt(next, 10)
	}
	return p, nil
}

// asciiLower lowercases ASCII letters only, as Lua's string.lower does in
// Redis.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// deadRun runs one inspect_dead.lua call.
func (in *Inspector) deadRun(ctx context.Context, k queueKeys, mode, cursor, end string, examine, want int, sub string) (next string, n int64, entries []deadEntry, err error) {
	res, err := inspectDeadScript.Run(ctx, in.client,
		[]string{k.stream, k.dead, k.deadIndex, metricsKey(k.metrics, time.Now()), k.delayed},
		mode, cursor, end, examine, want, asciiLower(sub), metricsTTLArg).Slice()
	if err != nil {
		return "", 0, nil, err
	}
	r := newScriptReply("inspect_dead.lua", res, -2)
	next, n = r.str(0), r.int(1)
	if r.err != nil {
		return "", 0, nil, r.err
	}
	for i := 2; i < len(res); i++ {
		eid, fields := r.entry(i)
		entries = append(entries, deadEntry{eid, fields})
	}
	listed := int64(0) // page mode lists what it selected, the others nothing
	if mode == "page" {
		listed = n
	}
	if r.err == nil && int64(len(entries)) != listed {
		r.err = rediserr.BadReply("inspect_dead.lua: %d entries for %d selected in %s mode", len(entries), n, mode)
	}
	return next, n, entries, r.err
}

// deadEntry is one dead letter of an inspect_dead.lua page.
type deadEntry struct {
	id     string
	fields map[string]any
}

func (in *Inspector) deadPage(ctx context.Context, k queueKeys, o PageOptions) (Page, error) {
	var p Page
	cursor := o.Cursor
	// Examine up to a few batches for a filtered page, so that sparse
	// matches still fill it, but never an unbounded stretch per call.
	for range 8 {
		next, _, entries, err := in.deadRun(ctx, k, "page", cursor, "+", in.batch, o.Limit-len(p.Messages), o.ErrorContains)
		if err != nil {
			return Page{}, err
		}
		for _, e := range entries {
			mi := info(StateDead, e.id, e.fields)
			mi.DeadAt = entryTime(e.id)
			p.Messages = append(p.Messages, mi)
		}
		cursor = next
		if next == "" || len(p.Messages) >= o.Limit {
			break
		}
	}
	p.Next = cursor
	n, err := in.client.XLen(ctx, k.dead).Result()
	if err != nil {
		return Page{}, err
	}
	p.Total = n
	return p, nil
}

// entryTime returns the time in a stream entry ID.
func entryTime(id string) time.Time {
	ms, _, _ := strings.Cut(id, "-")
	t, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(t)
}

// Selection names the dead letters [Inspector.Requeue] and
// [Inspector.Delete] act on. The zero Selection names nothing (an error):
// to act on every dead letter, say All.
type Selection struct {
	// IDs are message IDs. When set, only these are acted on.
	IDs []string
	// ErrorContains selects the dead letters whose last error contains
	// it, ignoring ASCII case.
	ErrorContains string
	// All selects every dead letter (with ErrorContains: every one that
	// matches).
	All bool
}

func (s Selection) empty() bool { return len(s.IDs) == 0 && s.ErrorContains == "" && !s.All }

// Requeue moves the selected dead letters back to the queue with a fresh
// attempt count, and returns how many it moved. A selection by error or
// All is applied in Redis, in batches of a few hundred entries per script
// call (each call holds Redis for about a millisecond), over the dead
// letters that existed when Requeue began: messages that die again while
// it runs are not requeued again. Memory use does not grow with the number
// of dead letters. IDs that name no dead letter are reported with an error
// matching [ErrNotFound]; the others are requeued anyway. When ctx ends
// midway, the count so far is returned with ctx's error.
func (in *Inspector) Requeue(ctx context.Context, name string, sel Selection) (int, error) {
	return in.apply(ctx, name, sel, "requeue")
}

// Delete deletes the selected dead letters for good and returns how many
// it deleted, in batches like [Inspector.Requeue].
func (in *Inspector) Delete(ctx context.Context, name string, sel Selection) (int, error) {
	return in.apply(ctx, name, sel, "delete")
}

func (in *Inspector) apply(ctx context.Context, name string, sel Selection, mode string) (int, error) {
	if err := checkName(name); err != nil {
		return 0, err
	}
	if sel.empty() {
		return 0, ErrEmptySelection
	}
	k := in.keys(name)
	if len(sel.IDs) > 0 {
		return in.applyIDs(ctx, name, k, sel.IDs, mode)
	}
	last, err := in.client.XRevRangeN(ctx, k.dead, "+", "-", 1).Result()
	if err != nil {
		return 0, fmt.Errorf("queue: %s dead letters of %q: %w", mode, name, err)
	}
	if len(last) == 0 {
		return 0, nil
	}
	end := last[0].ID
	total := 0
	cursor := ""
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		next, n, _, err := in.deadRun(ctx, k, mode, cursor, end, in.batch, 0, sel.ErrorContains)
		total += int(n)
		if err != nil {
			return total, fmt.Errorf("queue: %s dead letters of %q: %w", mode, name, err)
		}
		if next == "" {
			return total, nil
		}
		cursor = next
	}
}

func (in *Inspector) applyIDs(ctx context.Context, name string, k queueKeys, ids []string, mode string) (int, error) {
	var missing []string
	done := 0
	for len(ids) > 0 {
		part := ids[:min(len(ids), in.batch)]
		ids = ids[len(part):]
		var ms []string
		var err error
		if mode == "requeue" {
			args := make([]any, 0, len(part)+1)
			args = append(args, "ids")
			for _, id := range part {
				args = append(args, id)
			}
			ms, err = requeueScript.Run(ctx, in.client, []string{k.stream, k.dead, k.deadIndex}, args...).StringSlice()
			if err == nil && len(part) > len(ms) {
				in.count(ctx, k, "requeued", int64(len(part)-len(ms)))
			}
		} else {
			args := make([]any, 0, len(part)+1)
			args = append(args, metricsTTLArg)
			for _, id := range part {
				args = append(args, id)
			}
			ms, err = inspectDeleteScript.Run(ctx, in.client,
				[]string{k.stream, k.dead, k.deadIndex, metricsKey(k.metrics, time.Now()), k.delayed}, args...).StringSlice()
		}
		if err != nil && !errors.Is(err, redis.Nil) {
			return done, fmt.Errorf("queue: %s dead letters of %q: %w", mode, name, err)
		}
		done += len(part) - len(ms)
		missing = append(missing, ms...)
	}
	if len(missing) > 0 {
		return done, fmt.Errorf("%w: %s", ErrNotFound, strings.Join(missing, ", "))
	}
	return done, nil
}

// count adds n to field of this minute's metrics, best effort.
func (in *Inspector) count(ctx context.Context, k queueKeys, field string, n int64) {
	keys := []string{metricsKey(k.metrics, time.Now()), k.stream, k.delayed, k.dead}
	_ = tallyScript.Run(ctx, in.client, keys, metricsTTLArg, field, n).Err()
}

// Pause stops consumption of the queue on every replica: each running
// Consume call sees the flag within about half a second and fetches
// nothing until [Inspector.Resume] (see pause.go for the details). It
// stays paused across restarts of the consumers. by is recorded with the
// flag (who paused it, for a console; may be empty).
func (in *Inspector) Pause(ctx context.Context, name, by string) error {
	if err := checkName(name); err != nil {
		return err
	}
	v := strconv.FormatInt(time.Now().UnixMilli(), 10) + "|" + by
	if err := in.client.Set(ctx, in.keys(name).paused, v, 0).Err(); err != nil {
		return fmt.Errorf("queue: pause %q: %w", name, err)
	}
	return nil
}

// Resume lets the queue's consumers fetch again.
func (in *Inspector) Resume(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := in.client.Del(ctx, in.keys(name).paused).Err(); err != nil {
		return fmt.Errorf("queue: resume %q: %w", name, err)
	}
	return nil
}
