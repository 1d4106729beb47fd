package broadcast

import (
	"context"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// backend is what a Hub needs from its transport: Redis (redisBackend) or
// this process (localBackend). Live messages and presence events come back
// through the Hub's onLive, onPresence and onResubscribed.
type backend interface {
	// publish appends data and its headers (nil: none) to ch's history and
	// sends them to every Hub watching ch.
	publish(ctx context.Context, ch string, data []byte, headers map[string]string) (Position, error)
	// position returns ch's current position, starting its epoch if it has
	// none.
	position(ctx context.Context, ch string) (Position, error)
	// history returns the entries of ch after since (at most limit) and
	// ch's current position, or ErrResync (with the current position) when
	// the history does not cover them. With rotate, a history behind since
	// (writes lost by Redis) starts a new epoch.
	history(ctx context.Context, ch string, since Position, limit int, rotate bool) ([]*event, Position, error)
	// watch returns once the live messages of ch reach the Hub; unwatch
	// stops them. Calls for one channel are made in order, under Hub.mu.
	watch(ctx context.Context, ch string) error
	unwatch(ch string)
	// join and leave add and remove a member of ch's presence and publish
	// the event; presence lists ch's members on live Hubs.
	join(ctx context.Context, ch string, m Member) error
	leave(ctx context.Context, ch string, m Member) error
	presence(ctx context.Context, ch string) ([]Member, error)
	// ready returns nil when cross-Hub delivery works now.
	ready(ctx context.Context) error
	// close stops the backend's goroutines and removes this Hub's presence.
	close(ctx context.Context) error
}

// kindResync is an internal event kind: the sink missed messages it cannot
// get back and must resync; the event's pos is the new position.
const kindResync Kind = 100

// event is one message on its way to sinks. It is shared by every sink and
// never modified after it is made, except for its lazily built frames.
type event struct {
	kind    Kind
	channel string
	data    []byte
	pos     Position
	member  Member
	headers map[string]string // the publisher's (Hooks.OnPublish), nil when none
	reason  ResyncReason      // of a kindResync event

	wsOnce sync.Once
	ws     []byte // the WebSocket frame, built once for all connections
}

// size is what the event counts against a buffer's byte bound.
func (e *event) size() int { return len(e.data) + len(e.channel) + len(e.member.Info) + 64 }

// sink receives a channel's events in order. deliver is called with the
// channel's lock held and must not block.
type sink interface {
	deliver(e *event)
}

// follow is the Hub's record of one sink on one channel. Protected by the
// channel's mu.
type follow struct {
	pos     Position // last position handed to the sink
	events  bool     // wants Join and Leave
	holding bool     // catching up from history: live events wait in held
	held    []*event
}

// Hub fans messages out to the subscribers of this process and, through
// Redis, to those of every other Hub sharing the Redis and the prefix. Build
// it with New (Redis) or NewLocal (one process). A Hub is safe for
// concurrent use by multiple goroutines.
type Hub struct {
	cfg     config
	be      backend
	started time.Time

	mu       sync.Mutex // protects channels, conns and closed
	channels map[string]*channel
	conns    map[closer]struct{}
	closed   bool

	ctx    context.Context // cancelled by Close; for the Hub's own goroutines
	cancel context.CancelFunc
	goMu   sync.Mutex     // protects goDone and wg.Add; a leaf lock
	goDone bool           // Close is waiting: start no more goroutines
	wg     sync.WaitGroup // every goroutine the Hub starts

	tickOnce sync.Once     // starts the connections' clock (startTicker)
	slots    atomic.Uint32 // hands out the connections' tick slots

	stats struct {
		published, delivered, recovered, resyncs, slow, gaps, reconnects atomic.Uint64
		subscriptions                                                    atomic.Int64
	}
}

// closer is an open connection served by a Hub's Handler.
type closer interface{ closeHub() }

// New returns a Hub on client, which may be a single-node, Sentinel
// (failover) or Cluster client. Hubs that share the Redis and WithPrefix see
// each other's messages and presence. On a Cluster client each channel's
// keys and pub/sub channel share the channel name as hash tag and messages
// go through sharded pub/sub (SPUBLISH, SSUBSCRIBE), one subscription
// connection per master with local subscribers.
func New(client redis.UniversalClient, opts ...Option) (*Hub, error) {
	if client == nil {
		return nil, invalidf("client must not be nil")
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	h := newHub(cfg)
	be, err := newRedisBackend(h, client)
	if err != nil {
		h.cancel()
		return nil, err
	}
	h.be = be
	return h, nil
}

// NewLocal returns a Hub for one process: the same contract as New, with
// history and presence in memory. Separate NewLocal Hubs do not see each
// other.
func NewLocal(opts ...Option) (*Hub, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	h := newHub(cfg)
	h.be = newLocalBackend(h)
	return h, nil
}

func newHub(cfg config) *Hub {
	h := &Hub{cfg: cfg, started: time.Now(), channels: map[string]*channel{}, conns: map[closer]struct{}{}}
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h
}

// NodeID returns the Hub's node ID (WithNodeID, or the random default).
func (h *Hub) NodeID() string { return h.cfg.nodeID }

// Publish sends data, one JSON value of at most WithMaxMessageSize bytes, to
// every subscriber of channel on every Hub, and returns its position. With
// history on it is kept for Since. An error means the message may not have
// been sent (never a silent drop).
func (h *Hub) Publish(ctx context.Context, channel string, data []byte) (Position, error) {
	if err := checkChannel(channel); err != nil {
		return Position{}, err
	}
	if err := h.cfg.checkData(data); err != nil {
		return Position{}, err
	}
	if h.isClosed() {
		return Position{}, ErrClosed
	}
	hk := &h.cfg.hooks
	if hk.OnPublish == nil && hk.OnPublished == nil {
		return h.publish(ctx, channel, data, nil)
	}
	var headers map[string]string
	if hk.OnPublish != nil {
		headers = make(map[string]string, 2)
		ctx = hk.OnPublish(ctx, channel, headers)
		if len(headers) == 0 {
			headers = nil
		}
	}
	start := time.Now()
	pos, err := h.publish(ctx, channel, data, headers)
	if hk.OnPublished != nil {
		hk.OnPublished(ctx, channel, len(data), pos, time.Since(start), err)
	}
	return pos, err
}

func (h *Hub) publish(ctx context.Context, channel string, data []byte, headers map[string]string) (Position, error) {
	pos, err := h.be.publish(ctx, channel, data, headers)
	if err != nil {
		return Position{}, err
	}
	h.stats.published.Add(1)
	return pos, nil
}

// Subscribe starts a subscription to channel. It returns once live
// messages of the channel reach this Hub, so everything published after
// Subscribe returns is delivered; with Since, everything after the given
// position too.
func (h *Hub) Subscribe(ctx context.Context, channel string, opts ...SubscribeOption) (*Subscription, error) {
	var sc subConfig
	for _, o := range opts {
		if o != nil {
			o(&sc)
		}
	}
	if err := checkChannel(channel); err != nil {
		return nil, err
	}
	if sc.member != nil {
		if err := h.cfg.checkMember(sc.member); err != nil {
			return nil, err
		}
	}
	s := newSubscription(h, channel)
	recovered, pos, err := h.attach(ctx, channel, s, sc)
	if err != nil {
		return nil, err
	}
	s.start(pos, recovered, sc.member)
	return s, nil
}

// attach adds sink to channel, recovering from sc.since if asked, and joins
// sc.member. It returns whether since was honoured and the position the sink
// starts after.
func (h *Hub) attach(ctx context.Context, name string, sk sink, sc subConfig) (recovered bool, pos Position, err error) {
	ch, err := h.acquire(ctx, name)
	if err != nil {
		return false, Position{}, err
	}
	var n int
	recovered, pos, n, err = ch.add(ctx, sk, sc)
	if err == nil && sc.member != nil {
		err = ch.join(ctx, *sc.member)
	}
	if err != nil {
		ch.remove(sk)
		h.release(ch)
		return false, Position{}, err
	}
	h.stats.subscriptions.Add(1)
	if recovered {
		h.stats.recovered.Add(1)
		if f := h.cfg.hooks.OnRecover; f != nil {
			f(name, n)
		}
	}
	return recovered, pos, nil
}

// detach removes sink from channel and leaves member (if not nil).
func (h *Hub) detach(ctx context.Context, name string, sk sink, member *Member) {
	h.mu.Lock()
	ch := h.channels[name]
	h.mu.Unlock()
	if ch == nil {
		return
	}
	if ch.remove(sk) {
		h.stats.subscriptions.Add(-1)
		if member != nil {
			ch.leave(ctx, *member)
		}
		h.release(ch)
	}
}

// Presence returns the members of channel on every live Hub, sorted by
// node and client ID. Members of a Hub that stopped renewing its lease
// (WithPresenceTTL) are left out.
func (h *Hub) Presence(ctx context.Context, channel string) ([]Member, error) {
	if err := checkChannel(channel); err != nil {
		return nil, err
	}
	if h.isClosed() {
		return nil, ErrClosed
	}
	return h.be.presence(ctx, channel)
}

// Ready returns nil only when cross-Hub delivery works now: on Redis, a
// probe published through every pub/sub connection of the Hub came back on
// it. It fails while a subscription connection is broken and succeeds again
// once it is restored. Without a deadline in ctx it waits at most 5s.
func (h *Hub) Ready(ctx context.Context) error {
	if h.isClosed() {
		return ErrClosed
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	return h.be.ready(ctx)
}

// Stats returns the Hub's counters.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	conns, chans := len(h.conns), len(h.channels)
	h.mu.Unlock()
	return Stats{
		Connections:      conns,
		Subscriptions:    int(h.stats.subscriptions.Load()),
		Channels:         chans,
		Published:        h.stats.published.Load(),
		Delivered:        h.stats.delivered.Load(),
		Recovered:        h.stats.recovered.Load(),
		Resyncs:          h.stats.resyncs.Load(),
		SlowDisconnects:  h.stats.slow.Load(),
		GapRecoveries:    h.stats.gaps.Load(),
		PubSubReconnects: h.stats.reconnects.Load(),
	}
}

// Close closes every connection and subscription of the Hub (their Next
// returns ErrClosed), removes its members from presence at once (Leave
// events are published), and stops its goroutines. Closing twice is a
// no-op.
func (h *Hub) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	conns := make([]closer, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	chans := slices.Collect(maps.Values(h.channels))
	h.mu.Unlock()
	for _, c := range conns {
		c.closeHub()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, ch := range chans {
		ch.closeAll(ctx)
	}
	h.cancel()
	err := h.be.close(ctx)
	// The backend removed the members: a Subscription closed after this
	// leaves nothing more.
	for _, ch := range chans {
		for _, m := range ch.takeMembers() {
			if f := h.cfg.hooks.OnLeave; f != nil {
				f(ch.name, m)
			}
		}
	}
	h.goMu.Lock()
	h.goDone = true
	h.goMu.Unlock()
	h.wg.Wait()
	return err
}

func (h *Hub) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// addConn registers an open connection; false when the Hub is closed.
func (h *Hub) addConn(c closer) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.conns[c] = struct{}{}
	return true
}

func (h *Hub) removeConn(c closer) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
}

// channelList returns the channels with local subscribers.
func (h *Hub) channelList() []*channel {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Collect(maps.Values(h.channels))
}

// acquire returns channel name with a reference taken, started (watched,
// position known).
func (h *Hub) acquire(ctx context.Context, name string) (*channel, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	ch := h.channels[name]
	first := ch == nil
	if first {
		ch = newChannel(h, name)
		h.channels[name] = ch
	}
	ch.refs++
	h.mu.Unlock()
	if first {
		if !h.goTracked(func() { ch.start(ctx) }) {
			ch.startErr = ErrClosed
			close(ch.ready)
		}
	}
	select {
	case <-ch.ready:
	case <-ctx.Done():
		h.release(ch)
		return nil, context.Cause(ctx)
	}
	if ch.startErr != nil {
		h.release(ch)
		return nil, ch.startErr
	}
	return ch, nil
}

// release drops a reference to ch; the last one stops watching it.
func (h *Hub) release(ch *channel) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch.refs--
	if ch.refs > 0 {
		return
	}
	if h.channels[ch.name] == ch {
		delete(h.channels, ch.name)
	}
	ch.mu.Lock()
	ch.removed = true
	ch.mu.Unlock()
	h.be.unwatch(ch.name)
}

// lookup returns the started channel name, or nil.
func (h *Hub) lookup(name string) *channel {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.channels[name]
}

// onLive is called by the backend, in channel order, for each live
// publication.
func (h *Hub) onLive(e *event) {
	if ch := h.lookup(e.channel); ch != nil {
		ch.live(e)
	}
}

// onPresence is called by the backend for each Join and Leave event.
func (h *Hub) onPresence(e *event) {
	if ch := h.lookup(e.channel); ch != nil {
		ch.presenceEvent(e)
	}
}

// onResubscribed is called by the backend when the live messages of
// channel name resume after an interruption (a pub/sub reconnect): what was
// published meanwhile is read from the history.
func (h *Hub) onResubscribed(name string) {
	if ch := h.lookup(name); ch != nil {
		ch.resubscribed()
	}
}

// goTracked runs f on a goroutine the Hub waits for in Close; false when
// the Hub is done.
func (h *Hub) goTracked(f func()) bool {
	h.goMu.Lock()
	defer h.goMu.Unlock()
	if h.goDone {
		return false
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		f()
	}()
	return true
}

// sleep waits d or until the Hub closes; false when it closed.
func (h *Hub) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-h.ctx.Done():
		return false
	}
}
