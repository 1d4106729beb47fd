package cache

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"

	"github.com/outrigger-dev/outrigger/internal/rediserr"
)

var (
	//go:embed scripts/write.lua
	writeLua    string
	writeScript = redis.NewScript(writeLua)

	//go:embed scripts/release.lua
	releaseLua    string
	releaseScript = redis.NewScript(releaseLua)

	//go:embed scripts/mark.lua
	markLua    string
	markScript = redis.NewScript(markLua)
)

// Write modes of scripts/write.lua.
const (
	modeSet     = "set"
	modeFill    = "fill"
	modeRefresh = "refresh"
)

// redisTier is the cache's Redis side: every call goes through the circuit
// breaker and counts failures. It is safe for concurrent use.
//
// Only errors that mean Redis is unavailable (rediserr.Unavailable) count as
// failures, for the breaker and in errs; an answer that means a bug or bad
// data (rediserr.Invalid: WRONGTYPE, a script error) is a success for the
// breaker, since Redis is up, and the cache reports it (Cache.fault).
type redisTier struct {
	client  redis.UniversalClient
	cb      *gobreaker.TwoStepCircuitBreaker[struct{}] // nil: no breaker
	errs    *atomic.Uint64
	channel string        // "" when invalidation is off
	leasePX string        // the load lease TTL in milliseconds (pxArg)
	mget    bool          // MGET works across all keys (not a Cluster or Ring)
	writeSc *redis.Script // scripts/write.lua (a test may swap it)
	hooks   *Hooks
}

func newRedisTier(cfg *config, errs *atomic.Uint64, log *slog.Logger) *redisTier {
	r := &redisTier{client: cfg.client, errs: errs, writeSc: writeScript, hooks: &cfg.hooks, leasePX: pxArg(cfg.leaseTTL)}
	if cfg.invalidate {
		r.channel = cfg.prefix + "~invalidate"
	}
	_, r.mget = cfg.client.(*redis.Client)
	if cfg.brFailures > 0 {
		n := cfg.brFailures
		r.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
			Name:        "cache:" + cfg.prefix,
			MaxRequests: 1,
			Timeout:     cfg.brOpen,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= n },
			IsSuccessful: func(err error) bool {
				// Redis answered: it is up, whatever the answer says
				return err == nil || errors.Is(err, redis.Nil) || rediserr.IsInvalid(err)
			},
			IsExcluded: func(err error) bool { return errors.Is(err, context.Canceled) },
			OnStateChange: func(name string, from, to gobreaker.State) {
				log.Warn("cache: redis circuit breaker", "name", name, "from", from.String(), "to", to.String())
			},
		})
	}
	return r
}

// do runs fn, the Redis call op, under the breaker.
func (r *redisTier) do(op string, fn func() error) error {
	var done func(error)
	if r.cb != nil {
		d, err := r.cb.Allow()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrRedisUnavailable, err)
		}
		done = d
	}
	err := fn()
	if done != nil {
		done(err)
	}
	if rediserr.IsUnavailable(err) {
		r.errs.Add(1)
		if h := r.hooks.OnError; h != nil {
			h(op, err, false)
		}
	}
	return err
}

// keyErr is the error of one key's command in a pipeline: nil for success
// and for redis.Nil. An Unavailable error fails the whole call (Redis is
// down for it); an Invalid one is that key's alone.
func keyErr(err error) (own, call error) {
	switch rediserr.Classify(err) {
	case rediserr.OK:
		return nil, nil
	case rediserr.Invalid:
		return err, nil
	}
	return nil, err
}

func (r *redisTier) state() string {
	if r.cb == nil {
		return "disabled"
	}
	return r.cb.State().String()
}

// acquire reads key and, when it is absent, stores the lease envelope in it
// for the lease TTL (SET NX PX GET: one round trip). It returns the previous
// value, or nil and acquired=true when the lease was taken. The command is
// built with the pre-rendered TTL (leasePX): fewer allocations per read than
// SetArgs.
func (r *redisTier) acquire(ctx context.Context, key string, lease []byte) (cur []byte, acquired bool, err error) {
	err = r.do("acquire", func() error {
		s, e := r.client.Do(ctx, "set", key, lease, "nx", "px", r.leasePX, "get").Text()
		if errors.Is(e, redis.Nil) {
			acquired = true
			return nil
		}
		cur = stringBytes(s)
		return e
	})
	return cur, acquired, err
}

