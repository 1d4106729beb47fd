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
)

var (
	//go:embed scripts/write.lua
	writeLua    string
	writeScript = redis.NewScript(writeLua)

	//go:embed scripts/release.lua
	releaseLua    string
	releaseScript = redis.NewScript(releaseLua)
)

// Write modes of scripts/write.lua.
const (
	modeSet     = "set"
	modeFill    = "fill"
	modeRefresh = "refresh"
)

// redisTier is the cache's Redis side: every call goes through the circuit
// breaker and counts failures. It is safe for concurrent use.
type redisTier struct {
	client  redis.UniversalClient
	cb      *gobreaker.TwoStepCircuitBreaker[struct{}] // nil: no breaker
	errs    *atomic.Uint64
	channel string // "" when invalidation is off
	mget    bool   // MGET works across all keys (not a Cluster or Ring)
}

func newRedisTier(cfg *config, errs *atomic.Uint64, log *slog.Logger) *redisTier {
	r := &redisTier{client: cfg.client, errs: errs}
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
				return err == nil || errors.Is(err, redis.Nil) || isServerReply(err)
			},
			IsExcluded: func(err error) bool { return errors.Is(err, context.Canceled) },
			OnStateChange: func(name string, from, to gobreaker.State) {
				log.Warn("cache: redis circuit breaker", "name", name, "from", from.String(), "to", to.String())
			},
		})
	}
	return r
}

// isServerReply reports whether err is an error reply from a live server.
func isServerReply(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}

// do runs fn under the breaker.
func (r *redisTier) do(fn func() error) error {
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
	if err != nil && !errors.Is(err, redis.Nil) && !errors.Is(err, context.Canceled) {
		r.errs.Add(1)
	}
	return err
}

func (r *redisTier) state() string {
	if r.cb == nil {
		return "disabled"
	}
	return r.cb.State().String()
}

// acquire reads key and, when it is absent, stores the lease envelope in it
// (SET NX PX GET: one round trip). It returns the previous value, or nil and
// acquired=true when the lease was taken.
func (r *redisTier) acquire(ctx context.Context, key string, lease []byte, ttl time.Duration) (cur []byte, acquired bool, err error) {
	err = r.do(func() error {
		s, e := r.client.SetArgs(ctx, key, lease, redis.SetArgs{Mode: "NX", TTL: ttl, Get: true}).Result()
		if errors.Is(e, redis.Nil) {
			acquired = true
			return nil
		}
		cur = stringBytes(s)
		return e
	})
	return cur, acquired, err
}

// setNX stores val at key if absent, for ttl.
func (r *redisTier) setNX(ctx context.Context, key string, val []byte, ttl time.Duration) (ok bool, err error) {
	err = r.do(func() error {
		var e error
		ok, e = r.client.SetNX(ctx, key, val, ttl).Result()
		return e
	})
	return ok, err
}

// get returns the value at key, or redis.Nil.
func (r *redisTier) get(ctx context.Context, key string) (b []byte, err error) {
	err = r.do(func() error {
		s, e := r.client.Get(ctx, key).Result()
		b = stringBytes(s)
		return e
	})
	return b, err
}

// getMany reads keys in one round trip: one MGET on a single node, a
// pipeline of GETs (which go-redis splits per node) on a Cluster or Ring,
// where MGET across slots fails. Absent keys are nil.
func (r *redisTier) getMany(ctx context.Context, keys []string) (out [][]byte, err error) {
	out = make([][]byte, len(keys))
	err = r.do(func() error {
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
		_, e := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range keys {
				cmds[i] = p.Get(ctx, k)
			}
			return nil
		})
		if e != nil && !errors.Is(e, redis.Nil) {
			return e
		}
		for i, c := range cmds {
			if s, e := c.Result(); e == nil {
				out[i] = stringBytes(s)
			}
		}
		return nil
	})
	return out, err
}

// acquireMany is acquire for several keys in one pipeline.
func (r *redisTier) acquireMany(ctx context.Context, keys []string, lease []byte, ttl time.Duration) (cur [][]byte, acquired []bool, err error) {
	cur, acquired = make([][]byte, len(keys)), make([]bool, len(keys))
	err = r.do(func() error {
		cmds := make([]*redis.StatusCmd, len(keys))
		_, e := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range keys {
				cmds[i] = p.SetArgs(ctx, k, lease, redis.SetArgs{Mode: "NX", TTL: ttl, Get: true})
			}
			return nil
		})
		if e != nil && !errors.Is(e, redis.Nil) {
			return e
		}
		for i, c := range cmds {
			s, e := c.Result()
			switch {
			case errors.Is(e, redis.Nil):
				acquired[i] = true
			case e == nil:
				cur[i] = stringBytes(s)
			default:
				return e
			}
		}
		return nil
	})
	return cur, acquired, err
}

// write runs scripts/write.lua; it reports whether the value was written.
func (r *redisTier) write(ctx context.Context, key string, env []byte, ttl time.Duration, mode string, expect uint64, msg string) (written bool, err error) {
	err = r.do(func() error {
		n, e := writeScript.Run(ctx, r.client, []string{key}, env, pxArg(ttl), mode, nonceBytes(expect), r.channel, msg).Int()
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
// reports which values were written.
func (r *redisTier) writeMany(ctx context.Context, reqs []writeReq) (written []bool, err error) {
	written = make([]bool, len(reqs))
	if len(reqs) == 0 {
		return written, nil
	}
	err = r.do(func() error {
		run := func(sha bool, idx []int) ([]int, error) {
			cmds := make([]*redis.Cmd, len(idx))
			_, e := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
				for j, i := range idx {
					q := reqs[i]
					args := []any{q.env, pxArg(q.ttl), q.mode, nonceBytes(q.expect), r.channel, q.msg}
					if sha {
						cmds[j] = writeScript.EvalSha(ctx, p, []string{q.key}, args...)
					} else {
						cmds[j] = writeScript.Eval(ctx, p, []string{q.key}, args...)
					}
				}
				return nil
			})
			var retry []int
			for j, c := range cmds {
				n, err := c.Int()
				switch {
				case err == nil:
					written[idx[j]] = n == 1
				case sha && redis.HasErrorPrefix(err, "NOSCRIPT"):
					retry = append(retry, idx[j])
				}
			}
			if len(retry) > 0 {
				return retry, nil
			}
			return nil, e
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
	return written, err
}

// releaseMany drops our leases on keys (those still ours) in one pipeline,
// publishing msgs to wake the waiters.
func (r *redisTier) releaseMany(ctx context.Context, keys []string, token uint64, msgs []string) error {
	if len(keys) == 0 {
		return nil
	}
	return r.do(func() error {
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
	return r.do(func() error {
		return releaseScript.Run(ctx, r.client, []string{key}, nonceBytes(token), ch, msg).Err()
	})
}

// del deletes keys and publishes msgs, in one pipeline.
func (r *redisTier) del(ctx context.Context, keys []string, msgs []string) error {
	return r.do(func() error {
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
