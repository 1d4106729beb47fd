package broadcast

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Pub/sub connection health: a PING after pingEvery without traffic; the
// connection is replaced after deadAfter without any.
const (
	pingEvery = 2 * time.Second
	deadAfter = 3 * pingEvery
)

// pubsubConn is one Redis pub/sub connection of a Hub (per Cluster master
// with local subscribers): its reader goroutine hands frames to the Hub,
// and its writer goroutine sends SUBSCRIBE and UNSUBSCRIBE in the order
// they were asked for, so that no caller blocks on a broken connection.
type pubsubConn struct {
	b       *redisBackend
	addr    string // master address on a Cluster ("" otherwise)
	probeCh string

	mu      sync.Mutex // protects ps, chans, ops, probes and closed
	ps      *redis.PubSub
	chans   map[string]*watchState // pub/sub channel -> state
	ops     []psOp
	probes  map[string]chan struct{}
	closed  bool
	opsWake chan struct{}
	broken  atomic.Bool // a receive failed; the next confirmations are re-subscriptions
}

type watchState struct {
	name      string // the Hub's channel
	ready     chan struct{}
	confirmed bool
}

type psOp struct {
	subscribe bool
	channel   string
}

func newPubsubConn(b *redisBackend, probeCh string) *pubsubConn {
	return &pubsubConn{
		b: b, probeCh: probeCh,
		chans:   map[string]*watchState{},
		probes:  map[string]chan struct{}{},
		opsWake: make(chan struct{}, 1),
	}
}

func (pc *pubsubConn) startLoops() {
	pc.mu.Lock()
	pc.ps = pc.newPubSub(pc.b.h.ctx, nil)
	pc.mu.Unlock()
	pc.b.h.goTracked(pc.readLoop)
	pc.b.h.goTracked(pc.opsLoop)
}

// newPubSub opens a subscription to the probe channel and chans.
func (pc *pubsubConn) newPubSub(ctx context.Context, chans []string) *redis.PubSub {
	all := append([]string{pc.probeCh}, chans...)
	if pc.b.cluster != nil {
		return pc.b.cluster.SSubscribe(ctx, all...)
	}
	return pc.b.client.Subscribe(ctx, all...)
}

// watch asks for ch's messages (for Hub channel name) and returns a channel
// closed once Redis confirmed the subscription.
func (pc *pubsubConn) watch(ch, name string) <-chan struct{} {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	st := &watchState{name: name, ready: make(chan struct{})}
	pc.chans[ch] = st
	pc.ops = append(pc.ops, psOp{subscribe: true, channel: ch})
	pc.wakeLocked()
	return st.ready
}

func (pc *pubsubConn) unwatch(ch string) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	delete(pc.chans, ch)
	pc.ops = append(pc.ops, psOp{channel: ch})
	pc.wakeLocked()
}

func (pc *pubsubConn) wakeLocked() {
	select {
	case pc.opsWake <- struct{}{}:
	default:
	}
}

// opsLoop sends the queued SUBSCRIBE and UNSUBSCRIBE commands in order.
// go-redis remembers the channels and subscribes again after a reconnect,
// so a write that fails on a broken connection needs no retry.
func (pc *pubsubConn) opsLoop() {
	ctx := pc.b.h.ctx
	for {
		select {
		case <-pc.opsWake:
		case <-ctx.Done():
			return
		}
		for {
			pc.mu.Lock()
			if len(pc.ops) == 0 || pc.closed {
				pc.mu.Unlock()
				break
			}
			op := pc.ops[0]
			pc.ops = pc.ops[1:]
			ps := pc.ps
			pc.mu.Unlock()
			var err error
			switch {
			case op.subscribe && pc.b.cluster != nil:
				err = ps.SSubscribe(ctx, op.channel)
			case op.subscribe:
				err = ps.Subscribe(ctx, op.channel)
			case pc.b.cluster != nil:
				err = ps.SUnsubscribe(ctx, op.channel)
			default:
				err = ps.Unsubscribe(ctx, op.channel)
			}
			if err != nil && ctx.Err() == nil {
				pc.b.h.cfg.logger.Debug("broadcast: pub/sub command failed; go-redis resubscribes on reconnect", "channel", op.channel, "err", err)
			}
		}
	}
}

// readLoop receives frames until the Hub closes.
func (pc *pubsubConn) readLoop() {
	ctx := pc.b.h.ctx
	last := time.Now()
	backoff := 20 * time.Millisecond
	for ctx.Err() == nil {
		pc.mu.Lock()
		ps := pc.ps
		pc.mu.Unlock()
		msg, err := ps.ReceiveTimeout(ctx, pingEvery)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) && ne.Timeout() {
				if time.Since(last) > deadAfter {
					pc.b.h.cfg.logger.Warn("broadcast: pub/sub connection silent; replacing it", "addr", pc.addr)
					pc.replace()
					last = time.Now()
					continue
				}
				_ = ps.Ping(ctx)
				continue
			}
			if !pc.broken.Swap(true) {
				pc.b.h.cfg.logger.Warn("broadcast: pub/sub connection lost; reconnecting", "addr", pc.addr, "err", err)
			}
			if time.Since(last) > deadAfter {
				pc.replace()
				last = time.Now()
			}
			if !pc.b.h.sleep(backoff) {
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		last, backoff = time.Now(), 20*time.Millisecond
		switch m := msg.(type) {
		case *redis.Message:
			pc.onMessage(m)
		case *redis.Subscription:
			pc.onSubscription(m)
		}
	}
}

