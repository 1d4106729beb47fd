package broadcast

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"
)

// localBackend keeps history and presence in memory and delivers to its one
// Hub directly. Its mu is taken before the Hub's channel locks (publish
// hands the event to the Hub while holding it, which keeps offset order).
type localBackend struct {
	h *Hub

	mu        sync.Mutex // protects channels, members and lastSweep
	channels  map[string]*localChannel
	members   map[string]map[string]Member // channel -> client ID -> member
	lastSweep time.Time
}

type localChannel struct {
	epoch   string
	offset  uint64
	touched time.Time // last publish or position read
	entries []localEntry
}

type localEntry struct {
	e  *event
	at time.Time
}

func newLocalBackend(h *Hub) *localBackend {
	return &localBackend{h: h, channels: map[string]*localChannel{}, members: map[string]map[string]Member{}, lastSweep: h.cfg.now()}
}

// channelLocked returns ch's state, starting a new epoch when it has none
// or it expired (WithPositionTTL).
func (b *localBackend) channelLocked(ch string, now time.Time) *localChannel {
	b.sweepLocked(now)
	c := b.channels[ch]
	if c == nil || now.Sub(c.touched) >= b.h.cfg.positionTTL {
		c = &localChannel{epoch: randomID(4)}
		b.channels[ch] = c
	}
	c.touched = now
	return c
}

// sweepLocked forgets channels whose position expired, at most once a
// minute.
func (b *localBackend) sweepLocked(now time.Time) {
	if now.Sub(b.lastSweep) < time.Minute {
		return
	}
	b.lastSweep = now
	for name, c := range b.channels {
		if now.Sub(c.touched) >= b.h.cfg.positionTTL {
			delete(b.channels, name)
		}
	}
}

// trimLocked drops entries over the size or older than the ttl.
func (b *localBackend) trimLocked(c *localChannel, now time.Time) {
	size, ttl := b.h.cfg.historySize, b.h.cfg.historyTTL
	if size == 0 {
		c.entries = nil
		return
	}
	// The ttl runs from the channel's last message, as a Redis PEXPIRE
	// refreshed by each publish.
	if n := len(c.entries); n > 0 && now.Sub(c.entries[n-1].at) >= ttl {
		c.entries = nil
		return
	}
	if over := len(c.entries) - size; over > 0 {
		clear(c.entries[:over])
		c.entries = c.entries[over:]
	}
}

func (b *localBackend) publish(ctx context.Context, ch string, data []byte, headers map[string]string) (Position, error) {
	if err := ctx.Err(); err != nil {
		return Position{}, context.Cause(ctx)
	}
	now := b.h.cfg.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.channelLocked(ch, now)
	b.trimLocked(c, now)
	c.offset++
	e := &event{kind: Publication, channel: ch, data: slices.Clone(data), pos: Position{Epoch: c.epoch, Offset: c.offset}, headers: headers}
	if b.h.cfg.historySize > 0 {
		if len(c.entries) == cap(c.entries) && len(c.entries) >= b.h.cfg.historySize {
			// Reallocate instead of growing without bound behind the slice.
			c.entries = append(make([]localEntry, 0, b.h.cfg.historySize+1), c.entries...)
		}
		c.entries = append(c.entries, localEntry{e: e, at: now})
		b.trimLocked(c, now)
	}
	b.h.onLive(e)
	return e.pos, nil
}

func (b *localBackend) position(ctx context.Context, ch string) (Position, error) {
	now := b.h.cfg.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.channelLocked(ch, now)
	return Position{Epoch: c.epoch, Offset: c.offset}, nil
}

func (b *localBackend) history(ctx context.Context, ch string, since Position, limit int, rotate bool) ([]*event, Position, error) {
	now := b.h.cfg.now()
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.channelLocked(ch, now)
	b.trimLocked(c, now)
	top := Position{Epoch: c.epoch, Offset: c.offset}
	if since.Epoch != c.epoch || since.Offset > c.offset {
		return nil, top, ErrResync
	}
	n := c.offset - since.Offset
	if n == 0 {
		return nil, top, nil
	}
	if n > uint64(limit) || n > uint64(len(c.entries)) {
		return nil, top, ErrResync
	}
	out := make([]*event, 0, n)
	for _, en := range c.entries[len(c.entries)-int(n):] {
		out = append(out, en.e)
	}
	return out, top, nil
}

func (b *localBackend) watch(ctx context.Context, ch string) error { return nil }
func (b *localBackend) unwatch(ch string)                          {}

func (b *localBackend) join(ctx context.Context, ch string, m Member) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	ms := b.members[ch]
	if ms == nil {
		ms = map[string]Member{}
		b.members[ch] = ms
	}
	ms[m.ClientID] = m
	b.h.onPresence(&event{kind: Join, channel: ch, member: m})
	return nil
}

func (b *localBackend) leave(ctx context.Context, ch string, m Member) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	ms := b.members[ch]
	if _, ok := ms[m.ClientID]; !ok {
		return nil
	}
	delete(ms, m.ClientID)
	if len(ms) == 0 {
		delete(b.members, ch)
	}
	b.h.onPresence(&event{kind: Leave, channel: ch, member: m})
	return nil
}

func (b *localBackend) presence(ctx context.Context, ch string) ([]Member, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Member, 0, len(b.members[ch]))
	for _, m := range b.members[ch] {
		out = append(out, m)
	}
	sortMembers(out)
	return out, nil
}

func (b *localBackend) ready(ctx context.Context) error { return nil }

func (b *localBackend) close(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch, ms := range b.members {
		for _, m := range ms {
			b.h.onPresence(&event{kind: Leave, channel: ch, member: m})
		}
	}
	clear(b.members)
	return nil
}

// sortMembers orders members by node, then client ID.
func sortMembers(ms []Member) {
	slices.SortFunc(ms, func(a, b Member) int {
		if c := strings.Compare(a.Node, b.Node); c != 0 {
			return c
		}
		return strings.Compare(a.ClientID, b.ClientID)
	})
}
