package queue

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/internal/rediserr"
)

// redisConsumer is the Redis side of one Consume call.
type redisConsumer struct {
	q  *Redis
	cc consumeConfig
	// wake is this consumer's wake stream: its blocking read waits on it
	// too, and an entry added there on cancel ends the read at once.
	wake string

	// Used by the fetch goroutine only.
	ready       bool      // the group is known to exist
	recovering  bool      // taking back our own pending entries that we do not hold
	recoverFrom string    // XPENDING start of the next recovery step ("-" or "(id")
	lastCheck   time.Time // when a recovery step last started
	cursor      string    // XAUTOCLAIM cursor
	lastReclaim time.Time // when XAUTOCLAIM last ran
	pause       pauseGate // see pause.go
	rawReads    bool      // reads are raw commands (see redis_xread.go)

	mu   sync.Mutex
	held map[string]struct{} // entry IDs fetched and not yet settled (protected by mu)
}

// wakeTTL bounds how long the wake stream of a consumer that died (and did
// not delete it) stays; live consumers renew it every quarter.
const wakeTTL = 10 * time.Minute

func newRedisConsumer(q *Redis, cc consumeConfig) *redisConsumer {
	return &redisConsumer{
		q: q, cc: cc, wake: q.wakePrefix + cc.consumer,
		// A consumer that restarts under a stable name takes its pending
		// entries back at once (start-up is a recovery with nothing held).
		recovering: true, recoverFrom: "-", lastCheck: time.Now(),
		cursor: "0-0", held: make(map[string]struct{}),
		rawReads: rawReadsOK(q.client, cc.block),
	}
}

func (c *redisConsumer) reclaimEvery() time.Duration {
	return min(max(c.cc.visibility/8, 50*time.Millisecond), 5*time.Second)
}

// ensureGroup creates the stream and the group if they do not exist. The
// group starts at 0: messages published before any consumer existed are
// delivered too (acknowledged entries are deleted, so all entries are live).
// It also creates the consumer's wake stream afresh (a wake entry left by a
// previous consumer of the same name would end its first read for nothing).
func (c *redisConsumer) ensureGroup(ctx context.Context) error {
	pipe := c.q.client.Pipeline()
	group := pipe.XGroupCreateMkStream(ctx, c.q.stream, groupName, "0")
	pipe.Del(ctx, c.wake)
	wake := pipe.XGroupCreateMkStream(ctx, c.wake, groupName, "$")
	pipe.PExpire(ctx, c.wake, wakeTTL)
	_, _ = pipe.Exec(ctx)
	for _, cmd := range []*redis.StatusCmd{group, wake} {
		if err := cmd.Err(); err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
			return fmt.Errorf("queue: create consumer group: %w", err)
		}
	}
	c.ready = true
	return nil
}

func isNoGroup(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOGROUP")
}

// isGroupGone reports whether a read failed because a stream it reads or
// its group is gone: NOGROUP, or UNBLOCKED (the key was deleted while the
// read was blocked on it).
func isGroupGone(err error) bool {
	return isNoGroup(err) || (err != nil && strings.HasPrefix(err.Error(), "UNBLOCKED"))
}

// fetch reads up to n deliveries. Its commands run to the end even when ctx
// is cancelled meanwhile, so that what a read returns is released rather
// than left pending until the visibility timeout; the blocking read ends at
// once on cancel (see read).
func (c *redisConsumer) fetch(ctx context.Context, n int) ([]*delivery, error) {
	if c.hold(ctx) {
		return nil, nil
	}
	rctx := context.WithoutCancel(ctx)
	if !c.ready {
		if err := c.ensureGroup(rctx); err != nil {
			return nil, err
		}
	}
	dials := c.dials()
	ds, err := c.fetchOnce(ctx, rctx, n)
	if isGroupGone(err) {
		// Redis lost the stream (restart without persistence, or the keys
		// were deleted), or the wake stream expired: recreate and carry on.
		c.ready = false
		if strings.Contains(err.Error(), "'"+c.wake+"'") {
			c.q.cfg.logger.Debug("queue: wake stream missing; recreating it", "queue", c.q.name)
		} else {
			c.q.cfg.logger.Warn("queue: consumer group missing; recreating it", "queue", c.q.name)
		}
		if err = c.ensureGroup(rctx); err == nil {
			ds, err = c.fetchOnce(ctx, rctx, n)
		}
	}
	if err != nil || c.dials() != dials {
		// A read whose reply was lost (the connection broke: an error, or a
		// new connection on which go-redis sent the command again) may have
		// delivered entries to this consumer that it never saw: take them
		// back now rather than after the visibility timeout.
		c.startRecovery()
	}
	if len(ds) > 0 {
		c.mu.Lock()
		for _, d := range ds {
			c.held[d.entry] = struct{}{}
		}
		c.mu.Unlock()
	}
	return ds, err
}

