package ratelimit

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/internal/rediserr"
)

// KeyState is what Redis holds for one key of a limiter, as an operator
// sees it: read by [Inspector.Get] without consuming anything.
type KeyState struct {
	// Key is the key as the application names it ("user:42").
	Key string `json:"key"`
	// RedisKey is the Redis key holding its state.
	RedisKey string `json:"redis_key"`
	// Exists reports whether Redis holds state for the key. A key without
	// state is at its full burst.
	Exists bool `json:"exists"`
	// Known reports whether the inspector knows the limits, so that
	// Remaining and Limit mean something.
	Known bool `json:"known"`
	// Remaining is how many events would be allowed right now, under the
	// tightest limit. -1 when the limits are not known.
	Remaining int `json:"remaining"`
	// ResetAfter is how long until the key is back to its full burst if no
	// more requests arrive. When the limits are not known it is the key's
	// remaining time in Redis, which the limiter sets to that same instant.
	ResetAfter time.Duration `json:"reset_after"`
	// Limit is the tightest limit (the one with the fewest events
	// remaining); the zero Limit when the limits are not known.
	Limit Limit `json:"limit"`
	// TTL is the key's remaining time in Redis (0 when there is no key).
	TTL time.Duration `json:"ttl"`
}

// Inspector reads and resets the state of a Redis limiter's keys, for
// consoles and command-line tools: [Inspector.Get] reads a key's state
// without consuming anything, [Inspector.Reset] gives a key its full burst
// back. It talks to Redis directly (no circuit breaker, no fallback): an
// unreachable Redis is an error, not a made-up answer. It is safe for
// concurrent use.
//
// Build one with [NewInspector], or take a limiter's with
// [RedisLimiter.Inspector], which knows its limits.
type Inspector struct {
	client redis.UniversalClient
	prefix string
	suffix string
	lim    *RedisLimiter // nil when the limits are not known
}

// NewInspector returns an inspector of the keys under the prefix set with
// [WithPrefix] (default "ratelimit:") and the algorithm set with
// [WithAlgorithm]. limits are the limiter's limits, in the limiter's order;
// with none, [Inspector.Get] reports whether a key has state and when it
// resets, but not how many events remain. Other options are ignored.
func NewInspector(client redis.UniversalClient, limits []Limit, opts ...Option) (*Inspector, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: client must not be nil", ErrInvalidArgument)
	}
	if len(limits) > 0 {
		l, err := NewMulti(client, limits, opts...)
		if err != nil {
			return nil, err
		}
		return l.Inspector(), nil
	}
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if len(cfg.errs) > 0 {
		return nil, cfg.errs[0]
	}
	in := &Inspector{client: client, prefix: cfg.prefix}
	if cfg.algorithm == SlidingWindow {
		in.suffix = ":sw"
	}
	return in, nil
}

// Inspector returns an inspector of l's keys that knows its limits.
func (l *RedisLimiter) Inspector() *Inspector {
	return &Inspector{client: l.client, prefix: l.prefix, suffix: l.suffix, lim: l}
}

// Limits returns the limits the inspector knows (nil when none).
func (in *Inspector) Limits() []Limit {
	if in.lim == nil {
		return nil
	}
	return in.lim.Limits()
}

// Prefix returns the key prefix the inspector reads.
func (in *Inspector) Prefix() string { return in.prefix }

// Key returns the Redis key holding key's state.
func (in *Inspector) Key(key string) string { return in.prefix + "{" + key + "}" + in.suffix }

