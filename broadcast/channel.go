package broadcast

import (
	"context"
	"errors"
	"sync"
	"time"
)

// channel is a Hub's state for one channel with local subscribers: the
// position it has handed out, the sinks, and the live events that wait
// while it starts or recovers from a gap.
//
// Invariant: the events handed to sinks have contiguous offsets within an
// epoch; anything else is preceded by a resync event.
type channel struct {
	h    *Hub
	name string
	refs int // protected by h.mu

	ready    chan struct{} // closed when started (or failed: startErr)
	startErr error

	mu         sync.Mutex // protects the fields below
	follows    map[sink]*follow
	members    map[string]*memberRef // local presence, by client ID
	started    bool                  // pos is known
	pos        Position              // last position handed to sinks
	recovering bool
	again      bool     // another recovery is needed when this one ends
	pending    []*event // live events waiting for start or recovery
	removed    bool     // no longer watched
}

type memberRef struct {
	m    Member
	refs int
}

// maxPending bounds the live events kept while recovering; beyond it they
// are dropped and read from the history instead.
const maxPending = 10000

func newChannel(h *Hub, name string) *channel {
	return &channel{h: h, name: name, ready: make(chan struct{}), follows: map[sink]*follow{}, members: map[string]*memberRef{}}
}

// start watches the channel and reads its position. The start is not tied
// to the first subscriber's ctx beyond its deadline: others may wait on it.
func (ch *channel) start(ctx context.Context) {
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ch.h.ctx, func() { cancel(ErrClosed) })
	defer func() { stop(); cancel(nil) }()
	if d, ok := ctx.Deadline(); !ok || time.Until(d) > 30*time.Second {
		var c2 context.CancelFunc
		ctx, c2 = context.WithTimeout(ctx, 30*time.Second)
		defer c2()
	}
	err := ch.h.be.watch(ctx, ch.name)
	ch.unwatchIfAbandoned()
	var pos Position
	if err == nil {
		pos, err = ch.h.be.position(ctx, ch.name)
	}
	if err != nil {
		ch.startErr = err
		close(ch.ready)
		return
	}
	ch.mu.Lock()
	ch.pos, ch.started = pos, true
	ch.drainLocked()
	ch.mu.Unlock()
	close(ch.ready)
}

// unwatchIfAbandoned undoes a watch that finished after every subscriber
// waiting for it gave up (release ran before the watch was registered),
// unless a new channel of the same name owns the subscription by now.
func (ch *channel) unwatchIfAbandoned() {
	h := ch.h
	h.mu.Lock()
	defer h.mu.Unlock()
	ch.mu.Lock()
	removed := ch.removed
	ch.mu.Unlock()
	if removed && h.channels[ch.name] == nil {
		h.be.unwatch(ch.name)
	}
}

// live takes a publication from the pub/sub connection.
func (ch *channel) live(e *event) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if !ch.started || ch.recovering {
		ch.queueLocked(e)
		return
	}
	ch.applyLocked(e)
}

func (ch *channel) queueLocked(e *event) {
	if len(ch.pending) < maxPending {
		ch.pending = append(ch.pending, e)
	} else {
		ch.again = true // the history has it
	}
}

// applyLocked hands e to the sinks if it is the next offset, drops it if it
// was handed out already, and starts a recovery on a gap.
func (ch *channel) applyLocked(e *event) {
	if e.pos.Epoch == ch.pos.Epoch {
		if e.pos.Offset <= ch.pos.Offset {
			return // seen
		}
		if e.pos.Offset == ch.pos.Offset+1 {
			ch.pos = e.pos
			ch.outputLocked(e)
			return
		}
	}
	// A gap, or another epoch: the history says which.
	ch.pending = append(ch.pending, e)
	ch.recoverLocked()
}

// drainLocked applies the pending events, in order, until a gap.
func (ch *channel) drainLocked() {
	for len(ch.pending) > 0 && !ch.recovering {
		e := ch.pending[0]
		ch.pending[0] = nil
		ch.pending = ch.pending[1:]
		ch.applyLocked(e)
	}
	if len(ch.pending) == 0 {
		ch.pending = nil
	}
}

// resubscribed: live events resumed after an interruption.
func (ch *channel) resubscribed() {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if !ch.started {
		return
	}
	ch.recoverLocked()
}