// dials returns how many connections the client's pools have made so far.
func (c *redisConsumer) dials() uint32 {
	if st := c.q.client.PoolStats(); st != nil {
		return st.Misses
	}
	return 0
}

func (c *redisConsumer) startRecovery() {
	c.recovering, c.recoverFrom, c.lastCheck = true, "-", time.Now()
}

// fetchOnce takes back this consumer's own entries it does not hold, then
// reclaims those of stalled consumers, then reads new ones, stopping at the
// first step that returns something. It checks ctx before each step: no
// read starts once the cancel is seen. Commands run under rctx.
func (c *redisConsumer) fetchOnce(ctx, rctx context.Context, n int) ([]*delivery, error) {
	if !c.recovering && time.Since(c.lastCheck) >= c.reclaimEvery() {
		// Now and then, in case a lost reply went unnoticed.
		c.startRecovery()
	}
	if c.recovering {
		if ds, err := c.recoverOwn(ctx, rctx, n); err != nil || len(ds) > 0 {
			return ds, err
		}
	}
	if ctx.Err() != nil {
		return nil, nil
	}
	if c.cursor != "0-0" || time.Since(c.lastReclaim) >= c.reclaimEvery() {
		c.lastReclaim = time.Now()
		msgs, next, err := c.q.client.XAutoClaim(rctx, &redis.XAutoClaimArgs{
			Stream: c.q.stream, Group: groupName, Consumer: c.cc.consumer,
			MinIdle: c.cc.visibility, Start: c.cursor, Count: int64(n),
		}).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
		c.cursor = next
		if c.cursor == "" {
			c.cursor = "0-0"
		}
		if len(msgs) > 0 {
			c.q.cnt.reclaimed.Add(int64(len(msgs)))
			c.q.cfg.hooks.Reclaimed(c.q.name, len(msgs))
			c.q.cfg.logger.Info("queue: reclaimed messages of a stalled consumer", "queue", c.q.name, "n", len(msgs))
			if ds := c.deliveries(rctx, msgs); len(ds) > 0 {
				c.markStalled(rctx, ds)
				return ds, nil
			}
		}
	}
	if ctx.Err() != nil {
		return nil, nil // no new read once the cancel is seen
	}
	return c.read(ctx, rctx, n)
}

// read is the blocking read of new entries. It also waits on the
// consumer's wake stream, to which an entry is added when ctx is
// cancelled: the read then ends at once instead of at the end of its
// BLOCK, with whatever it got (released by the engine). go-redis does not
// abort a blocking command on a cancelled ctx, and a short BLOCK would
// cost idle consumers a read every few milliseconds.
func (c *redisConsumer) read(ctx, rctx context.Context, n int) ([]*delivery, error) {
	woke := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(woke)
		wctx, cancel := context.WithTimeout(rctx, time.Second)
		defer cancel()
		_ = c.q.client.XAdd(wctx, &redis.XAddArgs{
			Stream: c.wake, NoMkStream: true, MaxLen: 1, Values: []any{"stop", "1"},
		}).Err()
	})
	a := &redis.XReadGroupArgs{
		Group: groupName, Consumer: c.cc.consumer, Streams: []string{c.q.stream, c.wake, ">", ">"},
		Count: int64(n), Block: c.cc.block,
	}
	var ds []*delivery
	var err error
	if c.rawReads {
		ds, err = c.readRaw(rctx, a)
	} else {
		var res []redis.XStream
		res, err = c.q.client.XReadGroup(rctx, a).Result()
		for _, st := range res {
			if st.Stream == c.q.stream {
				ds = c.deliveries(rctx, st.Messages)
			}
		}
	}
	if !stop() {
		<-woke // the wake entry is written: nothing of ours runs after fetch
	}
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	return ds, err
}

