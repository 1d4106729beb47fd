package ratelimit

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"

	"github.com/outrigger-dev/outrigger/internal/coalesce"
	"github.com/outrigger-dev/outrigger/internal/rediserr"
)

var (
	//go:embed scripts/resend.lua
	resendSrc string

	//go:embed scripts/gcra.lua
	gcraSrc    string
	gcraScript = redis.NewScript(resendSrc + gcraSrc)

	//go:embed scripts/window.lua
	windowSrc    string
	windowScript = redis.NewScript(resendSrc + windowSrc)
)

// RedisLimiter enforces one or more limits per key across every replica that
// shares its Redis, in one round trip (one Lua script) per decision, using
// Redis' clock. It is safe for concurrent use; build one with [NewRedis] or
// [NewMulti].
//
// Around the Redis path it keeps: a circuit breaker and a fallback for when
// Redis is unavailable, a deny cache that answers recently denied keys
// locally, optional token batching, and optional shadow mode.
type RedisLimiter struct {
	client   redis.UniversalClient
	specs    []gcra
	script   *redis.Script
	group    *coalesce.Group[*coalesce.Script] // shares round trips among concurrent calls
	static   []any                             // per-limit script arguments: id, R, P, B
	prefix   string
	ridTTLms int64
	shadow   bool
	hooks    Hooks
	logger   *slog.Logger
	now      func() time.Time
	base     time.Time

	fallback    Fallback
	fbLocal     *LocalLimiter
	breakerOpen time.Duration
	cb          *gobreaker.CircuitBreaker[string]

	deny      *shards[denyEntry] // nil when the deny cache is off
	batch     *shards[batchEntry]
	batchSize int64
	batchAge  int64 // µs

	minBurst int64
	suffix   string // "" for GCRA, ":sw" for the sliding window
	ridFirst []byte // ridTTLms as sent first (see sendMark)
	ridAgain []byte // and as re-sent
	lenArg   any    // len(specs), boxed once

	stats  stats
	faults rediserr.Reporter // logs each kind of invalid reply once
}

var _ Limiter = (*RedisLimiter)(nil)

// NewRedis returns a limiter enforcing lim per key across all replicas that
// use the same Redis (single node, Sentinel or Cluster) and key prefix.
func NewRedis(client redis.UniversalClient, lim Limit, opts ...Option) (*RedisLimiter, error) {
	return NewMulti(client, []Limit{lim}, opts...)
}

