// Package ratelimit limits how often a key (a client IP, an API key, a user)
// may do something, either across every replica of a service through Redis
// or inside one process, with HTTP middleware for both.
//
//	lim := ratelimit.PerSecond(100)                      // 100/s, bursts of 100
//	l, err := ratelimit.NewRedis(client, lim)             // shared by all replicas
//	res, err := l.Allow(ctx, "user:42")                   // res.Allowed, res.RetryAfter, ...
//	mw := ratelimit.Middleware(l, ratelimit.KeyByIP("10.0.0.0/8"))
//
// # Backends
//
// [NewRedis] and [NewMulti] decide in one Redis round trip: one Lua script
// reads the key's state, decides and writes, using Redis' TIME in integer
// microseconds, so replicas with skewed clocks agree and nothing drifts.
// The default algorithm is GCRA (a token bucket stored as one timestamp);
// [WithAlgorithm] selects a sliding-window counter instead. Each key is one
// hash "<prefix>{<key>}" (a Redis Cluster hash tag) that expires by itself as
// soon as it no longer matters; the prefix is set with [WithPrefix]. It works
// on a single node, Sentinel and Cluster (any redis.UniversalClient), and
// survives SCRIPT FLUSH and failover (EVALSHA, then EVAL).
//
// [NewMulti] checks several limits per key (10/s and 1000/h) in the same
// single call, all-or-nothing: a request that any limit denies consumes
// nothing from the others.
//
// [NewLocal] and [NewLocalMulti] are the same GCRA in process, per replica,
// in a bounded key set ([WithMaxKeys]); they allocate nothing per call for a
// known key.
//
// # Guarantees
//
// With GCRA, in any window of length w the allowed cost for a key never
// exceeds Burst + Rate × w/Period, and under steady demand it is within one
// event of that. A denied request consumes nothing. AllowN with n larger than
// the burst is never allowed: Result.RetryAfter is -1, and Wait/WaitN return
// [ErrExceedsBurst] at once instead of hanging. n == 0 consumes nothing and
// reports the key's state (Allowed is true). A negative n, an empty key or an
// invalid [Limit] is an error that names the field.
//
// # When Redis fails
//
// A circuit breaker (sony/gobreaker) opens after consecutive Redis failures
// ([WithBreaker], default 5); while it is open every decision comes from the
// fallback ([WithFallback]: [FailOpen], [FailClosed] or [FailLocal], default
// a local limiter with the same limits) without touching the network. After
// the open period one probe goes to Redis and a success closes the breaker:
// recovery needs no restart. Result.Source tells which path decided, and
// [Hooks] and [RedisLimiter.Stats] count decisions by source.
//
// Only errors that mean Redis cannot answer now reach the fallback and count
// towards the breaker: network errors and timeouts (connection refused or
// reset, EOF, i/o timeout, a pool timeout, unreachable sentinels), and the
// replies LOADING, BUSY, CLUSTERDOWN, TRYAGAIN, MASTERDOWN, READONLY,
// NOREPLICAS, MISCONF, OOM, "max number of clients reached" and a MOVED or
// ASK left after the client's redirects, plus a re-sent copy refused
// ([ErrResent]). An answer that means the limiter's script or the key's data
// is wrong (ERR user_script…, ERR Error running script, WRONGTYPE, an
// unknown command, NOAUTH or NOPERM, a reply that does not parse) is
// returned by AllowN as an error, wrapped ("ratelimit: allow "k": …"): it
// is counted in Stats.Invalid, passed to Hooks.OnError, logged once per
// kind at Error level when a logger is set, and does not open the breaker.
// A fallback that answered for a broken script would enforce each limit per
// replica, silently.
//
// go-redis re-sends a command after a read timeout or a broken connection,
// and the first copy may already have run. Every call's arguments tell the
// script a re-sent copy from the first (go-redis marshals them on each
// write), and by default the script refuses a re-sent copy: the call fails
// with [ErrResent] and the fallback decides, so a request never counts
// twice and the normal path costs nothing. A copy that Redis refused
// without running it (a Cluster MOVED or ASK redirect, TRYAGAIN, LOADING,
// CLUSTERDOWN) is not a re-send: the one go-redis sends next counts as a
// first copy, so a Cluster failover does not send callers to the fallback.
// With [WithRequestIDTTL] each call
// carries a random request ID instead, the script stores the reply of an
// allowed request under it, and a re-sent copy returns that reply.
//
// # Saving Redis calls
//
// The deny cache ([WithDenyCache], on by default) answers a key Redis has
// denied locally until the RetryAfter Redis gave, so an abusive client costs
// no Redis calls. Token batching ([WithBatch], off by default) takes up to a
// batch of tokens in one call and spends them locally; it trades a bounded
// overshoot (documented on WithBatch) for far fewer calls. Shadow mode
// ([WithShadow]) decides and reports without enforcing, for rolling out new
// limits.
//
// # HTTP
//
// [Middleware] answers 429 with Retry-After (the time until the request can
// succeed, rounded up to seconds), and sets the IETF draft RateLimit-Policy
// and RateLimit headers and the common X-RateLimit-* headers. [KeyByIP]
// believes X-Forwarded-For only through trusted proxies and keys IPv6
// clients by their /64; [KeyByHeader] keys by an API-key header. Per-request
// costs come from [WithCost] or [CostFunc].
//
// # What it does not do
//
// Wait does not reserve quota (unlike x/time/rate's Reserve): it sleeps until
// the reported RetryAfter and asks again, so under contention a waiter can be
// overtaken. The local limiters enforce limits per process only. Limits are
// capped so that Burst × Period in microseconds stays below 2^53 (exact
// arithmetic in Lua): about 2.5 million per hour.
//
// # Inspecting
//
// [Inspector.Get] reads a key's state (remaining, reset) without consuming
// anything, [Inspector.Reset] gives a key its full burst back; take the
// inspector from the limiter ([RedisLimiter.Inspector]) so that it knows
// the limits, or build one with [NewInspector]. [ParseLimit] reads limits
// written as "100/1s" or "10/1m burst 20".
package ratelimit