// recoverOwn takes back, one page at a time, the entries pending on this
// consumer that it does not hold: delivered by a read whose reply was lost
// (Redis restarted or the connection broke), or by a previous consumer of
// the same name that died. Entries being handled here are skipped, so
// nothing runs twice in this process. The claim's min-idle is the lowest
// idle time listed: an entry another consumer reclaimed in between has a
// fresh idle time and stays with it.
func (c *redisConsumer) recoverOwn(ctx, rctx context.Context, n int) ([]*delivery, error) {
	if ctx.Err() != nil {
		return nil, nil
	}
	c.mu.Lock()
	count := n + len(c.held)
	c.mu.Unlock()
	ps, err := c.q.client.XPendingExt(rctx, &redis.XPendingExtArgs{
		Stream: c.q.stream, Group: groupName, Start: c.recoverFrom, End: "+",
		Count: int64(count), Consumer: c.cc.consumer,
	}).Result()
	if err != nil {
		return nil, err
	}
	var ids []string
	counts := make(map[string]int64)
	minIdle := time.Duration(-1)
	last, full := "", false
	c.mu.Lock()
	for _, p := range ps {
		if _, ok := c.held[p.ID]; !ok {
			if len(ids) == n {
				full = true
				break
			}
			ids = append(ids, p.ID)
			counts[p.ID] = p.RetryCount
			if minIdle < 0 || p.Idle < minIdle {
				minIdle = p.Idle
			}
		}
		last = p.ID
	}
	c.mu.Unlock()
	if !full && len(ps) < count {
		c.recovering, c.recoverFrom = false, "-"
	} else {
		c.recoverFrom = "(" + last
	}
	if len(ids) == 0 || ctx.Err() != nil {
		return nil, nil
	}
	msgs, err := c.q.client.XClaim(rctx, &redis.XClaimArgs{
		Stream: c.q.stream, Group: groupName, Consumer: c.cc.consumer, MinIdle: max(minIdle, 0), Messages: ids,
	}).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	ds := c.deliveries(rctx, msgs)
	for _, d := range ds {
		// The claim counts as one more delivery, as in markStalled.
		if k := counts[d.entry] + 1; k > int64(c.cc.maxAttempts) {
			d.stalled = k
		}
	}
	if len(ds) > 0 {
		c.q.cfg.logger.Info("queue: took back messages delivered to this consumer and not received", "queue", c.q.name, "n", len(ds))
	}
	return ds, nil
}

// markStalled looks up how often reclaimed entries were delivered. One
// delivered more than MaxAttempts times kept crashing or stalling its
// consumers (a handler failure would have settled it): it is dead-lettered
// rather than reclaimed forever. A failed lookup marks nothing.
func (c *redisConsumer) markStalled(ctx context.Context, ds []*delivery) {
	first, last := ds[0].entry, ds[0].entry
	for _, d := range ds {
		if compareEntryIDs(d.entry, first) < 0 {
			first = d.entry
		}
		if compareEntryIDs(d.entry, last) > 0 {
			last = d.entry
		}
	}
	ps, err := c.q.client.XPendingExt(ctx, &redis.XPendingExtArgs{
		Stream: c.q.stream, Group: groupName, Start: first, End: last,
		Count: int64(len(ds) + c.cc.prefetch), Consumer: c.cc.consumer,
	}).Result()
	if err != nil {
		return
	}
	counts := make(map[string]int64, len(ps))
	for _, p := range ps {
		counts[p.ID] = p.RetryCount
	}
	for _, d := range ds {
		if n := counts[d.entry]; n > int64(c.cc.maxAttempts) {
			d.stalled = n
		}
	}
}

// compareEntryIDs orders stream entry IDs ("ms-seq").
func compareEntryIDs(a, b string) int {
	ams, aseq := parseEntryID(a)
	bms, bseq := parseEntryID(b)
	if c := cmp.Compare(ams, bms); c != 0 {
		return c
	}
	return cmp.Compare(aseq, bseq)
}