// NewMulti returns a limiter enforcing every limit in limits per key (for
// example 10 per second and 1000 per hour), checked in one round trip and
// all-or-nothing: a request is allowed only if it fits all of them, and a
// denied request consumes nothing from any.
//
// Under GCRA the state of all limits of a key is one Redis string holding one
// timestamp per limit, by position. If a deploy changes the limits, each
// position's stored debt is read under the new limit (time already paid for
// stays paid for); limiters with different limit lists should use different
// prefixes. The sliding-window state is a hash with fields per limit
// (identified by Rate, Period and Burst) and window.
func NewMulti(client redis.UniversalClient, limits []Limit, opts ...Option) (*RedisLimiter, error) {
	if client == nil {
		return nil, fmt.Errorf("%w: client must not be nil", ErrInvalidArgument)
	}
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if len(cfg.errs) > 0 {
		return nil, cfg.errs[0]
	}
	specs, err := compile(limits)
	if err != nil {
		return nil, err
	}
	l := &RedisLimiter{
		client:      client,
		specs:       specs,
		script:      gcraScript,
		prefix:      cfg.prefix,
		ridTTLms:    cfg.requestIDTTL.Milliseconds(),
		shadow:      cfg.shadow,
		hooks:       cfg.hooks,
		logger:      cfg.logger,
		base:        cfg.now(),
		fallback:    cfg.fallback,
		breakerOpen: cfg.breakerOpen,
	}
	if cfg.requestIDTTL > 0 && l.ridTTLms == 0 {
		l.ridTTLms = 1
	}
	if cfg.clockSet {
		l.now = cfg.now
	}
	if cfg.algorithm == SlidingWindow {
		// a different key, so that switching algorithms never meets the
		// other's state
		l.script, l.suffix = windowScript, ":sw"
	}
	l.ridFirst = []byte(strconv.FormatInt(l.ridTTLms, 10))
	l.ridAgain = append([]byte("r"), l.ridFirst...)
	l.lenArg = len(specs)
	// Redis runs one script at a time: a couple of pipelines in flight keep
	// it busy, and more would only add connections.
	l.group = coalesce.NewScripts(client, max(2, runtime.GOMAXPROCS(0)), maxPipeline)
	l.minBurst = int64(specs[0].lim.Burst)
	for _, g := range specs {
		l.minBurst = min(l.minBurst, int64(g.lim.Burst))
		id := strconv.FormatInt(g.R, 10) + "/" + strconv.FormatInt(g.P, 10) + "/" + strconv.Itoa(g.lim.Burst)
		l.static = append(l.static, id, g.R, g.P, g.lim.Burst)
	}
	if cfg.fallback.mode == fallbackLocal {
		fspecs := specs
		if len(cfg.fallback.limits) > 0 {
			if len(cfg.fallback.limits) != len(specs) {
				return nil, fmt.Errorf("%w: FailLocal has %d limits, the limiter %d", ErrInvalidArgument, len(cfg.fallback.limits), len(specs))
			}
			if fspecs, err = compile(cfg.fallback.limits); err != nil {
				return nil, err
			}
		}
		l.fbLocal = newLocal(fspecs, cfg)
	}
	if cfg.denyCache > 0 {
		l.deny = newShards[denyEntry](cfg.denyCache)
	}
	if cfg.batchSize > 0 {
		l.batch = newShards[batchEntry](cfg.maxKeys)
		l.batchSize = int64(cfg.batchSize)
		l.batchAge = max(cfg.batchMaxAge.Microseconds(), 1)
	}
	fails := uint32(cfg.breakerFails)
	l.cb = gobreaker.NewCircuitBreaker[string](gobreaker.Settings{
		Name:        "ratelimit",
		MaxRequests: 1,
		Timeout:     cfg.breakerOpen,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= fails },
		// Redis answered: it is up, whatever the answer says
		IsSuccessful: func(err error) bool { return err == nil || rediserr.IsInvalid(err) },
		IsExcluded:   func(err error) bool { return errors.Is(err, errCallerDone) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if l.logger != nil {
				l.logger.Warn("ratelimit: circuit breaker state change", "from", from.String(), "to", to.String())
			}
			if l.hooks.OnBreakerChange != nil {
				l.hooks.OnBreakerChange(from.String(), to.String())
			}
		},
	})
	return l, nil
}

// maxPipeline bounds the decisions sent in one pipeline.
const maxPipeline = 128

// errCallerDone marks a Redis error caused by the caller's context ending:
// not Redis' fault, so the breaker ignores it.
var errCallerDone = errors.New("ratelimit: caller context done")

// denyEntry remembers a Redis deny.
type denyEntry struct {
	until     int64 // µs on the local clock
	n         int64 // the denied cost; smaller costs still go to Redis
	reset     int64 // µs on the local clock
	remaining int64
	tight     int
}

// batchEntry holds tokens taken from Redis for later local use.
type batchEntry struct {
	tokens    int64
	expires   int64 // µs on the local clock
	remaining int64 // Redis' remaining when taken
	reset     int64 // µs on the local clock
	tight     int
}

// Limits returns the limiter's limits.
func (l *RedisLimiter) Limits() []Limit {
	out := make([]Limit, len(l.specs))
	for i := range l.specs {
		out[i] = l.specs[i].lim
	}
	return out
}

// Key returns the Redis key holding key's state: "<prefix>{<key>}" under
// GCRA, "<prefix>{<key>}:sw" under the sliding window.
func (l *RedisLimiter) Key(key string) string { return l.prefix + "{" + key + "}" + l.suffix }

