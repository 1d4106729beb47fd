package lock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/internal/keyscan"
)

var forceReleaseScript = loadScript("force_release.lua")

// ErrNotHeld is returned by Inspector.ForceRelease when the lock is not
// held, or not by the owner expected.
var ErrNotHeld = errors.New("lock: not held")

// ownerPrefix starts every owner value this process writes
// ("<host>:<pid>:"), so that an operator looking at a held lock sees which
// process holds it (Inspector, LockInfo.Host and PID). The rest of the
// owner is random per process and numbered within it (newOwner).
var ownerPrefix = func() string {
	host, _ := os.Hostname()
	b := []byte(host)
	for i, c := range b {
		// keep keys built from owners (wake lists) free of hash-tag braces
		ok := c == '.' || c == '-' || c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !ok {
			b[i] = '_'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b) + ":" + strconv.Itoa(os.Getpid()) + ":"
}()

// Inspector lists the locks held under a prefix of one Redis deployment
// (single node, Sentinel or Cluster), for consoles and command-line tools,
// and takes a lock away from its holder ([Inspector.ForceRelease]). It
// reads the keys [RedisLocker] writes; Redlock locks live on several
// independent servers: inspect each with its own Inspector (a force
// release must then be done on a majority of them). It is safe for
// concurrent use.
type Inspector struct {
	client redis.UniversalClient
	prefix string
}

// NewInspector returns an inspector of the locks under the prefix set with
// [WithPrefix] (default [DefaultPrefix]), the option given to [New]. Other
// options are ignored.
func NewInspector(client redis.UniversalClient, opts ...Option) (*Inspector, error) {
	if isNil(client) {
		return nil, errors.New("lock: client must not be nil")
	}
	o, err := buildOptions(opts)
	if err != nil {
		return nil, err
	}
	return &Inspector{client: client, prefix: o.prefix}, nil
}

// Prefix returns the key prefix the inspector reads.
func (in *Inspector) Prefix() string { return in.prefix }

// LockInfo is one held lock.
type LockInfo struct {
	// Key is the lock's key (without the prefix).
	Key string `json:"key"`
	// Owner is the holder's owner value: "<host>:<pid>:<random>" for locks
	// taken by this version of the package.
	Owner string `json:"owner"`
	// Host and PID are read from Owner ("" and 0 when it has another
	// form).
	Host string `json:"host"`
	PID  int    `json:"pid"`
	// Token is the last fencing token issued for the key: the holder's,
	// unless it reserved tokens for in-process successors
	// (WithLocalHandoff), whose tokens are at most this.
	Token uint64 `json:"token"`
	// TTL is the lock's remaining time in Redis.
	TTL time.Duration `json:"ttl"`
	// Waiters counts the owners queued for the lock.
	Waiters int64 `json:"waiters"`
}

// parseOwner splits "<host>:<pid>:<random>".
func parseOwner(owner string) (host string, pid int) {
	h, rest, ok := strings.Cut(owner, ":")
	if !ok {
		return "", 0
	}
	p, _, ok := strings.Cut(rest, ":")
	if !ok {
		return "", 0
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return "", 0
	}
	return h, n
}

// Locks lists the locks held under the prefix, sorted by key. It finds
// them with SCAN, walking the whole keyspace: it is for an operator's
// look, not for a hot path.
func (in *Inspector) Locks(ctx context.Context) ([]LockInfo, error) {
	var keys []string
	seen := map[string]bool{}
	err := keyscan.Each(ctx, in.client, keyscan.Escape(in.prefix)+"{*}", "string", func(ks []string) error {
		for _, k := range ks {
			name, ok := strings.CutPrefix(k, in.prefix+"{")
			if !ok || !strings.HasSuffix(name, "}") {
				continue
			}
			name = name[:len(name)-1]
			if checkKey(name) == nil && !strings.Contains(name, "}") && !seen[name] {
				seen[name] = true
				keys = append(keys, name)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lock: list locks: %w", err)
	}
	slices.Sort(keys)
	infos, err := in.lookup(ctx, keys)
	if err != nil {
		return nil, err
	}
	out := make([]LockInfo, 0, len(infos))
	for _, li := range infos {
		if li.Owner != "" { // released since the scan
			out = append(out, li)
		}
	}
	return out, nil
}

// Lock returns key's lock; ok is false when nobody holds it.
func (in *Inspector) Lock(ctx context.Context, key string) (info LockInfo, ok bool, err error) {
	if err := checkKey(key); err != nil {
		return LockInfo{}, false, err
	}
	infos, err := in.lookup(ctx, []string{key})
	if err != nil {
		return LockInfo{}, false, err
	}
	return infos[0], infos[0].Owner != "", nil
}

func (in *Inspector) lookup(ctx context.Context, keys []string) ([]LockInfo, error) {
	type cmds struct {
		owner, fence *redis.StringCmd
		ttl          *redis.DurationCmd
		waiters      *redis.IntCmd
	}
	cs := make([]cmds, len(keys))
	_, err := in.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			ks := lockKeys(in.prefix, k)
			cs[i] = cmds{owner: p.Get(ctx, ks[0]), ttl: p.PTTL(ctx, ks[0]), fence: p.Get(ctx, ks[1]), waiters: p.ZCard(ctx, ks[2])}
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("lock: inspect: %w", err)
	}
	out := make([]LockInfo, len(keys))
	for i, k := range keys {
		li := LockInfo{Key: k, Owner: cs[i].owner.Val(), Waiters: cs[i].waiters.Val()}
		li.Host, li.PID = parseOwner(li.Owner)
		li.Token, _ = strconv.ParseUint(cs[i].fence.Val(), 10, 64)
		if d := cs[i].ttl.Val(); d > 0 {
			li.TTL = d
		}
		out[i] = li
	}
	return out, nil
}

// WaiterInfo is one owner queued for a lock.
type WaiterInfo struct {
	// Owner is the waiter's owner value; Host and PID are read from it.
	Owner string `json:"owner"`
	Host  string `json:"host"`
	PID   int    `json:"pid"`
	// Since is when it queued (Redis clock).
	Since time.Time `json:"since"`
}

// Waiters lists the owners queued for key's lock, longest waiting first.
func (in *Inspector) Waiters(ctx context.Context, key string) ([]WaiterInfo, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	zs, err := in.client.ZRangeWithScores(ctx, lockKeys(in.prefix, key)[2], 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("lock: waiters of %q: %w", key, err)
	}
	out := make([]WaiterInfo, 0, len(zs))
	for _, z := range zs {
		o, _ := z.Member.(string)
		w := WaiterInfo{Owner: o, Since: time.UnixMicro(int64(z.Score))}
		w.Host, w.PID = parseOwner(o)
		out = append(out, w)
	}
	return out, nil
}

// Revocation is the outcome of a force release.
type Revocation struct {
	// Key is the lock's key.
	Key string `json:"key"`
	// Owner is the owner the lock was taken from.
	Owner string `json:"owner"`
	// Token is the revocation token: newer than every token issued for
	// the key before, older than every token issued after. A Fence that
	// has seen it refuses the old holder's token.
	Token uint64 `json:"token"`
}

// ForceOption configures [Inspector.ForceRelease].
type ForceOption func(*forceConfig)

type forceConfig struct {
	owner    string
	fence    *Fence
	resource string
	grant    bool
}

// ExpectOwner releases the lock only if owner holds it (as listed by
// [Inspector.Locks]), so that an operator never takes away a lock that
// changed hands since they looked. Without it, whoever holds the lock
// loses it.
func ExpectOwner(owner string) ForceOption { return func(c *forceConfig) { c.owner = owner } }

// AdvanceFence records the revocation token in f for resource, so that
// the old holder's writes through f are refused (ErrStaleToken) at once,
// before anyone else takes the lock. Without it, the old holder's token is
// refused only once a newer holder's token reached the fence.
func AdvanceFence(f *Fence, resource string) ForceOption {
	return func(c *forceConfig) { c.fence, c.resource = f, resource }
}

// GrantToWaiter hands the lock straight to the longest-waiting live waiter
// (default true), as a release does; false only wakes it to try again.
func GrantToWaiter(grant bool) ForceOption { return func(c *forceConfig) { c.grant = grant } }

// ForceRelease takes key's lock away from its holder, fenced: the fencing
// counter moves past the holder's token (the returned revocation token),
// the lock is deleted and handed to the next waiter with a newer token.
// The holder finds out at its next refresh or release, which fail with
// ErrLockLost (its Lost channel closes, and Do cancels its function's
// context); until then it may still believe it holds the lock, which is
// why a resource must check tokens: with [AdvanceFence] its writes are
// refused from this moment. It returns an error wrapping [ErrNotHeld] when
// the lock is not held (by the [ExpectOwner] owner).
func (in *Inspector) ForceRelease(ctx context.Context, key string, opts ...ForceOption) (Revocation, error) {
	if err := checkKey(key); err != nil {
		return Revocation{}, err
	}
	cfg := forceConfig{grant: true}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	grant := "0"
	if cfg.grant {
		grant = "1"
	}
	res, err := forceReleaseScript.Run(ctx, in.client, lockKeys(in.prefix, key), cfg.owner, grant).Slice()
	if err != nil {
		return Revocation{}, fmt.Errorf("lock: force release %q: %w", key, err)
	}
	if len(res) < 2 {
		return Revocation{}, fmt.Errorf("lock: force release %q: unexpected reply %v", key, res)
	}
	if ok, _ := res[0].(int64); ok != 1 {
		cur, _ := res[1].(string)
		if cur == "" {
			return Revocation{}, fmt.Errorf("%w: %q is not held", ErrNotHeld, key)
		}
		return Revocation{}, fmt.Errorf("%w: %q is held by %s, not %s", ErrNotHeld, key, cur, cfg.owner)
	}
	s, _ := res[1].(string)
	tok, err := strconv.ParseUint(s, 10, 64)
	if err != nil || len(res) < 3 {
		return Revocation{}, fmt.Errorf("lock: force release %q: unexpected reply %v", key, res)
	}
	prev, _ := res[2].(string)
	rv := Revocation{Key: key, Owner: prev, Token: tok}
	if cfg.fence != nil {
		if err := cfg.fence.Check(ctx, cfg.resource, tok); err != nil && !errors.Is(err, ErrStaleToken) {
			return rv, fmt.Errorf("lock: force release %q: advancing the fence of %q: %w", key, cfg.resource, err)
		}
	}
	return rv, nil
}
