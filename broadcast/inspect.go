package broadcast

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Subscriber counts. Every Redis Hub writes, with each renewal of its
// presence lease (every WithPresenceTTL/4), how many subscribers each of
// its channels has in the hash p:node:<node>:subs (channel -> count; it
// lives as long as the lease), so that an Inspector in any process sees
// the channels of every replica.

func (b *redisBackend) subsKey(node string) string { return b.h.cfg.prefix + "node:" + node + ":subs" }

// reportSubscribers writes this Hub's subscriber counts per channel.
func (b *redisBackend) reportSubscribers(ctx context.Context) {
	counts := map[string]any{}
	for _, ch := range b.h.channelList() {
		ch.mu.Lock()
		n := len(ch.follows)
		ch.mu.Unlock()
		if n > 0 {
			counts[ch.name] = n
		}
	}
	key := b.subsKey(b.h.cfg.nodeID)
	_, err := b.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		if len(counts) > 0 {
			p.HSet(ctx, key, counts)
			p.PExpire(ctx, key, b.h.cfg.presenceTTL)
		}
		return nil
	})
	if err != nil && b.h.ctx.Err() == nil {
		b.h.cfg.logger.Debug("broadcast: writing subscriber counts failed", "err", err)
	}
}

// Inspector reads the channels of every Hub sharing a Redis and a prefix,
// for consoles and command-line tools: subscribers per channel and per
// replica, and presence. Hubs report their counts with each presence lease
// renewal, so a new subscriber shows within a quarter of WithPresenceTTL;
// a Hub that stopped or died disappears with its lease. It is safe for
// concurrent use.
type Inspector struct {
	client redis.UniversalClient
	prefix string
}

// NewInspector returns an inspector of the Hubs with the prefix set with
// [WithPrefix] (default "broadcast:"); other options are ignored.
func NewInspector(client redis.UniversalClient, opts ...Option) (*Inspector, error) {
	if client == nil {
		return nil, invalidf("client must not be nil")
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	return &Inspector{client: client, prefix: cfg.prefix}, nil
}

// Prefix returns the prefix the inspector reads.
func (in *Inspector) Prefix() string { return in.prefix }

// ChannelInfo is one channel with subscribers.
type ChannelInfo struct {
	// Name is the channel's name.
	Name string `json:"name"`
	// Subscribers counts its subscribers on every live Hub; ByNode splits
	// them by Hub (WithNodeID).
	Subscribers int            `json:"subscribers"`
	ByNode      map[string]int `json:"by_node"`
	// Present counts its presence members on live Hubs.
	Present int `json:"present"`
}

// NodeInfo is one live Hub.
type NodeInfo struct {
	// Node is its WithNodeID.
	Node string `json:"node"`
	// Channels and Subscribers count its channels with subscribers and
	// their subscribers.
	Channels    int `json:"channels"`
	Subscribers int `json:"subscribers"`
	// LeaseTTL is what is left of its presence lease.
	LeaseTTL time.Duration `json:"lease_ttl"`
}

// nodes returns the live Hubs with their leases' TTL and subscriber counts.
func (in *Inspector) nodes(ctx context.Context) ([]NodeInfo, map[string]map[string]int, error) {
	names, err := in.client.SMembers(ctx, in.prefix+"nodes").Result()
	if err != nil {
		return nil, nil, fmt.Errorf("broadcast: nodes: %w", err)
	}
	slices.Sort(names)
	ttls := make([]*redis.DurationCmd, len(names))
	subs := make([]*redis.MapStringStringCmd, len(names))
	_, err = in.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, n := range names {
			ttls[i] = p.PTTL(ctx, in.prefix+"node:"+n)
			subs[i] = p.HGetAll(ctx, in.prefix+"node:"+n+":subs")
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("broadcast: nodes: %w", err)
	}
	var out []NodeInfo
	counts := map[string]map[string]int{} // node -> channel -> subscribers
	for i, n := range names {
		ttl := ttls[i].Val()
		if ttl <= 0 && ttl != -1 { // no lease: stopped or dead
			continue
		}
		ni := NodeInfo{Node: n, LeaseTTL: max(ttl, 0)}
		counts[n] = map[string]int{}
		for ch, v := range subs[i].Val() {
			c, _ := strconv.Atoi(v)
			counts[n][ch] = c
			ni.Channels++
			ni.Subscribers += c
		}
		out = append(out, ni)
	}
	return out, counts, nil
}

// Nodes lists the live Hubs, sorted by node.
func (in *Inspector) Nodes(ctx context.Context) ([]NodeInfo, error) {
	ns, _, err := in.nodes(ctx)
	if ns == nil && err == nil {
		ns = []NodeInfo{}
	}
	return ns, err
}

// Channels lists the channels with subscribers on live Hubs, the most
// subscribed first, with their presence counts.
func (in *Inspector) Channels(ctx context.Context) ([]ChannelInfo, error) {
	_, counts, err := in.nodes(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]*ChannelInfo{}
	for node, chans := range counts {
		for ch, c := range chans {
			ci := byName[ch]
			if ci == nil {
				ci = &ChannelInfo{Name: ch, ByNode: map[string]int{}}
				byName[ch] = ci
			}
			ci.ByNode[node] = c
			ci.Subscribers += c
		}
	}
	out := make([]ChannelInfo, 0, len(byName))
	for _, ci := range byName {
		out = append(out, *ci)
	}
	slices.SortFunc(out, func(a, b ChannelInfo) int {
		if a.Subscribers != b.Subscribers {
			return b.Subscribers - a.Subscribers
		}
		return strings.Compare(a.Name, b.Name)
	})
	if len(out) == 0 {
		return out, nil
	}
	pres := make([]*redis.MapStringStringCmd, len(out))
	_, err = in.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, ci := range out {
			pres[i] = p.HGetAll(ctx, in.prefix+"{"+ci.Name+"}:pr")
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("broadcast: presence: %w", err)
	}
	for i := range out {
		for _, v := range pres[i].Val() {
			var m Member
			if json.Unmarshal([]byte(v), &m) == nil {
				if _, live := counts[m.Node]; live {
					out[i].Present++
				}
			}
		}
	}
	return out, nil
}

// Presence lists the members present on channel on live Hubs, sorted by
// user and client.
func (in *Inspector) Presence(ctx context.Context, channel string) ([]Member, error) {
	if err := checkChannel(channel); err != nil {
		return nil, err
	}
	_, counts, err := in.nodes(ctx)
	if err != nil {
		return nil, err
	}
	all, err := in.client.HGetAll(ctx, in.prefix+"{"+channel+"}:pr").Result()
	if err != nil {
		return nil, fmt.Errorf("broadcast: presence of %q: %w", channel, err)
	}
	out := []Member{}
	for _, v := range all {
		var m Member
		if json.Unmarshal([]byte(v), &m) != nil || m.ClientID == "" {
			continue
		}
		if _, live := counts[m.Node]; live {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b Member) int {
		if c := strings.Compare(a.UserID, b.UserID); c != 0 {
			return c
		}
		return strings.Compare(a.ClientID, b.ClientID)
	})
	return out, nil
}