// mark tells the holder of the lease nonce on key that a replica waits for
// its value (scripts/mark.lua), so that its write is announced.
func (r *redisTier) mark(ctx context.Context, key string, nonce uint64) error {
	return r.do("mark", func() error {
		return markScript.Run(ctx, r.client, []string{key}, nonceBytes(nonce)).Err()
	})
}

// markMany is mark for several keys' leases in one pipeline.
func (r *redisTier) markMany(ctx context.Context, keys []string, nonces []uint64) error {
	if len(keys) == 0 {
		return nil
	}
	return r.do("mark", func() error {
		_, e := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range keys {
				markScript.Eval(ctx, p, []string{k}, nonceBytes(nonces[i]))
			}
			return nil
		})
		return e
	})
}

// setNX stores val at key if absent, for ttl.
func (r *redisTier) setNX(ctx context.Context, key string, val []byte, ttl time.Duration) (ok bool, err error) {
	err = r.do("setnx", func() error {
		var e error
		ok, e = r.client.SetNX(ctx, key, val, ttl).Result()
		return e
	})
	return ok, err
}

// get returns the value at key, or redis.Nil.
func (r *redisTier) get(ctx context.Context, key string) (b []byte, err error) {
	err = r.do("get", func() error {
		s, e := r.client.Get(ctx, key).Result()
		b = stringBytes(s)
		return e
	})
	return b, err
}

// getMany reads keys in one round trip: one MGET on a single node, a
// pipeline of GETs (which go-redis splits per node) on a Cluster or Ring,
// where MGET across slots fails. Absent keys are nil; kerr holds the
// Invalid error of a key whose GET failed (WRONGTYPE), nil elsewhere. MGET
// reads a key of another type as absent: the lease that follows reports it.
func (r *redisTier) getMany(ctx context.Context, keys []string) (out [][]byte, kerr []error, err error) {
	out, kerr = make([][]byte, len(keys)), make([]error, len(keys))
	err = r.do("get", func() error {
		if r.mget {
			vals, e := r.client.MGet(ctx, keys...).Result()
			if e != nil {
				return e
			}
			for i, v := range vals {
				if s, ok := v.(string); ok {
					out[i] = stringBytes(s)
				}
			}
			return nil
		}
		cmds := make([]*redis.StringCmd, len(keys))
		_, _ = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range keys {
				cmds[i] = p.Get(ctx, k)
			}
			return nil
		})
		for i, c := range cmds {
			s, e := c.Result()
			own, call := keyErr(e)
			if call != nil {
				return call
			}
			if e == nil {
				out[i] = stringBytes(s)
			}
			kerr[i] = own
		}
		return nil
	})
	return out, kerr, err
}

// acquireMany is acquire for several keys in one pipeline; kerr holds the
// Invalid error of a key whose command failed (WRONGTYPE), nil elsewhere.
func (r *redisTier) acquireMany(ctx context.Context, keys []string, lease []byte, ttl time.Duration) (cur [][]byte, acquired []bool, kerr []error, err error) {
	cur, acquired, kerr = make([][]byte, len(keys)), make([]bool, len(keys)), make([]error, len(keys))
	err = r.do("acquire", func() error {
		cmds := make([]*redis.StatusCmd, len(keys))
		_, _ = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range keys {
				cmds[i] = p.SetArgs(ctx, k, lease, redis.SetArgs{Mode: "NX", TTL: ttl, Get: true})
			}
			return nil
		})
		for i, c := range cmds {
			s, e := c.Result()
			own, call := keyErr(e)
			switch {
			case call != nil:
				return call
			case own != nil:
				kerr[i] = own
			case errors.Is(e, redis.Nil):
				acquired[i] = true
			default:
				cur[i] = stringBytes(s)
			}
		}
		return nil
	})
	return cur, acquired, kerr, err
}