// BreakerState returns the circuit breaker's state: "closed", "half-open" or
// "open".
func (l *RedisLimiter) BreakerState() string { return l.cb.State().String() }

// Allow is AllowN(ctx, key, 1).
func (l *RedisLimiter) Allow(ctx context.Context, key string) (Result, error) {
	return l.AllowN(ctx, key, 1)
}

// AllowN reports whether n events may happen now for key across all
// replicas and records them if so; see [Limiter]. It makes at most one Redis
// round trip, and none when the deny cache or a token batch answers or the
// circuit breaker is open.
//
// When Redis is unavailable (a network error or timeout, LOADING, BUSY,
// CLUSTERDOWN, TRYAGAIN, MASTERDOWN, READONLY, a re-sent copy refused, the
// breaker open) it answers from the fallback (Source = SourceFallback) and
// returns no error. When Redis answers with an error that means the code or
// the key's data is wrong (a script error, WRONGTYPE, NOAUTH, a reply that
// does not parse), it returns that error, wrapped: the fallback never hides
// a bug, and the breaker does not open (Redis is up). It also returns an
// error for bad arguments and when ctx ends before Redis answers.
func (l *RedisLimiter) AllowN(ctx context.Context, key string, n int) (Result, error) {
	if err := checkArgs(key, n); err != nil {
		return Result{}, err
	}
	res, err := l.allowN(ctx, key, int64(n))
	if err != nil {
		return Result{}, err
	}
	if res.Allowed {
		l.stats.allowed.Add(1)
	} else {
		l.stats.denied.Add(1)
		if l.shadow {
			res.Allowed, res.Shadowed = true, true
			l.stats.shadowed.Add(1)
		}
	}
	l.stats.bySource[res.Source].Add(1)
	if l.hooks.OnDecision != nil {
		l.hooks.OnDecision(key, res)
	}
	return res, nil
}

func (l *RedisLimiter) clock() int64 {
	if l.now == nil {
		return int64(time.Since(l.base) / time.Microsecond)
	}
	return int64(l.now().Sub(l.base) / time.Microsecond)
}

func (l *RedisLimiter) allowN(ctx context.Context, key string, n int64) (Result, error) {
	var now int64
	local := n > 0 && n <= l.minBurst // the deny cache and batches may answer
	if local && (l.deny != nil || l.batch != nil) {
		now = l.clock()
	}
	if local && l.deny != nil {
		sh := l.deny.shard(key)
		sh.mu.Lock()
		e, ok := sh.m[key]
		sh.mu.Unlock()
		if ok && now < e.until && n >= e.n {
			return Result{
				Remaining:  int(e.remaining),
				RetryAfter: us(e.until - now),
				ResetAfter: us(max(e.reset-now, 0)),
				Limit:      l.specs[e.tight].lim,
				Source:     SourceDenyCache,
			}, nil
		}
	}
	if local && l.batch != nil {
		sh := l.batch.shard(key)
		sh.mu.Lock()
		e, ok := sh.m[key]
		if ok && now < e.expires && e.tokens >= n {
			e.tokens -= n
			sh.m[key] = e
			sh.mu.Unlock()
			return Result{
				Allowed:    true,
				Remaining:  int(e.remaining + e.tokens),
				ResetAfter: us(max(e.reset-now, 0)),
				Limit:      l.specs[e.tight].lim,
				Source:     SourceBatch,
			}, nil
		}
		sh.mu.Unlock()
	}
	m := n
	if l.batch != nil && n > 0 {
		m = max(n, l.batchSize)
	}
	reply, err := l.cb.Execute(func() (string, error) {
		l.stats.redisCalls.Add(1)
		s, err := l.eval(ctx, key, n, m)
		if err != nil && ctx.Err() != nil {
			return "", fmt.Errorf("%w: %w", errCallerDone, ctx.Err())
		}
		return s, err
	})
	if err == nil {
		var d decision
		if d, err = parseReply(reply); err == nil && (d.tight < 0 || d.tight >= len(l.specs)) {
			err = rediserr.BadReply("limit index %d of %d", d.tight, len(l.specs))
		}
		if err == nil {
			return l.redisResult(key, n, d), nil
		}
		err = fmt.Errorf("script reply %q: %w", reply, err)
	}
	switch {
	case errors.Is(err, errCallerDone):
		return Result{}, ctx.Err()
	case rediserr.IsInvalid(err):
		return Result{}, l.fault(key, err)
	}
	return l.fallbackResult(key, n, err), nil
}

