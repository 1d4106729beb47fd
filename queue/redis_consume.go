package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisConsumer is the Redis side of one Consume call.
type redisConsumer struct {
	q  *Redis
	cc consumeConfig

	// Used by the fetch goroutine only.
	ready       bool      // the group is known to exist
	history     bool      // still reading our own pending entries (stable name after a crash)
	historyFrom string    // read our pending entries after this ID
	cursor      string    // XAUTOCLAIM cursor
	lastReclaim time.Time // when XAUTOCLAIM last ran
	pause       pauseGate // see pause.go
}

func (c *redisConsumer) reclaimEvery() time.Duration {
	return min(max(c.cc.visibility/8, 50*time.Millisecond), 5*time.Second)
}

// ensureGroup creates the stream and the group if they do not exist. The
// group starts at 0: messages published before any consumer existed are
// delivered too (acknowledged entries are deleted, so all entries are live).
func (c *redisConsumer) ensureGroup(ctx context.Context) error {
	err := c.q.client.XGroupCreateMkStream(ctx, c.q.stream, groupName, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("queue: create consumer group: %w", err)
	}
	c.ready = true
	return nil
}

func isNoGroup(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOGROUP")
}

func (c *redisConsumer) fetch(ctx context.Context, n int) ([]*delivery, error) {
	if c.hold(ctx) {
		return nil, nil
	}
	// A read that started must finish: what it returns after ctx is done
	// is released, not left pending until the visibility timeout.
	ctx = context.WithoutCancel(ctx)
	if !c.ready {
		if err := c.ensureGroup(ctx); err != nil {
			return nil, err
		}
	}
	ds, err := c.fetchOnce(ctx, n)
	if isNoGroup(err) {
		// Redis lost the stream (restart without persistence, or the keys
		// were deleted): recreate the group and carry on.
		c.ready = false
		c.q.cfg.logger.Warn("queue: consumer group missing; recreating it", "queue", c.q.name)
		if err := c.ensureGroup(ctx); err != nil {
			return nil, err
		}
		return c.fetchOnce(ctx, n)
	}
	return ds, err
}

func (c *redisConsumer) fetchOnce(ctx context.Context, n int) ([]*delivery, error) {
	if c.history {
		// Entries delivered to a previous consumer of the same name that
		// were never settled: take them back at once.
		res, err := c.q.client.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: groupName, Consumer: c.cc.consumer, Streams: []string{c.q.stream, c.historyFrom}, Count: int64(n),
		}).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
		var msgs []redis.XMessage
		if len(res) > 0 {
			msgs = res[0].Messages
		}
		if len(msgs) == 0 {
			c.history = false
		} else {
			c.historyFrom = msgs[len(msgs)-1].ID
			if ds := c.deliveries(ctx, msgs); len(ds) > 0 {
				return ds, nil
			}
		}
	}
	if c.cursor != "0-0" || time.Since(c.lastReclaim) >= c.reclaimEvery() {
		c.lastReclaim = time.Now()
		msgs, next, err := c.q.client.XAutoClaim(ctx, &redis.XAutoClaimArgs{
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
			c.q.cfg.logger.Info("queue: reclaimed messages of a stalled consumer", "queue", c.q.name, "n", len(msgs))
			if ds := c.deliveries(ctx, msgs); len(ds) > 0 {
				c.markStalled(ctx, ds)
				return ds, nil
			}
		}
	}
	res, err := c.q.client.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: groupName, Consumer: c.cc.consumer, Streams: []string{c.q.stream, ">"},
		Count: int64(n), Block: c.cc.block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(res) == 0 {
		return nil, nil
	}
	return c.deliveries(ctx, res[0].Messages), nil
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
	am, as, _ := strings.Cut(a, "-")
	bm, bs, _ := strings.Cut(b, "-")
	ai, _ := strconv.ParseUint(am, 10, 64)
	bi, _ := strconv.ParseUint(bm, 10, 64)
	if ai != bi {
		if ai < bi {
			return -1
		}
		return 1
	}
	ai, _ = strconv.ParseUint(as, 10, 64)
	bi, _ = strconv.ParseUint(bs, 10, 64)
	switch {
	case ai < bi:
		return -1
	case ai > bi:
		return 1
	}
	return 0
}

