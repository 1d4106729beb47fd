package cache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/internal/keyscan"
)

// Inspector looks at a cache's Redis tier from outside the application,
// for consoles and command-line tools: what is stored under a key, how many
// keys and subscribed caches a prefix has, and invalidation of keys on
// every replica. It needs no value type. It is safe for concurrent use.
type Inspector struct {
	client  redis.UniversalClient
	prefix  string
	channel string
	origin  string // names the inspector in invalidation messages
}

// NewInspector returns an inspector of the cache keys under the prefix set
// with [WithPrefix] (default [DefaultPrefix]); other options are ignored.
func NewInspector(client redis.UniversalClient, opts ...Option) (*Inspector, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: client must not be nil", ErrBadOption)
	}
	cfg := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	if err := errors.Join(cfg.errs...); err != nil {
		return nil, err
	}
	var o [8]byte
	binary.BigEndian.PutUint64(o[:], rand.Uint64())
	return &Inspector{client: client, prefix: cfg.prefix, channel: cfg.prefix + "~invalidate", origin: string(o[:])}, nil
}

// Prefix returns the key prefix the inspector reads.
func (in *Inspector) Prefix() string { return in.prefix }

// PrefixStats is the Redis side of a cache prefix.
type PrefixStats struct {
	// Prefix is the key prefix.
	Prefix string `json:"prefix"`
	// Keys counts the keys under the prefix (values, negative entries and
	// load leases), walked with SCAN.
	Keys int64 `json:"keys"`
	// Subscribers counts the caches listening for invalidations on the
	// prefix's channel, over every node: one per running cache value with
	// Redis and invalidation on, so usually one per replica.
	Subscribers int64 `json:"subscribers"`
}

// Stats counts the prefix's keys and subscribed caches. Counting walks
// every key of the deployment (SCAN): it is for an operator's look, not
// for a metrics scrape of a large keyspace.
func (in *Inspector) Stats(ctx context.Context) (PrefixStats, error) {
	st := PrefixStats{Prefix: in.prefix}
	err := keyscan.Each(ctx, in.client, keyscan.Escape(in.prefix)+"*", "", func(keys []string) error {
		for _, k := range keys {
			if k != in.channel {
				st.Keys++
			}
		}
		return nil
	})
	if err != nil {
		return PrefixStats{}, fmt.Errorf("cache: stats of %q: %w", in.prefix, err)
	}
	var mu sync.Mutex // protects st.Subscribers: Nodes may run fn in parallel
	err = keyscan.Nodes(ctx, in.client, func(ctx context.Context, n redis.UniversalClient) error {
		m, err := n.PubSubNumSub(ctx, in.channel).Result()
		if err != nil {
			return err
		}
		mu.Lock()
		st.Subscribers += m[in.channel]
		mu.Unlock()
		return nil
	})
	if err != nil {
		return PrefixStats{}, fmt.Errorf("cache: subscribers of %q: %w", in.prefix, err)
	}
	return st, nil
}

// KeyInfo is what Redis holds for one cache key.
type KeyInfo struct {
	// Key is the key as the application names it (without the prefix).
	Key string `json:"key"`
	// Exists reports whether Redis holds anything for the key.
	Exists bool `json:"exists"`
	// Loading reports a load lease: a replica is loading the value now.
	Loading bool `json:"loading"`
	// NotFound reports a negative entry (the loader returned ErrNotFound).
	NotFound bool `json:"not_found"`
	// Compressed reports a compressed payload.
	Compressed bool `json:"compressed"`
	// Fresh reports a value before its soft expiry; a value past it but
	// before its hard expiry is stale (served while it is refreshed, with
	// stale-while-revalidate).
	Fresh bool `json:"fresh"`
	// SoftExpiry and HardExpiry are the value's expiries, by the clock of
	// the replica that wrote it (zero for a lease).
	SoftExpiry time.Time `json:"soft_expiry"`
	HardExpiry time.Time `json:"hard_expiry"`
	// LoadCost is how long the value's last load took (XFetch's δ).
	LoadCost time.Duration `json:"load_cost"`
	// Size is the stored payload's size in bytes (after compression).
	Size int `json:"size"`
	// TTL is the key's remaining time in Redis.
	TTL time.Duration `json:"ttl"`
	// Invalid is set, with the reason, when the stored bytes are not a
	// cache entry of this package.
	Invalid string `json:"invalid,omitempty"`
}

// Key reads what Redis holds for key, without decoding the value (the
// inspector does not know its type) and without touching its TTL.
func (in *Inspector) Key(ctx context.Context, key string) (KeyInfo, error) {
	if key == "" {
		return KeyInfo{}, ErrEmptyKey
	}
	rk := in.prefix + key
	var get *redis.StringCmd
	var ttl *redis.DurationCmd
	_, err := in.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.Get(ctx, rk)
		ttl = p.PTTL(ctx, rk)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return KeyInfo{}, fmt.Errorf("cache: inspect %q: %w", key, err)
	}
	info := KeyInfo{Key: key}
	b, err := get.Bytes()
	if errors.Is(err, redis.Nil) {
		return info, nil
	}
	if err != nil {
		return KeyInfo{}, fmt.Errorf("cache: inspect %q: %w", key, err)
	}
	info.Exists = true
	if d := ttl.Val(); d > 0 {
		info.TTL = d
	}
	env, err := parseEnvelope(b)
	if err != nil {
		info.Invalid = err.Error()
		info.Size = len(b)
		return info, nil
	}
	info.Loading = env.lease()
	info.NotFound = env.notFound()
	info.Compressed = env.flags&flagCompressed != 0
	info.Size = len(env.payload)
	if !info.Loading {
		info.SoftExpiry = time.UnixMicro(env.soft)
		info.HardExpiry = time.UnixMicro(env.hard)
		info.Fresh = time.Now().Before(info.SoftExpiry)
		info.LoadCost = time.Duration(env.delta) * time.Microsecond
	}
	return info, nil
}

// Invalidate deletes keys from Redis and tells every cache on the prefix,
// on every replica, to drop them from its local tier: the next read loads
// them again. It returns how many keys Redis held. A replica whose
// invalidation subscription is down at that moment keeps its local copy
// for at most its local TTL, as for any invalidation.
func (in *Inspector) Invalidate(ctx context.Context, keys ...string) (int, error) {
	for _, k := range keys {
		if k == "" {
			return 0, ErrEmptyKey
		}
	}
	if len(keys) == 0 {
		return 0, nil
	}
	dels := make([]*redis.IntCmd, len(keys))
	_, err := in.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			dels[i] = p.Del(ctx, in.prefix+k)
		}
		for _, k := range keys {
			p.Publish(ctx, in.channel, in.origin+k)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("cache: invalidate: %w", err)
	}
	n := 0
	for _, d := range dels {
		n += int(d.Val())
	}
	return n, nil
}