// fault counts, reports and wraps an error that means the code or the data
// is wrong.
func (l *RedisLimiter) fault(key string, err error) error {
	l.stats.invalid.Add(1)
	l.faults.Report(l.logger, "ratelimit: redis refused the limiter's script: not a redis outage, no fallback", "allow", err, "key", key)
	if l.hooks.OnError != nil {
		l.hooks.OnError(key, err)
	}
	return fmt.Errorf("ratelimit: allow %q: %w", key, err)
}

// redisResult turns Redis' decision into a Result, taking a token batch and
// remembering a deny when those are on.
func (l *RedisLimiter) redisResult(key string, n int64, d decision) Result {
	var now int64
	res := Result{
		Allowed:    d.allowed,
		Remaining:  int(d.remaining),
		RetryAfter: us(d.retry),
		ResetAfter: us(d.reset),
		Limit:      l.specs[d.tight].lim,
		Source:     SourceRedis,
	}
	if d.retry < 0 {
		res.RetryAfter = -1
	}
	if l.batch != nil && d.take > n {
		now = l.clock()
		sh := l.batch.shard(key)
		sh.mu.Lock()
		if _, ok := sh.m[key]; !ok {
			sh.makeRoom(l.batch.per, func(e batchEntry) int64 {
				if now >= e.expires {
					return 0
				}
				return e.tokens
			})
		}
		sh.m[key] = batchEntry{tokens: d.take - n, expires: now + l.batchAge, remaining: d.remaining, reset: now + d.reset, tight: d.tight}
		sh.mu.Unlock()
		res.Remaining += int(d.take - n)
	}
	if l.deny != nil && !d.allowed && d.retry > 0 {
		now = l.clock()
		sh := l.deny.shard(key)
		sh.mu.Lock()
		if _, ok := sh.m[key]; !ok {
			sh.makeRoom(l.deny.per, func(e denyEntry) int64 { return e.until - now })
		}
		sh.m[key] = denyEntry{until: now + d.retry, n: n, reset: now + d.reset, remaining: d.remaining, tight: d.tight}
		sh.mu.Unlock()
	}
	return res
}

// evalReq is one decision's script call, carried by a shared pipeline.
type evalReq struct {
	call coalesce.Script
	keys [2]string
	mark sendMark
}

// eval runs the script for one decision: one script execution in one round
// trip. Concurrent decisions share round trips: while pipelines are in
// flight, calls queue and go out together in the next one (see
// internal/coalesce), so 64 goroutines cost a few pipelines, not 64 round
// trips, and each still gets its own result.
func (l *RedisLimiter) eval(ctx context.Context, key string, n, m int64) (string, error) {
	k := l.prefix + "{" + key + "}" + l.suffix
	r := &evalReq{keys: [2]string{k}}
	keys := r.keys[:1]
	if l.ridTTLms > 0 {
		r.keys[1] = k + ":rid:" + strconv.FormatUint(rand.Uint64(), 36)
		keys = r.keys[:]
	}
	args := make([]any, 4, 4+len(l.static))
	r.mark.lim = l
	args[0], args[1], args[2], args[3] = n, m, &r.mark, l.lenArg
	r.call = coalesce.Script{Script: l.script, Keys: keys, Args: append(args, l.static...),
		OnNoScript: &r.mark, // a NOSCRIPT did not run it: the next copy is a first one
		OnCmd:      &r.mark} // a MOVED (…) did not run it either
	if err := l.group.Do(ctx, &r.call); err != nil {
		return "", err
	}
	if r.call.Err != nil {
		return "", resentErr(r.call.Err)
	}
	reply, ok := r.call.Val.(string)
	if !ok {
		return "", rediserr.BadReply("script reply %v (%T), want a string", r.call.Val, r.call.Val)
	}
	return reply, nil
}

