package broadcast

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Presence on Redis: a Hub's members of channel c are fields
// "<node>|<client>" of the hash p{c}:pr, listed only while the Hub's lease
// p:node:<node> lives. The lease is set for 3/4 of WithPresenceTTL and
// renewed every 1/4, and every Hub checks the other Hubs' leases every 1/4:
// a Hub that dies is noticed within the TTL by a live one, which removes
// its members and publishes their Leave events (p:nodes lists the Hubs;
// removing a Hub from it is the claim that makes one Hub do the clean-up).
type presenceState struct {
	mu     sync.Mutex     // protects counts
	counts map[string]int // channel -> this Hub's members there
	// leased: the lease loop has set the lease once. Until then a join
	// sets the lease itself, so that a member who joins a Hub just
	// started is listed at once (Presence lists only members of live
	// leases).
	leased atomic.Bool
}

func newPresenceState() *presenceState { return &presenceState{counts: map[string]int{}} }

func (b *redisBackend) leaseKey(node string) string { return b.h.cfg.prefix + "node:" + node }
func (b *redisBackend) nodeChansKey(node string) string {
	return b.h.cfg.prefix + "node:" + node + ":c"
}
func (b *redisBackend) nodesKey() string             { return b.h.cfg.prefix + "nodes" }
func (b *redisBackend) presenceKey(ch string) string { return b.key(ch, "pr") }

func memberField(m Member) string { return m.Node + "|" + m.ClientID }

func (b *redisBackend) join(ctx context.Context, ch string, m Member) error {
	js, err := json.Marshal(m)
	if err != nil {
		return err
	}
	b.pres.mu.Lock()
	b.pres.counts[ch]++
	b.pres.mu.Unlock()
	_, err = b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		b.joinCmds(ctx, p, ch, m, js)
		return nil
	})
	if err != nil {
		b.pres.mu.Lock()
		if b.pres.counts[ch]--; b.pres.counts[ch] <= 0 {
			delete(b.pres.counts, ch)
		}
		b.pres.mu.Unlock()
		return fmt.Errorf("broadcast: presence join on %q: %w", ch, err)
	}
	return nil
}

// joinCmds queues the commands of a join: the member, the Hub's channel
// set, the Join event.
func (b *redisBackend) joinCmds(ctx context.Context, p redis.Pipeliner, ch string, m Member, js []byte) {
	if !b.pres.leased.Load() {
		// Before the lease loop's first renewal: the lease and the Hub's
		// entry in the list of Hubs (which the sweep of dead Hubs reads),
		// as renew does.
		p.Set(ctx, b.leaseKey(b.h.cfg.nodeID), "1", b.leaseTTL())
		p.SAdd(ctx, b.nodesKey(), b.h.cfg.nodeID)
	}
	p.HSet(ctx, b.presenceKey(ch), memberField(m), js)
	p.SAdd(ctx, b.nodeChansKey(m.Node), ch)
	b.publishFrame(ctx, p, b.pubsubChannel(ch), "j"+string(js))
}

func (b *redisBackend) leave(ctx context.Context, ch string, m Member) error {
	js, err := json.Marshal(m)
	if err != nil {
		return err
	}
	b.pres.mu.Lock()
	b.pres.counts[ch]--
	last := b.pres.counts[ch] <= 0
	if last {
		delete(b.pres.counts, ch)
	}
	b.pres.mu.Unlock()
	_, err = b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HDel(ctx, b.presenceKey(ch), memberField(m))
		if last {
			p.SRem(ctx, b.nodeChansKey(m.Node), ch)
		}
		b.publishFrame(ctx, p, b.pubsubChannel(ch), "l"+string(js))
		return nil
	})
	if err != nil {
		return fmt.Errorf("broadcast: presence leave on %q: %w", ch, err)
	}
	return nil
}

func (b *redisBackend) publishFrame(ctx context.Context, p redis.Pipeliner, channel, frame string) {
	if b.cluster != nil {
		p.SPublish(ctx, channel, frame)
	} else {
		p.Publish(ctx, channel, frame)
	}
}

func (b *redisBackend) presence(ctx context.Context, ch string) ([]Member, error) {
	all, err := b.client.HGetAll(ctx, b.presenceKey(ch)).Result()
	if err != nil {
		return nil, fmt.Errorf("broadcast: presence of %q: %w", ch, err)
	}
	members := make([]Member, 0, len(all))
	nodes := map[string]bool{}
	for _, v := range all {
		var m Member
		if json.Unmarshal([]byte(v), &m) != nil || m.ClientID == "" {
			continue
		}
		members = append(members, m)
		nodes[m.Node] = false
	}
	if len(nodes) > 0 {
		cmds := map[string]*redis.IntCmd{}
		_, err = b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for n := range nodes {
				cmds[n] = p.Exists(ctx, b.leaseKey(n))
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("broadcast: presence of %q: leases: %w", ch, err)
		}
		for n, c := range cmds {
			nodes[n] = c.Val() == 1
		}
	}
	live := members[:0]
	for _, m := range members {
		if nodes[m.Node] {
			live = append(live, m)
		}
	}
	sortMembers(live)
	return live, nil
}