// recoverLocked starts a recovery from the history, or asks the running
// one for another round.
func (ch *channel) recoverLocked() {
	if ch.recovering {
		ch.again = true
		return
	}
	if ch.removed {
		return
	}
	ch.recovering = true
	ch.h.stats.gaps.Add(1)
	if f := ch.h.cfg.hooks.OnGap; f != nil {
		f(ch.name)
	}
	if !ch.h.goTracked(ch.recover) {
		ch.recovering = false
	}
}

// recover reads what the Hub missed from the history and hands it out
// followed by the pending live events; when the history cannot cover it,
// the sinks get a resync. Redis errors are retried until the channel is no
// longer watched or the Hub closes.
func (ch *channel) recover() {
	backoff := 50 * time.Millisecond
	for {
		ch.mu.Lock()
		if ch.removed {
			ch.recovering, ch.pending = false, nil
			ch.mu.Unlock()
			return
		}
		from := ch.pos
		ch.again = false
		ch.mu.Unlock()

		ctx, cancel := context.WithTimeout(ch.h.ctx, 10*time.Second)
		entries, top, err := ch.h.be.history(ctx, ch.name, from, maxPending, true)
		cancel()
		if err != nil && !errors.Is(err, ErrResync) {
			if ch.h.ctx.Err() != nil {
				ch.mu.Lock()
				ch.recovering = false
				ch.mu.Unlock()
				return
			}
			ch.h.cfg.logger.Warn("broadcast: history read failed; retrying", "channel", ch.name, "err", err)
			if !ch.h.sleep(backoff) {
				ch.mu.Lock()
				ch.recovering = false
				ch.mu.Unlock()
				return
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		ch.mu.Lock()
		if err != nil { // ErrResync: what was missed is gone
			ch.h.cfg.logger.Warn("broadcast: history does not cover a gap; subscribers resync", "channel", ch.name, "from", from.String(), "to", top.String())
			ch.pos = top
			ch.outputLocked(&event{kind: kindResync, channel: ch.name, pos: top, reason: ResyncGap})
		} else {
			for _, e := range entries {
				if e.pos.Epoch == ch.pos.Epoch && e.pos.Offset == ch.pos.Offset+1 {
					ch.pos = e.pos
					ch.outputLocked(e)
				}
			}
		}
		ch.recovering = false
		ch.drainLocked()
		if ch.again && !ch.recovering {
			ch.recovering = true
			ch.mu.Unlock()
			continue
		}
		ch.mu.Unlock()
		return
	}
}

// outputLocked hands e to every sink.
func (ch *channel) outputLocked(e *event) {
	onReceive := ch.h.cfg.hooks.OnReceive
	if onReceive == nil || e.kind != Publication {
		for sk, f := range ch.follows {
			ch.handLocked(sk, f, e)
		}
		return
	}
	start := time.Now()
	for sk, f := range ch.follows {
		ch.handLocked(sk, f, e)
	}
	onReceive(ch.name, e.pos, e.headers, len(ch.follows), time.Since(start))
}

// handLocked hands e to one sink, or holds it while the sink catches up.
func (ch *channel) handLocked(sk sink, f *follow, e *event) {
	if f.holding {
		f.held = append(f.held, e)
		return
	}
	ch.deliverLocked(sk, f, e)
}

// deliverLocked hands e to one sink unless it has seen it, keeping its
// position.
func (ch *channel) deliverLocked(sk sink, f *follow, e *event) {
	switch e.kind {
	case Publication:
		if e.pos.Epoch == f.pos.Epoch && e.pos.Offset <= f.pos.Offset {
			return
		}
		f.pos = e.pos
		ch.delivered(e)
	case kindResync:
		f.pos = e.pos
		ch.h.resynced(ch.name, e.reason)
	case Join, Leave:
		if !f.events {
			return
		}
		ch.delivered(e)
	}
	sk.deliver(e)
}

// delivered counts e handed to one sink and runs OnDeliver.
func (ch *channel) delivered(e *event) {
	ch.h.stats.delivered.Add(1)
	if f := ch.h.cfg.hooks.OnDeliver; f != nil {
		f(ch.name, e.kind, e.pos)
	}
}

// presenceEvent hands a Join or Leave to the sinks that want them.
func (ch *channel) presenceEvent(e *event) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.outputLocked(e)
}

// add registers sk. Without since it starts at the current position; with
// it, it first gets the history after since (or a resync when that is
// gone) and then the live events, with none missing or repeated. n is the
// number of messages read from the history.
func (ch *channel) add(ctx context.Context, sk sink, sc subConfig) (recovered bool, start Position, n int, err error) {
	ch.mu.Lock()
	f := &follow{pos: ch.pos, events: sc.events}
	live := ch.pos
	ch.follows[sk] = f
	if !sc.hasSince {
		ch.mu.Unlock()
		return false, live, 0, nil
	}
	since := sc.since
	if since == live {
		ch.mu.Unlock()
		return true, live, 0, nil
	}
	if since.Epoch != live.Epoch || since.Epoch == "" {
		// Another epoch: nothing to read. The sink starts with a resync.
		ch.deliverLocked(sk, f, &event{kind: kindResync, channel: ch.name, pos: live, reason: ResyncSince})
		ch.mu.Unlock()
		return false, live, 0, nil
	}
	f.holding = true
	ch.mu.Unlock()

	entries, top, herr := ch.h.be.history(ctx, ch.name, since, ch.h.cfg.bufMessages, false)
	if herr != nil && !errors.Is(herr, ErrResync) {
		return false, Position{}, 0, herr
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	f.holding = false
	held := f.held
	f.held = nil
	if herr != nil || top.Epoch != since.Epoch {
		f.pos = live
		ch.deliverLocked(sk, f, &event{kind: kindResync, channel: ch.name, pos: f.pos, reason: ResyncSince})
	} else {
		recovered = true
		f.pos = since
		for _, e := range entries {
			ch.deliverLocked(sk, f, e)
		}
	}
	for _, e := range held {
		ch.deliverLocked(sk, f, e)
	}
	if recovered {
		return true, since, len(entries), nil
	}
	return false, live, 0, nil
}

// remove unregisters sk; false if it was not registered.
func (ch *channel) remove(sk sink) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if _, ok := ch.follows[sk]; !ok {
		return false
	}
	delete(ch.follows, sk)
	return true
}

// join adds m to the presence unless this Hub has it on the channel already.
func (ch *channel) join(ctx context.Context, m Member) error {
	ch.mu.Lock()
	r := ch.members[m.ClientID]
	if r != nil {
		r.refs++
		ch.mu.Unlock()
		return nil
	}
	m.Node = ch.h.cfg.nodeID
	ch.members[m.ClientID] = &memberRef{m: m, refs: 1}
	ch.mu.Unlock()
	if err := ch.h.be.join(ctx, ch.name, m); err != nil {
		ch.mu.Lock()
		if r := ch.members[m.ClientID]; r != nil {
			if r.refs--; r.refs == 0 {
				delete(ch.members, m.ClientID)
			}
		}
		ch.mu.Unlock()
		return err
	}
	if f := ch.h.cfg.hooks.OnJoin; f != nil {
		f(ch.name, m)
	}
	return nil
}

// leave drops one reference to m; the last one removes it from presence.
func (ch *channel) leave(ctx context.Context, m Member) {
	ch.mu.Lock()
	r := ch.members[m.ClientID]
	if r == nil {
		ch.mu.Unlock()
		return
	}
	r.refs--
	if r.refs > 0 {
		ch.mu.Unlock()
		return
	}
	delete(ch.members, m.ClientID)
	m = r.m
	ch.mu.Unlock()
	if err := ch.h.be.leave(ctx, ch.name, m); err != nil {
		ch.h.cfg.logger.Warn("broadcast: presence leave failed", "channel", ch.name, "client", m.ClientID, "err", err)
	}
	if f := ch.h.cfg.hooks.OnLeave; f != nil {
		f(ch.name, m)
	}
}

// memberList returns the members this Hub holds on the channel.
func (ch *channel) memberList() []Member {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.membersLocked()
}

// takeMembers returns the members this Hub holds on the channel and forgets
// them (Hub closing: the backend removed them).
func (ch *channel) takeMembers() []Member {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	out := ch.membersLocked()
	clear(ch.members)
	return out
}

// membersLocked lists the members this Hub holds; called with ch.mu held.
func (ch *channel) membersLocked() []Member {
	out := make([]Member, 0, len(ch.members))
	for _, r := range ch.members {
		out = append(out, r.m)
	}
	return out
}

// closeAll ends every sink of the channel (Hub closing).
func (ch *channel) closeAll(ctx context.Context) {
	ch.mu.Lock()
	sinks := make([]sink, 0, len(ch.follows))
	for sk := range ch.follows {
		sinks = append(sinks, sk)
	}
	ch.mu.Unlock()
	for _, sk := range sinks {
		if s, ok := sk.(interface{ closeHub() }); ok {
			s.closeHub()
		}
	}
}