// fallbackResult answers while Redis cannot.
func (l *RedisLimiter) fallbackResult(key string, n int64, err error) Result {
	l.stats.errors.Add(1)
	if !errors.Is(err, gobreaker.ErrOpenState) && !errors.Is(err, gobreaker.ErrTooManyRequests) {
		if l.logger != nil {
			l.logger.Warn("ratelimit: redis failed, answering from the fallback", "key", key, "fallback", l.fallback.String(), "err", err)
		}
		if l.hooks.OnError != nil {
			l.hooks.OnError(key, err)
		}
	}
	lim := l.specs[0].lim
	res := Result{Limit: lim, Source: SourceFallback}
	switch l.fallback.mode {
	case fallbackOpen:
		res.Allowed = true
		res.Remaining = lim.Burst
		if n > int64(lim.Burst) {
			res.Remaining = 0
		}
	case fallbackClosed:
		res.RetryAfter = l.breakerOpen
		if n > int64(lim.Burst) {
			res.RetryAfter = -1
		}
		if n == 0 {
			res.Allowed = true
		}
	default:
		d := l.fbLocal.take(key, n, n)
		res = l.fbLocal.result(d)
		res.Source = SourceFallback
	}
	return res
}

// parseReply parses "allowed remaining retry reset tight take".
func parseReply(s string) (decision, error) {
	var v [6]int64
	i := 0
	for f := 0; f < 6; f++ {
		if i >= len(s) {
			return decision{}, rediserr.BadReply("short reply")
		}
		neg := false
		if s[i] == '-' {
			neg = true
			i++
		}
		start := i
		var x int64
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			x = x*10 + int64(s[i]-'0')
		}
		if i == start {
			return decision{}, rediserr.BadReply("field %d is not a number", f)
		}
		if neg {
			x = -x
		}
		v[f] = x
		if i < len(s) && s[i] == ' ' {
			i++
		}
	}
	return decision{allowed: v[0] == 1, remaining: v[1], retry: v[2], reset: v[3], tight: int(v[4]), take: v[5]}, nil
}

// Wait is WaitN(ctx, key, 1).
func (l *RedisLimiter) Wait(ctx context.Context, key string) error { return waitN(ctx, l, key, 1) }

// WaitN blocks until n events are allowed for key, ctx is done (returning
// ctx.Err()), or at once with [ErrExceedsBurst] when n can never be allowed.
// It polls: it sleeps RetryAfter and asks again, so it does not reserve
// quota while it waits, and a busy key may keep a waiter waiting.
func (l *RedisLimiter) WaitN(ctx context.Context, key string, n int) error {
	return waitN(ctx, l, key, n)
}

// Reset deletes key's state in Redis (and any local deny-cache or batch
// entry), giving it a full burst.
func (l *RedisLimiter) Reset(ctx context.Context, key string) error {
	if err := checkArgs(key, 0); err != nil {
		return err
	}
	if l.deny != nil {
		forget(l.deny, key)
	}
	if l.batch != nil {
		forget(l.batch, key)
	}
	if l.fbLocal != nil {
		forget(l.fbLocal.keys, key)
	}
	return l.client.Del(ctx, l.Key(key)).Err()
}

func forget[V any](s *shards[V], key string) {
	sh := s.shard(key)
	sh.mu.Lock()
	delete(sh.m, key)
	sh.mu.Unlock()
}

// RequestIDTTL returns how long request IDs are kept; 0 (the default) means
// re-sent copies are refused instead. See [WithRequestIDTTL].
func (l *RedisLimiter) RequestIDTTL() time.Duration {
	return time.Duration(l.ridTTLms) * time.Millisecond
}
