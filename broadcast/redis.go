package broadcast

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/internal/coalesce"
)

var (
	//go:embed scripts/publish.lua
	publishLua    string
	publishScript = redis.NewScript(publishLua)
	//go:embed scripts/position.lua
	positionLua    string
	positionScript = redis.NewScript(positionLua)
	//go:embed scripts/history.lua
	historyLua    string
	historyScript = redis.NewScript(historyLua)
)

// redisBackend carries a Hub's messages through Redis.
//
// Keys and pub/sub channels, under the WithPrefix prefix p, for channel c:
//
//	p{c}:m          hash: e = epoch, o = last offset (expires WithPositionTTL after the last message)
//	p{c}:h          stream: the history, entry ID "0-<offset>", field d (expires with WithHistory's ttl)
//	p{c}:pr         hash: presence, field "<node>|<client>" = member JSON
//	p{c}:p          pub/sub channel of c's messages and presence events
//	p{c}:q:<node>   pub/sub channel of a Hub's Ready probes (Cluster: one per shard)
//	p:node:<node>   a Hub's liveness lease (WithPresenceTTL)
//	p:node:<node>:c set: the channels where the Hub has members
//	p:nodes         set: the Hubs that may have members
//
// On a Cluster client the channel name is the hash tag: every key of a
// channel and its pub/sub channel are in one slot, and pub/sub is sharded.
type redisBackend struct {
	h       *Hub
	client  redis.UniversalClient
	cluster *redis.ClusterClient // nil unless Cluster
	pub     *coalesce.Group[*coalesce.Script]

	mu     sync.Mutex             // protects conns, routes and acked
	conns  map[string]*pubsubConn // by master address ("" for a single node)
	routes map[string]*pubsubConn // channel -> the connection watching it
	acked  map[string]ackedPos    // channel -> last position Publish acknowledged

	pres *presenceState
}

func newRedisBackend(h *Hub, client redis.UniversalClient) (*redisBackend, error) {
	b := &redisBackend{
		h:      h,
		client: client,
		pub:    coalesce.NewScripts(client, 2, 500),
		conns:  map[string]*pubsubConn{},
		routes: map[string]*pubsubConn{},
		acked:  map[string]ackedPos{},
	}
	b.cluster, _ = client.(*redis.ClusterClient)
	b.pres = newPresenceState()
	// The first connection carries the probe of a Hub with no channel.
	pc := newPubsubConn(b, b.probeChannel(""))
	b.conns[""] = pc
	if b.cluster != nil {
		pc.addr = "" // a Cluster's probe connection: wherever the probe's slot lives
	}
	pc.startLoops()
	b.startPresence()
	return b, nil
}

func (b *redisBackend) key(ch, suffix string) string {
	return b.h.cfg.prefix + "{" + ch + "}:" + suffix
}

func (b *redisBackend) pubsubChannel(ch string) string { return b.key(ch, "p") }

// probeChannel is the Hub's probe channel in ch's slot ("" : any slot).
func (b *redisBackend) probeChannel(ch string) string {
	if ch == "" {
		return b.h.cfg.prefix + "{q:" + b.h.cfg.nodeID + "}:q"
	}
	return b.key(ch, "q:"+b.h.cfg.nodeID)
}

func (b *redisBackend) sharded() string {
	if b.cluster != nil {
		return "1"
	}
	return "0"
}

func (b *redisBackend) publish(ctx context.Context, ch string, data []byte, headers map[string]string) (Position, error) {
	cfg := &b.h.cfg
	b.mu.Lock()
	known := b.acked[ch].pos
	b.mu.Unlock()
	var hdr any = "" // no allocation without headers
	if len(headers) > 0 {
		hdr, _ = json.Marshal(headers) // a map[string]string always marshals
	}
	s := &coalesce.Script{
		Script: publishScript,
		Keys:   []string{b.key(ch, "m"), b.key(ch, "h")},
		Args: []any{b.pubsubChannel(ch), data, cfg.historySize, cfg.historyTTL.Milliseconds(),
			cfg.positionTTL.Milliseconds(), newEpoch(), b.sharded(), known.Epoch, known.Offset, hdr},
	}
	if err := b.pub.Do(ctx, s); err != nil {
		return Position{}, err
	}
	if s.Err != nil {
		return Position{}, fmt.Errorf("broadcast: publish on %q: %w", ch, s.Err)
	}
	pos, _, err := parsePositionReply(s.Val)
	if err == nil {
		b.noteAcked(ch, pos)
	}
	return pos, err
}

// ackedPos is a position Publish acknowledged, and when.
type ackedPos struct {
	pos Position
	at  time.Time
}

// maxAcked bounds the acknowledged positions a Hub remembers.
const maxAcked = 10000