// parseEntryID returns the milliseconds and sequence number of stream entry
// ID id ("ms-seq"; "ms" is ms-0, as Redis reads it). What does not parse is
// 0: an ID that is not one sorts first (Redis refuses it).
func parseEntryID(id string) (ms, seq uint64) {
	m, q, _ := strings.Cut(id, "-")
	ms, _ = strconv.ParseUint(m, 10, 64)
	seq, _ = strconv.ParseUint(q, 10, 64)
	return ms, seq
}

// deliveries parses entries. An entry without fields was deleted while
// pending (only possible after manual intervention): it is acknowledged away.
//
// The deliveries, their messages and their bodies take three allocations
// per read rather than three per message.
func (c *redisConsumer) deliveries(ctx context.Context, msgs []redis.XMessage) []*delivery {
	ds := make([]*delivery, 0, len(msgs))
	type entryDelivery struct {
		d delivery
		m Message
	}
	all := make([]entryDelivery, len(msgs))
	size := 0
	for _, x := range msgs {
		b, _ := x.Values["body"].(string)
		size += len(b)
	}
	arena := make([]byte, 0, size)
	var ghosts []string
	for i, x := range msgs {
		if len(x.Values) == 0 {
			ghosts = append(ghosts, x.ID)
			continue
		}
		ed := &all[i]
		fillEntry(&ed.m, x.ID, x.Values, &arena)
		ed.d.msg, ed.d.entry = &ed.m, x.ID
		ds = append(ds, &ed.d)
	}
	c.ackGhosts(ctx, ghosts)
	return ds
}

// ackGhosts acknowledges entries without fields (see deliveries).
func (c *redisConsumer) ackGhosts(ctx context.Context, ghosts []string) {
	if len(ghosts) > 0 {
		_ = c.q.client.XAck(ctx, c.q.stream, groupName, ghosts...).Err()
	}
}

// parseEntry turns stream fields into a Message.
func parseEntry(entryID string, v map[string]any) *Message {
	m := new(Message)
	fillEntry(m, entryID, v, nil)
	return m
}

// fillEntry sets m from stream fields. With an arena the body is appended
// to it (see appendBody); without, it is a copy of its own.
func fillEntry(m *Message, entryID string, v map[string]any, arena *[]byte) {
	*m = Message{ID: entryID, Attempt: 1}
	for k, raw := range v {
		s, _ := raw.(string)
		switch k {
		case "id":
			m.ID = s
		case "body":
			if arena != nil {
				m.Body = appendBody(arena, s)
			} else {
				m.Body = []byte(s)
			}
		default:
			setEntryField(m, k, s)
		}
	}
	finishEntry(m, entryID)
}

// appendBody returns body appended to arena when it has room (with a
// capacity of its own, so that appending to one body never writes over the
// next), else a copy of its own.
func appendBody[T string | []byte](arena *[]byte, body T) []byte {
	if cap(*arena)-len(*arena) < len(body) {
		return []byte(body)
	}
	start := len(*arena)
	*arena = append(*arena, body...)
	return (*arena)[start:len(*arena):len(*arena)]
}

// setEntryField sets the field k of m other than "id" and "body" ("a",
// "t", "e" and the "h:" headers; any other is ignored).
func setEntryField[T string | []byte](m *Message, k, v T) {
	switch string(k) {
	case "a":
		if n, err := strconv.Atoi(string(v)); err == nil && n > 0 {
			m.Attempt = n
		}
	case "t":
		if ms, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			m.PublishedAt = time.UnixMilli(ms)
		}
	case "e":
		m.LastError = string(v)
	default:
		if h, ok := strings.CutPrefix(string(k), "h:"); ok {
			if m.Headers == nil {
				m.Headers = make(map[string]string)
			}
			m.Headers[h] = string(v)
		}
	}
}

// finishEntry completes m, read from the fields of entry entryID: an empty
// body when it had none, and the publish time of an entry without "t".
func finishEntry(m *Message, entryID string) {
	if m.Body == nil {
		m.Body = []byte{}
	}
	if m.PublishedAt.IsZero() {
		// Published straight into the stream: the entry ID holds the time.
		ms, _, _ := strings.Cut(entryID, "-")
		if t, err := strconv.ParseInt(ms, 10, 64); err == nil {
			m.PublishedAt = time.UnixMilli(t)
		}
	}
}

