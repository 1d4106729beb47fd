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
	// shard: a Cluster master's connection, whose shard channels are in
	// many slots. go-redis re-subscribes them in one SSUBSCRIBE after a
	// reconnect, which Redis refuses (CROSSSLOT), and a failover moves them
	// to another master: on any trouble such a connection is dropped and
	// its channels are watched again where they live (reroute).
	shard bool

	mu      sync.Mutex // protects ps, chans, ops, probes and closed
	ps      *redis.PubSub
	chans   map[string]*watchState // pub/sub channel -> state
	ops     []psOp
	unsubs  map[string]int // SUNSUBSCRIBE sent, reply not yet seen, per channel
	probes  map[string]chan struct{}
	closed  bool
	opsWake chan struct{}
	broken  atomic.Bool // a receive failed; the next confirmations are re-subscriptions
}

type watchState struct {
	name      string // the Hub's channel
	ready     chan struct{}
	confirmed bool
	dropped   bool // ready was closed because the connection was dropped
}

type psOp struct {
	subscribe bool
	channel   string
}

func newPubsubConn(b *redisBackend, probeCh string) *pubsubConn {
	return &pubsubConn{
		b: b, probeCh: probeCh,
		chans:   map[string]*watchState{},
		unsubs:  map[string]int{},
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
func (pc *pubsubConn) watch(ch, name string) (*watchState, bool) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.closed {
		return nil, false
	}
	st := &watchState{name: name, ready: make(chan struct{})}
	pc.chans[ch] = st
	pc.ops = append(pc.ops, psOp{subscribe: true, channel: ch})
	pc.wakeLocked()
	return st, true
}

// isDropped reports whether st's ready was closed by a dropped connection.
func (pc *pubsubConn) isDropped(st *watchState) bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return st.dropped
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
		pc.mu.Lock()
		closed := pc.closed
		pc.mu.Unlock()
		if closed {
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
			if !op.subscribe && pc.shard {
				pc.unsubs[op.channel]++ // its reply is ours, not a slot move
			}
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
			timeout := errors.As(err, &ne) && ne.Timeout()
			if timeout && time.Since(last) <= deadAfter {
				_ = ps.Ping(ctx)
				continue
			}
			if pc.shard {
				pc.b.h.cfg.logger.Warn("broadcast: shard pub/sub connection failed; subscribing its channels again", "addr", pc.addr, "err", err)
				pc.b.reroute(pc)
				return
			}
			if timeout {
				pc.b.h.cfg.logger.Warn("broadcast: pub/sub connection silent; replacing it", "addr", pc.addr)
				pc.replace()
				last = time.Now()
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
			if !pc.onSubscription(m) {
				return
			}
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

// onSubscription handles a (un)subscription reply; false means the
// connection was dropped (rerouted) and its read loop must end.
func (pc *pubsubConn) onSubscription(m *redis.Subscription) bool {
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
		// Redis drops shard subscriptions whose slot left the master (a
		// failover, a slot migration). An unsubscription we did not ask
		// for (the channel is still wanted, or is the probe) means the
		// channels must be subscribed again where they live now.
		pc.mu.Lock()
		if pc.unsubs[m.Channel] > 0 {
			if pc.unsubs[m.Channel]--; pc.unsubs[m.Channel] == 0 {
				delete(pc.unsubs, m.Channel)
			}
			pc.mu.Unlock()
			return true // the reply to our own SUNSUBSCRIBE
		}
		_, wanted := pc.chans[m.Channel]
		pc.mu.Unlock()
		if !wanted && m.Channel != pc.probeCh {
			return true
		}
		if pc.shard {
			pc.b.reroute(pc)
			return false
		}
		pc.replace() // the probe connection: its one channel, on its new master
	}
	return true
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

// reroute drops a Cluster shard connection and watches each of its
// channels again on the connection of the master that serves it now; each
// then recovers what it missed from the history.
func (b *redisBackend) reroute(pc *pubsubConn) {
	pc.mu.Lock()
	if pc.closed {
		pc.mu.Unlock()
		return
	}
	pc.closed = true
	names := make([]string, 0, len(pc.chans))
	for _, st := range pc.chans {
		if st.confirmed {
			names = append(names, st.name)
		} else {
			// Its watch call is still waiting: it retries by itself.
			st.dropped = true
			close(st.ready)
		}
	}
	clear(pc.chans)
	ps := pc.ps
	b.h.cfg.logger.Info("broadcast: shard pub/sub connection dropped; its channels are subscribed again where they live", "addr", pc.addr, "channels", len(names))
	pc.wakeLocked() // its ops loop sees closed and ends
	pc.mu.Unlock()
	_ = ps.Close()
	b.h.stats.reconnects.Add(1)
	b.mu.Lock()
	if b.conns[pc.addr] == pc {
		delete(b.conns, pc.addr)
	}
	for _, name := range names {
		if b.routes[name] == pc {
			delete(b.routes, name)
		}
	}
	b.mu.Unlock()
	for _, name := range names {
		b.h.goTracked(func() { b.rewatch(name) })
	}
	b.h.goTracked(b.checkAcked)
}

// rewatch watches channel name again, retrying until it works, the channel
// is no longer wanted or the Hub closes, then recovers what was missed.
func (b *redisBackend) rewatch(name string) {
	backoff := 50 * time.Millisecond
	for {
		b.h.mu.Lock()
		_, wanted := b.h.channels[name]
		b.mu.Lock()
		_, routed := b.routes[name]
		b.mu.Unlock()
		b.h.mu.Unlock()
		if !wanted || routed {
			return // released, or watched again by a new subscriber
		}
		ctx, cancel := context.WithTimeout(b.h.ctx, 10*time.Second)
		err := b.watchOn(ctx, name, true)
		cancel()
		if err == nil {
			b.h.cfg.logger.Debug("broadcast: subscribed again", "channel", name)
			b.h.mu.Lock()
			_, wanted = b.h.channels[name]
			if !wanted {
				b.unwatch(name)
			}
			b.h.mu.Unlock()
			if wanted {
				b.h.onResubscribed(name)
			}
			return
		}
		b.h.cfg.logger.Warn("broadcast: subscribing again failed; retrying", "channel", name, "err", err)
		if !b.h.sleep(backoff) {
			return
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}