// noteAcked remembers the last acknowledged position of ch, for
// checkAcked.
func (b *redisBackend) noteAcked(ch string, pos Position) {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.acked) >= maxAcked {
		for k, a := range b.acked {
			if now.Sub(a.at) > 30*time.Second {
				delete(b.acked, k)
			}
		}
		if len(b.acked) >= maxAcked {
			return
		}
	}
	// A new epoch replaces the old one: positions of two epochs do not
	// compare, and a rotation means the new one is current.
	if a, ok := b.acked[ch]; !ok || a.pos.Epoch != pos.Epoch || a.pos.Offset < pos.Offset {
		b.acked[ch] = ackedPos{pos, now}
	}
}

// checkAcked runs after a pub/sub reconnect (a failover kills pub/sub
// connections): a channel whose history is now behind a position Publish
// acknowledged lost messages in the failover, so it starts a new epoch and
// every subscriber resyncs, instead of the lost offsets being reused by new
// messages unnoticed.
func (b *redisBackend) checkAcked() {
	b.mu.Lock()
	acked := maps.Clone(b.acked)
	b.mu.Unlock()
	for ch, a := range acked {
		ctx, cancel := context.WithTimeout(b.h.ctx, 5*time.Second)
		_, _, err := b.history(ctx, ch, a.pos, 0, true)
		cancel()
		if err != nil && !errors.Is(err, ErrResync) {
			return // Redis still away: the next reconnect checks again
		}
	}
}

func (b *redisBackend) position(ctx context.Context, ch string) (Position, error) {
	v, err := positionScript.Run(ctx, b.client, []string{b.key(ch, "m"), b.key(ch, "h")},
		newEpoch(), b.h.cfg.positionTTL.Milliseconds()).Result()
	if err != nil {
		return Position{}, fmt.Errorf("broadcast: position of %q: %w", ch, err)
	}
	pos, _, err := parsePositionReply(v)
	return pos, err
}

func (b *redisBackend) history(ctx context.Context, ch string, since Position, limit int, rotate bool) ([]*event, Position, error) {
	rot := "0"
	if rotate {
		rot = "1"
	}
	v, err := historyScript.Run(ctx, b.client, []string{b.key(ch, "m"), b.key(ch, "h")},
		since.Epoch, since.Offset, limit, rot, newEpoch(), b.h.cfg.positionTTL.Milliseconds()).Result()
	if err != nil {
		return nil, Position{}, fmt.Errorf("broadcast: history of %q: %w", ch, err)
	}
	top, rest, err := parsePositionReply(v)
	if err != nil {
		return nil, Position{}, err
	}
	if len(rest) == 0 {
		return nil, Position{}, fmt.Errorf("broadcast: history of %q: short reply", ch)
	}
	if st, _ := rest[0].(int64); st != 1 {
		return nil, top, ErrResync
	}
	rest = rest[1:]
	out := make([]*event, 0, len(rest)/3)
	for i := 0; i+2 < len(rest); i += 3 {
		id, _ := rest[i].(string)
		data, _ := rest[i+1].(string)
		hdr, _ := rest[i+2].(string)
		off, ok := strings.CutPrefix(id, "0-")
		n, err := strconv.ParseUint(off, 10, 64)
		if !ok || err != nil {
			return nil, Position{}, fmt.Errorf("broadcast: history of %q: bad entry ID %q", ch, id)
		}
		headers, _ := decodeHeaders(hdr) // unreadable headers are dropped, the message kept
		out = append(out, &event{kind: Publication, channel: ch, data: []byte(data), pos: Position{Epoch: top.Epoch, Offset: n}, headers: headers})
	}
	return out, top, nil
}

// decodeHeaders reads the JSON object of a message's headers ("" : none).
func decodeHeaders(s string) (map[string]string, bool) {
	if s == "" {
		return nil, true
	}
	var h map[string]string
	if err := json.Unmarshal([]byte(s), &h); err != nil {
		return nil, false
	}
	if len(h) == 0 {
		return nil, true
	}
	return h, true
}

// parsePositionReply reads {epoch, offset, ...} and returns the rest.
func parsePositionReply(v any) (Position, []any, error) {
	arr, ok := v.([]any)
	if !ok || len(arr) < 2 {
		return Position{}, nil, fmt.Errorf("broadcast: unexpected script reply %v", v)
	}
	epoch, ok1 := arr[0].(string)
	off, ok2 := arr[1].(int64)
	if !ok1 || !ok2 || off < 0 {
		return Position{}, nil, fmt.Errorf("broadcast: unexpected script reply %v", v)
	}
	return Position{Epoch: epoch, Offset: uint64(off)}, arr[2:], nil
}

// newEpoch returns a fresh epoch: 10 hex digits.
func newEpoch() string { return randomID(5) }

func (b *redisBackend) watch(ctx context.Context, ch string) error {
	return b.watchOn(ctx, ch, false)
}