// write runs scripts/write.lua; it reports whether the value was written.
func (r *redisTier) write(ctx context.Context, key string, env []byte, ttl time.Duration, mode string, expect uint64, msg string) (written bool, err error) {
	err = r.do("write", func() error {
		n, e := r.writeSc.Run(ctx, r.client, []string{key}, env, pxArg(ttl), mode, nonceBytes(expect), r.channel, msg).Int()
		written = n == 1
		return e
	})
	return written, err
}

// writeReq is one write of writeMany.
type writeReq struct {
	key    string
	env    []byte
	ttl    time.Duration
	mode   string
	expect uint64
	msg    string
}

// writeMany runs scripts/write.lua for several keys in one pipeline
// (EVALSHA, then EVAL for the keys whose node had not cached the script). It
// reports which values were written; kerr holds the Invalid error of a key
// whose script failed (WRONGTYPE, a script error), nil elsewhere.
func (r *redisTier) writeMany(ctx context.Context, reqs []writeReq) (written []bool, kerr []error, err error) {
	written, kerr = make([]bool, len(reqs)), make([]error, len(reqs))
	if len(reqs) == 0 {
		return written, kerr, nil
	}
	err = r.do("write", func() error {
		run := func(sha bool, idx []int) ([]int, error) {
			cmds := make([]*redis.Cmd, len(idx))
			_, _ = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
				for j, i := range idx {
					q := reqs[i]
					args := []any{q.env, pxArg(q.ttl), q.mode, nonceBytes(q.expect), r.channel, q.msg}
					if sha {
						cmds[j] = r.writeSc.EvalSha(ctx, p, []string{q.key}, args...)
					} else {
						cmds[j] = r.writeSc.Eval(ctx, p, []string{q.key}, args...)
					}
				}
				return nil
			})
			var retry []int
			for j, c := range cmds {
				n, e := c.Int()
				if sha && redis.HasErrorPrefix(e, "NOSCRIPT") {
					retry = append(retry, idx[j])
					continue
				}
				own, call := keyErr(e)
				if call != nil {
					return nil, call
				}
				kerr[idx[j]] = own
				written[idx[j]] = e == nil && n == 1
			}
			return retry, nil
		}
		all := make([]int, len(reqs))
		for i := range all {
			all[i] = i
		}
		retry, err := run(true, all)
		if err != nil || len(retry) == 0 {
			return err
		}
		_, err = run(false, retry)
		return err
	})
	return written, kerr, err
}

// releaseMany drops our leases on keys (those still ours) in one pipeline,
// publishing msgs to wake the waiters.
func (r *redisTier) releaseMany(ctx context.Context, keys []string, token uint64, msgs []string) error {
	if len(keys) == 0 {
		return nil
	}
	return r.do("release", func() error {
		_, e := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range keys {
				releaseScript.Eval(ctx, p, []string{k}, nonceBytes(token), r.channel, msgs[i])
			}
			return nil
		})
		return e
	})
}

// release drops our lease on key (if still ours) and publishes msg.
func (r *redisTier) release(ctx context.Context, key string, token uint64, publish bool, msg string) error {
	ch := ""
	if publish {
		ch = r.channel
	}
	return r.do("release", func() error {
		return releaseScript.Run(ctx, r.client, []string{key}, nonceBytes(token), ch, msg).Err()
	})
}

// del deletes keys and publishes msgs, in one pipeline.
func (r *redisTier) del(ctx context.Context, keys []string, msgs []string) error {
	return r.do("delete", func() error {
		_, e := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range keys {
				p.Del(ctx, k)
			}
			if r.channel != "" {
				for _, m := range msgs {
					p.Publish(ctx, r.channel, m)
				}
			}
			return nil
		})
		return e
	})
}

// pxArg renders ttl as whole milliseconds (at least 1), rounding up.
func pxArg(ttl time.Duration) string {
	ms := (ttl + time.Millisecond - 1) / time.Millisecond
	if ms < 1 {
		ms = 1
	}
	return strconv.FormatInt(int64(ms), 10)
}

// stringBytes views s as bytes without copying; the bytes must not be
// modified.
func stringBytes(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}