// entryFields encodes m as stream fields, for re-adding it.
func entryFields(m *Message, attempt int, lastErr string) []any {
	f := make([]any, 0, 10+2*len(m.Headers))
	f = append(f, "id", m.ID, "t", strconv.FormatInt(m.PublishedAt.UnixMilli(), 10), "a", strconv.Itoa(attempt), "body", m.Body)
	if lastErr != "" {
		f = append(f, "e", lastErr)
	}
	for k, v := range m.Headers {
		f = append(f, "h:"+k, v)
	}
	return f
}

// settle acks in one script call per 1000 entries and settles failures with
// one script call each, all in one pipeline.
func (c *redisConsumer) settle(ctx context.Context, ss []settlement) error {
	var acks []ackEntry
	type call struct {
		s    *redis.Script
		keys []string
		args []any
	}
	var calls []call
	wake := false
	flushAcks := func() {
		if len(acks) > 0 {
			calls = append(calls, call{ackScript, []string{c.q.stream}, ackArgs(acks)})
		}
		acks = nil
	}
	for _, s := range ss {
		if s.kind == settleAck {
			if acks == nil {
				acks = make([]ackEntry, 0, min(len(ss), 1000))
			}
			acks = append(acks, newAckEntry(&s.d.entry))
			if len(acks) == 1000 {
				flushAcks()
			}
			continue
		}
		mode, attempt, lastErr, delay := "retry", s.d.msg.Attempt, s.d.msg.LastError, int64(0)
		switch s.kind {
		case settleRetry:
			attempt, lastErr = attempt+1, s.err
			wake = wake || s.delay > 0
			delay = s.delay.Milliseconds()
			if s.delay > 0 && delay == 0 {
				delay = 1
			}
		case settleDead:
			mode, lastErr = "dead", s.err
		}
		args := append([]any{groupName, s.d.entry, mode, delay, s.d.msg.ID}, entryFields(s.d.msg, attempt, lastErr)...)
		calls = append(calls, call{failScript, []string{c.q.stream, c.q.delayed, c.q.payloads, c.q.dead, c.q.deadIndex}, args})
	}
	flushAcks()
	if keys, args := c.q.tally(ss); len(ss) > 0 {
		calls = append(calls, call{tallyScript, keys, args})
	}
	cmds := make([]*redis.Cmd, len(calls))
	pipe := c.q.client.Pipeline()
	for i, cl := range calls {
		cmds[i] = cl.s.EvalSha(ctx, pipe, cl.keys, cl.args...)
	}
	_, _ = pipe.Exec(ctx)
	var retry []int
	for i, cmd := range cmds {
		if isNoScript(cmd.Err()) {
			retry = append(retry, i)
		}
	}
	if len(retry) > 0 {
		pipe := c.q.client.Pipeline()
		for _, i := range retry {
			cmds[i] = calls[i].s.Eval(ctx, pipe, calls[i].keys, calls[i].args...)
		}
		if t := len(calls) - 1; len(ss) > 0 && retry[len(retry)-1] != t {
			// The tally ran before the retried calls: record the depth
			// again after them (no counts: they were counted once).
			tallyScript.Eval(ctx, pipe, calls[t].keys, calls[t].args[:1]...)
		}
		_, _ = pipe.Exec(ctx)
	}
	if wake {
		c.q.wakeMover()
	}
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil && !isNoGroup(err) {
			// NOGROUP: Redis lost the stream, and the entries with it.
			return fmt.Errorf("queue: settle: %w", err)
		}
		if err := checkSettleReply(calls[i].s, cmd); err != nil {
			return fmt.Errorf("queue: settle: %w", err)
		}
	}
	c.mu.Lock()
	for _, s := range ss {
		delete(c.held, s.d.entry)
	}
	c.mu.Unlock()
	return nil
}