// watchOn watches ch; with verify (after a failover) the master the
// Cluster client names for ch is asked whether it is one still.
func (b *redisBackend) watchOn(ctx context.Context, ch string, verify bool) error {
	for {
		pc, err := b.connFor(ctx, ch, verify)
		if err != nil {
			return err
		}
		st, ok := pc.watch(b.pubsubChannel(ch), ch)
		if !ok {
			return fmt.Errorf("broadcast: subscribing to %q: the pub/sub connection closed", ch)
		}
		b.mu.Lock()
		b.routes[ch] = pc
		b.mu.Unlock()
		select {
		case <-st.ready:
		case <-ctx.Done():
			return fmt.Errorf("broadcast: subscribing to %q: %w", ch, context.Cause(ctx))
		}
		if !pc.isDropped(st) {
			return nil
		}
		verify = true // the connection was dropped before confirming: route again
	}
}

func (b *redisBackend) unwatch(ch string) {
	b.mu.Lock()
	pc := b.routes[ch]
	delete(b.routes, ch)
	b.mu.Unlock()
	if pc != nil {
		pc.unwatch(b.pubsubChannel(ch))
	}
}

// connFor returns the pub/sub connection for ch: the one connection of a
// single node, or on a Cluster the one of the master that serves ch's slot.
func (b *redisBackend) connFor(ctx context.Context, ch string, verify bool) (*pubsubConn, error) {
	if b.cluster == nil {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.conns[""], nil
	}
	node, err := b.cluster.MasterForKey(ctx, b.pubsubChannel(ch))
	if err != nil {
		return nil, fmt.Errorf("broadcast: routing %q: %w", ch, err)
	}
	if verify {
		// Right after a failover the client's slot map may still name the
		// old master, now a replica that no longer gets the shard's
		// messages: refresh the map and let the caller retry.
		role, err := node.Do(ctx, "ROLE").Slice()
		if err != nil || len(role) == 0 || role[0] != "master" {
			b.cluster.ReloadState(ctx)
			return nil, fmt.Errorf("broadcast: routing %q: %s is not a master (yet)", ch, node.Options().Addr)
		}
	}
	addr := node.Options().Addr
	b.mu.Lock()
	defer b.mu.Unlock()
	if pc := b.conns[addr]; pc != nil {
		return pc, nil
	}
	pc := newPubsubConn(b, b.probeChannel(ch))
	pc.addr, pc.shard = addr, true
	b.conns[addr] = pc
	pc.startLoops()
	return pc, nil
}

// publishRaw sends a frame on a pub/sub channel.
func (b *redisBackend) publishRaw(ctx context.Context, channel, frame string) error {
	if b.cluster != nil {
		return b.client.SPublish(ctx, channel, frame).Err()
	}
	return b.client.Publish(ctx, channel, frame).Err()
}

// connList returns the pub/sub connections.
func (b *redisBackend) connList() []*pubsubConn {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Collect(maps.Values(b.conns))
}

func (b *redisBackend) ready(ctx context.Context) error {
	conns := b.connList()
	errs := make(chan error, len(conns))
	for _, pc := range conns {
		go func() { errs <- pc.probe(ctx) }()
	}
	var first error
	for range conns {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (b *redisBackend) close(ctx context.Context) error {
	err := b.closePresence(ctx)
	conns := b.connList()
	for _, pc := range conns {
		pc.close()
	}
	return err
}

// decodeFrame reads a pub/sub frame of channel ch (see scripts/publish.lua
// and presence.go). ok is false for a frame that is not ours or is
// malformed (it is dropped).
func decodeFrame(ch, payload string) (e *event, ok bool) {
	if payload == "" {
		return nil, false
	}
	switch payload[0] {
	case 'p', 'h':
		rest := payload[1:]
		i := strings.IndexByte(rest, ':')
		if i <= 0 {
			return nil, false
		}
		off, err := strconv.ParseUint(rest[:i], 10, 64)
		if err != nil || off == 0 {
			return nil, false
		}
		rest = rest[i+1:]
		j := strings.IndexByte(rest, ':')
		if j <= 0 {
			return nil, false
		}
		epoch := rest[:j]
		rest = rest[j+1:]
		var headers map[string]string
		if payload[0] == 'h' {
			k := strings.IndexByte(rest, ':')
			if k <= 0 {
				return nil, false
			}
			n, err := strconv.Atoi(rest[:k])
			if err != nil || n < 0 || n > len(rest)-k-1 {
				return nil, false
			}
			rest = rest[k+1:]
			if headers, ok = decodeHeaders(rest[:n]); !ok {
				return nil, false
			}
			rest = rest[n:]
		}
		data := []byte(rest)
		if !json.Valid(data) {
			return nil, false
		}
		return &event{kind: Publication, channel: ch, data: data, pos: Position{Epoch: epoch, Offset: off}, headers: headers}, true
	case 'j', 'l':
		var m Member
		if err := json.Unmarshal([]byte(payload[1:]), &m); err != nil || m.ClientID == "" {
			return nil, false
		}
		if len(m.Info) > 0 && !json.Valid(m.Info) {
			return nil, false
		}
		kind := Join
		if payload[0] == 'l' {
			kind = Leave
		}
		return &event{kind: kind, channel: ch, member: m}, true
	}
	return nil, false
}