// deliveries parses entries. An entry without fields was deleted while
// pending (only possible after manual intervention): it is acknowledged away.
func (c *redisConsumer) deliveries(ctx context.Context, msgs []redis.XMessage) []*delivery {
	ds := make([]*delivery, 0, len(msgs))
	var ghosts []string
	for _, x := range msgs {
		if len(x.Values) == 0 {
			ghosts = append(ghosts, x.ID)
			continue
		}
		ds = append(ds, &delivery{msg: parseEntry(x.ID, x.Values), entry: x.ID})
	}
	if len(ghosts) > 0 {
		_ = c.q.client.XAck(ctx, c.q.stream, groupName, ghosts...).Err()
	}
	return ds
}

// parseEntry turns stream fields into a Message.
func parseEntry(entryID string, v map[string]any) *Message {
	m := &Message{ID: entryID, Attempt: 1}
	for k, raw := range v {
		s, _ := raw.(string)
		switch k {
		case "id":
			m.ID = s
		case "body":
			m.Body = []byte(s)
		case "a":
			if n, err := strconv.Atoi(s); err == nil && n > 0 {
				m.Attempt = n
			}
		case "t":
			if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
				m.PublishedAt = time.UnixMilli(ms)
			}
		case "e":
			m.LastError = s
		default:
			if h, ok := strings.CutPrefix(k, "h:"); ok {
				if m.Headers == nil {
					m.Headers = make(map[string]string)
				}
				m.Headers[h] = s
			}
		}
	}
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
	return m
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
	var acks []any
	type call struct {
		s    *redis.Script
		keys []string
		args []any
	}
	var calls []call
	wake := false
	flushAcks := func() {
		if len(acks) > 1 {
			calls = append(calls, call{ackScript, []string{c.q.stream}, acks})
		}
		acks = nil
	}
	for _, s := range ss {
		if s.kind == settleAck {
			if acks == nil {
				acks = append(make([]any, 0, min(len(ss), 1000)+1), groupName)
			}
			acks = append(acks, s.d.entry)
			if len(acks) > 1000 {
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
		_, _ = pipe.Exec(ctx)
	}
	if wake {
		c.q.wakeMover()
	}
	for _, cmd := range cmds {
		if err := cmd.Err(); err != nil && !isNoGroup(err) {
			// NOGROUP: Redis lost the stream, and the entries with it.
			return fmt.Errorf("queue: settle: %w", err)
		}
	}
	return nil
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
// messages too), and now and then removes consumers that left without
// leaving (killed) once they have nothing pending.
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
	for {
		wait := maxSleep
		res, err := moveScript.Run(ctx, c.q.client, []string{c.q.stream, c.q.delayed, c.q.payloads}, 200).Int64Slice()
		switch {
		case err != nil:
			c.q.cfg.logger.Warn("queue: moving delayed messages failed", "queue", c.q.name, "err", err)
		case len(res) == 2 && res[0] == 200:
			wait = 0 // more are due
		case len(res) == 2 && res[1] >= 0:
			wait = min(time.Duration(res[1])*time.Millisecond+time.Millisecond, maxSleep)
		}
		if time.Now().After(nextSweep) {
			nextSweep = time.Now().Add(sweepEvery)
			if err := leaveScript.Run(ctx, c.q.client, []string{c.q.stream}, groupName, "", sweepEvery.Milliseconds()).Err(); err != nil && !isNoGroup(err) {
				c.q.cfg.logger.Warn("queue: sweeping idle consumers failed", "queue", c.q.name, "err", err)
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

// leave removes the consumer from the group if it has nothing pending.
func (c *redisConsumer) leave(ctx context.Context) {
	if err := leaveScript.Run(ctx, c.q.client, []string{c.q.stream}, groupName, c.cc.consumer, 0).Err(); err != nil && !isNoGroup(err) {
		c.q.cfg.logger.Warn("queue: leaving the consumer group failed", "queue", c.q.name, "err", err)
	}
}