// Get reads key's state. It consumes nothing: with known limits it runs the
// limiter's script with a cost of 0, which decides on Redis' clock like a
// request would and records nothing.
func (in *Inspector) Get(ctx context.Context, key string) (KeyState, error) {
	if err := checkArgs(key, 0); err != nil {
		return KeyState{}, err
	}
	rk := in.Key(key)
	st := KeyState{Key: key, RedisKey: rk, Remaining: -1}
	pttl, err := in.client.PTTL(ctx, rk).Result()
	if err != nil {
		return KeyState{}, fmt.Errorf("ratelimit: inspect %q: %w", key, err)
	}
	// go-redis reports a missing key as -2 and one without expiry as -1.
	st.Exists = pttl != -2
	if pttl > 0 {
		st.TTL, st.ResetAfter = pttl, pttl
	}
	if in.lim == nil {
		return st, nil
	}
	l := in.lim
	args := make([]any, 0, 4+len(l.static))
	args = append(args, 0, 0, "0", l.lenArg)
	args = append(args, l.static...)
	v, err := l.script.Run(ctx, in.client, []string{rk}, args...).Result()
	if err != nil {
		return KeyState{}, fmt.Errorf("ratelimit: inspect %q: %w", key, err)
	}
	s, ok := v.(string)
	if !ok {
		return KeyState{}, fmt.Errorf("ratelimit: inspect %q: %w", key, rediserr.BadReply("script reply %v (%T), want a string", v, v))
	}
	d, err := parseReply(s)
	if err == nil && (d.tight < 0 || d.tight >= len(l.specs)) {
		err = rediserr.BadReply("limit index %d of %d", d.tight, len(l.specs))
	}
	if err != nil {
		return KeyState{}, fmt.Errorf("ratelimit: inspect %q: script reply %q: %w", key, s, err)
	}
	st.Known = true
	st.Remaining = int(d.remaining)
	st.ResetAfter = us(d.reset)
	st.Limit = l.specs[d.tight].lim
	return st, nil
}

// Reset deletes key's state in Redis, giving it its full burst back on
// every replica. Replicas whose deny cache ([WithDenyCache]) holds a recent
// deny of the key keep answering it locally until the RetryAfter Redis gave
// them, and token batches ([WithBatch]) already taken are spent; with the
// defaults that is at most the deny's RetryAfter. It reports whether there
// was state to delete.
func (in *Inspector) Reset(ctx context.Context, key string) (bool, error) {
	if err := checkArgs(key, 0); err != nil {
		return false, err
	}
	if in.lim != nil {
		// the local caches of this process, at least
		if in.lim.deny != nil {
			forget(in.lim.deny, key)
		}
		if in.lim.batch != nil {
			forget(in.lim.batch, key)
		}
	}
	n, err := in.client.Del(ctx, in.Key(key)).Result()
	if err != nil {
		return false, fmt.Errorf("ratelimit: reset %q: %w", key, err)
	}
	return n > 0, nil
}

// ParseLimit parses a limit written as "<rate>/<period>", optionally
// followed by " burst <n>": "100/1s", "10/1m burst 20", "5000/1h". The
// period is a Go duration ("1s", "1m", "1h", "500ms"); a bare unit ("s",
// "m", "h") means one of it. Without a burst, Burst equals Rate. It is the
// inverse of [Limit.String], for flags and configuration files.
func ParseLimit(s string) (Limit, error) {
	bad := func(why string) (Limit, error) {
		return Limit{}, fmt.Errorf("%w: limit %q: %s (want e.g. \"100/1s\" or \"10/1m burst 20\")", ErrInvalidLimit, s, why)
	}
	rest := s
	burst := -1
	if i := strings.Index(rest, " burst "); i >= 0 {
		b, err := strconv.Atoi(rest[i+len(" burst "):])
		if err != nil {
			return bad("burst is not a number")
		}
		burst, rest = b, rest[:i]
	}
	slash := strings.IndexByte(rest, '/')
	if slash < 0 {
		return bad("no '/'")
	}
	rate, err := strconv.Atoi(rest[:slash])
	if err != nil {
		return bad("rate is not a number")
	}
	ps := rest[slash+1:]
	switch ps {
	case "s", "m", "h", "ms", "us", "µs":
		ps = "1" + ps
	}
	period, err := time.ParseDuration(ps)
	if err != nil {
		return bad("period is not a duration")
	}
	if burst < 0 {
		burst = rate
	}
	l := Limit{Rate: rate, Period: period, Burst: burst}
	if err := l.Validate(); err != nil {
		return Limit{}, err
	}
	return l, nil
}