// startPresence starts the lease loop.
func (b *redisBackend) startPresence() {
	b.h.goTracked(b.leaseLoop)
}

// leaseLoop renews this Hub's lease and sweeps dead Hubs until the Hub
// closes.
func (b *redisBackend) leaseLoop() {
	ttl := b.h.cfg.presenceTTL
	every := ttl / 4
	first := true
	for {
		ctx, cancel := context.WithTimeout(b.h.ctx, every)
		lost, err := b.renew(ctx)
		if err == nil {
			b.pres.leased.Store(true)
			if first {
				first = false
			} else if lost {
				b.h.cfg.logger.Warn("broadcast: presence lease had expired; members joined again", "node", b.h.cfg.nodeID)
				b.rejoin(ctx)
			}
			b.sweep(ctx)
			b.reportSubscribers(ctx) // inspect.go
		} else if b.h.ctx.Err() == nil {
			b.h.cfg.logger.Debug("broadcast: presence lease renewal failed", "err", err)
		}
		cancel()
		if !b.h.sleep(every) {
			return
		}
	}
}

// leaseTTL is the lifetime of this Hub's lease, renewed every quarter of
// WithPresenceTTL.
func (b *redisBackend) leaseTTL() time.Duration { return b.h.cfg.presenceTTL * 3 / 4 }

// renew sets the lease; lost reports that it had expired.
func (b *redisBackend) renew(ctx context.Context) (lost bool, err error) {
	err = b.client.SetArgs(ctx, b.leaseKey(b.h.cfg.nodeID), "1", redis.SetArgs{TTL: b.leaseTTL(), Get: true}).Err()
	if errors.Is(err, redis.Nil) {
		lost, err = true, nil
		err = b.client.SAdd(ctx, b.nodesKey(), b.h.cfg.nodeID).Err()
	}
	return lost, err
}

// rejoin adds every member of this Hub again (after a lost lease another
// Hub may have removed them and published their Leave).
func (b *redisBackend) rejoin(ctx context.Context) {
	chans := b.h.channelList()
	for _, ch := range chans {
		for _, m := range ch.memberList() {
			js, _ := json.Marshal(m)
			_, err := b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
				b.joinCmds(ctx, p, ch.name, m, js)
				return nil
			})
			if err != nil {
				return
			}
		}
	}
}

// sweep removes the members of Hubs whose lease expired.
func (b *redisBackend) sweep(ctx context.Context) {
	nodes, err := b.client.SMembers(ctx, b.nodesKey()).Result()
	if err != nil {
		return
	}
	cmds := map[string]*redis.IntCmd{}
	_, err = b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, n := range nodes {
			if n != b.h.cfg.nodeID {
				cmds[n] = p.Exists(ctx, b.leaseKey(n))
			}
		}
		return nil
	})
	if err != nil {
		return
	}
	for n, c := range cmds {
		if c.Val() != 0 {
			continue
		}
		// The Hub that removes n from the set cleans up after it.
		if removed, err := b.client.SRem(ctx, b.nodesKey(), n).Result(); err != nil || removed == 0 {
			continue
		}
		b.h.cfg.logger.Info("broadcast: a Hub's presence lease expired; removing its members", "node", n)
		b.removeNode(ctx, n)
	}
}

// removeNode removes node's members from presence and publishes their Leave.
func (b *redisBackend) removeNode(ctx context.Context, node string) {
	chans, err := b.client.SMembers(ctx, b.nodeChansKey(node)).Result()
	if err != nil {
		return
	}
	for _, ch := range chans {
		all, err := b.client.HGetAll(ctx, b.presenceKey(ch)).Result()
		if err != nil {
			return
		}
		_, err = b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for f, v := range all {
				if strings.HasPrefix(f, node+"|") {
					p.HDel(ctx, b.presenceKey(ch), f)
					b.publishFrame(ctx, p, b.pubsubChannel(ch), "l"+v)
				}
			}
			return nil
		})
		if err != nil {
			return
		}
	}
	b.client.Del(ctx, b.nodeChansKey(node))
}

// closePresence removes this Hub's members at once (publishing their
// Leave) and its lease.
func (b *redisBackend) closePresence(ctx context.Context) error {
	chans := b.h.channelList()
	node := b.h.cfg.nodeID
	_, err := b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, ch := range chans {
			for _, m := range ch.memberList() {
				js, _ := json.Marshal(m)
				p.HDel(ctx, b.presenceKey(ch.name), memberField(m))
				b.publishFrame(ctx, p, b.pubsubChannel(ch.name), "l"+string(js))
			}
		}
		p.Del(ctx, b.nodeChansKey(node))
		p.SRem(ctx, b.nodesKey(), node)
		p.Del(ctx, b.leaseKey(node))
		return nil
	})
	if err != nil {
		return fmt.Errorf("broadcast: removing presence on close: %w", err)
	}
	return nil
}