// checkSettleReply checks the reply of a settle pipeline's script call
// that did not fail: ack.lua answers a count, fail.lua 0 or 1, tally.lua 1.
func checkSettleReply(s *redis.Script, cmd *redis.Cmd) error {
	if cmd.Err() != nil {
		return nil // NOGROUP, let through by the caller
	}
	n, ok := cmd.Val().(int64)
	switch {
	case s == ackScript && ok && n >= 0,
		s == failScript && ok && (n == 0 || n == 1),
		s == tallyScript && ok && n == 1:
		return nil
	}
	name := map[*redis.Script]string{ackScript: "ack.lua", failScript: "fail.lua", tallyScript: "tally.lua"}[s]
	return rediserr.BadReply("%s: %v (%T)", name, cmd.Val(), cmd.Val())
}

func (c *redisConsumer) renew(ctx context.Context, ds []*delivery) error {
	for len(ds) > 0 {
		n := min(len(ds), 500)
		args := make([]any, 0, n+2)
		args = append(args, groupName, c.cc.consumer)
		for _, d := range ds[:n] {
			args = append(args, d.entry)
		}
		lost, err := renewScript.Run(ctx, c.q.client, []string{c.q.stream}, args...).StringSlice()
		if err != nil && !isNoGroup(err) {
			return fmt.Errorf("queue: renew leases: %w", err)
		}
		if len(lost) > 0 {
			c.q.cnt.leasesLost.Add(int64(len(lost)))
			c.q.cfg.logger.Warn("queue: lost the lease of running messages; another consumer may run them too", "queue", c.q.name, "n", len(lost))
		}
		ds = ds[n:]
	}
	return nil
}

// background moves due delayed messages into the stream, sleeping until the
// next one is due (at most half a second, since other replicas add delayed
// messages too), renews the wake stream's TTL, and now and then removes
// consumers that left without leaving (killed) once they have nothing
// pending. Failures caused by the stop itself are logged at DEBUG only.
func (c *redisConsumer) background(stop <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	defer func() { cancel(); <-done }()
	go func() {
		defer close(done)
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	const maxSleep = 500 * time.Millisecond
	sweepEvery := max(10*c.cc.visibility, time.Minute)
	nextSweep := time.Now().Add(sweepEvery / 4)
	nextWake := time.Now().Add(wakeTTL / 4)
	for {
		wait := maxSleep
		res, err := moveScript.Run(ctx, c.q.client, []string{c.q.stream, c.q.delayed, c.q.payloads}, 200).Int64Slice()
		if err == nil && len(res) != 2 {
			err = rediserr.BadReply("move.lua: %v, want {moved, wait}", res)
		}
		switch {
		case err != nil:
			c.q.logFailure(ctx, "move", "queue: moving delayed messages failed", err)
		case res[0] == 200:
			wait = 0 // more are due
		case res[1] >= 0:
			wait = min(time.Duration(res[1])*time.Millisecond+time.Millisecond, maxSleep)
		}
		if now := time.Now(); now.After(nextWake) {
			nextWake = now.Add(wakeTTL / 4)
			if err := c.q.client.PExpire(ctx, c.wake, wakeTTL).Err(); err != nil {
				c.q.logFailure(ctx, "wake", "queue: renewing the wake stream failed", err)
			}
		}
		if time.Now().After(nextSweep) {
			nextSweep = time.Now().Add(sweepEvery)
			if _, err := leaveScript.Run(ctx, c.q.client, []string{c.q.stream}, groupName, "", sweepEvery.Milliseconds()).Int64(); err != nil && !isNoGroup(err) {
				c.q.logFailure(ctx, "sweep", "queue: sweeping idle consumers failed", err)
			}
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-stop:
				t.Stop()
				return
			case <-c.q.moverWake:
				t.Stop()
			case <-t.C:
			}
		} else {
			select {
			case <-stop:
				return
			default:
			}
		}
	}
}

// leave removes the consumer from the group if it has nothing pending, and
// deletes its wake stream.
func (c *redisConsumer) leave(ctx context.Context) {
	if _, err := leaveScript.Run(ctx, c.q.client, []string{c.q.stream, c.wake}, groupName, c.cc.consumer, 0).Int64(); err != nil && !isNoGroup(err) {
		c.q.logFailure(ctx, "leave", "queue: leaving the consumer group failed", err)
	}
}