// replace closes the PubSub and opens a new one with every channel: every
// confirmed channel then recovers from the history.
func (pc *pubsubConn) replace() {
	pc.mu.Lock()
	if pc.closed {
		pc.mu.Unlock()
		return
	}
	old := pc.ps
	chans := make([]string, 0, len(pc.chans))
	for ch := range pc.chans {
		chans = append(chans, ch)
	}
	pc.ps = pc.newPubSub(pc.b.h.ctx, chans)
	pc.broken.Store(true)
	pc.mu.Unlock()
	_ = old.Close()
}

func (pc *pubsubConn) onSubscription(m *redis.Subscription) {
	switch m.Kind {
	case "subscribe", "ssubscribe":
		pc.mu.Lock()
		st := pc.chans[m.Channel]
		again := false
		if st != nil {
			if !st.confirmed {
				st.confirmed = true
				close(st.ready)
			} else {
				again = true
			}
		}
		pc.mu.Unlock()
		if pc.broken.Swap(false) {
			pc.b.h.stats.reconnects.Add(1)
			pc.b.h.goTracked(pc.b.checkAcked)
		}
		if again {
			pc.b.h.onResubscribed(st.name)
		}
	case "sunsubscribe":
		// Redis drops shard subscriptions whose slot moved to another
		// master. If we still want the channel, watch it again where it
		// lives now; the re-subscription recovers what was missed.
		pc.mu.Lock()
		st := pc.chans[m.Channel]
		pc.mu.Unlock()
		if st != nil && st.confirmed {
			name := st.name
			pc.b.h.goTracked(func() { pc.b.rewatch(name) })
		}
	}
}

func (pc *pubsubConn) onMessage(m *redis.Message) {
	if m.Channel == pc.probeCh {
		nonce, ok := strings.CutPrefix(m.Payload, "q")
		if !ok {
			return
		}
		pc.mu.Lock()
		if c := pc.probes[nonce]; c != nil {
			close(c)
			delete(pc.probes, nonce)
		}
		pc.mu.Unlock()
		return
	}
	pc.mu.Lock()
	st := pc.chans[m.Channel]
	pc.mu.Unlock()
	if st == nil {
		return
	}
	e, ok := decodeFrame(st.name, m.Payload)
	if !ok {
		pc.b.h.cfg.logger.Warn("broadcast: dropped a malformed pub/sub frame", "channel", st.name)
		return
	}
	if e.kind == Publication {
		pc.b.h.onLive(e)
	} else {
		pc.b.h.onPresence(e)
	}
}

// probe publishes a nonce on the probe channel and waits to receive it.
func (pc *pubsubConn) probe(ctx context.Context) error {
	nonce := randomID(8)
	c := make(chan struct{})
	pc.mu.Lock()
	if pc.closed {
		pc.mu.Unlock()
		return ErrClosed
	}
	pc.probes[nonce] = c
	pc.mu.Unlock()
	defer func() {
		pc.mu.Lock()
		delete(pc.probes, nonce)
		pc.mu.Unlock()
	}()
	if err := pc.b.publishRaw(ctx, pc.probeCh, "q"+nonce); err != nil {
		return fmt.Errorf("broadcast: not ready: probe publish: %w", err)
	}
	select {
	case <-c:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("broadcast: not ready: probe did not come back on the pub/sub connection %s: %w", pc.addr, context.Cause(ctx))
	}
}

func (pc *pubsubConn) close() {
	pc.mu.Lock()
	pc.closed = true
	ps := pc.ps
	pc.mu.Unlock()
	if ps != nil {
		_ = ps.Close()
	}
}

// rewatch moves channel name to the connection of the master that serves
// it now, after Redis dropped its shard subscription.
func (b *redisBackend) rewatch(name string) {
	b.h.mu.Lock()
	_, still := b.h.channels[name]
	if still {
		b.unwatch(name)
	}
	b.h.mu.Unlock()
	if !still {
		return
	}
	ctx, cancel := context.WithTimeout(b.h.ctx, 30*time.Second)
	defer cancel()
	if err := b.watch(ctx, name); err != nil {
		b.h.cfg.logger.Warn("broadcast: re-subscribing after a slot move failed", "channel", name, "err", err)
		return
	}
	b.h.onResubscribed(name)
}
