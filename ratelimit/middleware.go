package ratelimit

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// MiddlewareOption configures [Middleware].
type MiddlewareOption func(*mwConfig)

type mwConfig struct {
	skip     map[string]bool
	skipIf   func(*http.Request) bool
	cost     func(*http.Request) int
	onError  func(http.ResponseWriter, *http.Request, error)
	onDenied func(http.ResponseWriter, *http.Request, Result)
	policy   string
	draft    bool
	legacy   bool
	logger   *slog.Logger
	nowUnix  func() int64
}

// SkipPaths exempts requests whose URL path is exactly one of paths (for
// example "/healthz", "/metrics").
func SkipPaths(paths ...string) MiddlewareOption {
	return func(c *mwConfig) {
		for _, p := range paths {
			c.skip[p] = true
		}
	}
}

// SkipIf exempts the requests for which skip returns true.
func SkipIf(skip func(*http.Request) bool) MiddlewareOption {
	return func(c *mwConfig) { c.skipIf = skip }
}

// CostFunc sets the cost of each request (default: the cost set with
// [WithCost] on the request's context, else 1). A cost of 0 is not counted;
// a negative cost is an error for the error handler.
func CostFunc(cost func(*http.Request) int) MiddlewareOption {
	return func(c *mwConfig) { c.cost = cost }
}

// OnError sets the handler for errors from the KeyFunc or the limiter. The
// default serves the request without limiting it (fail open) and logs the
// error if a logger is set: a Redis limiter already answers Redis failures
// from its fallback policy without an error, so what reaches this handler is
// a request without a usable key or a bad cost, and refusing those wholesale
// would turn one bug into an outage. The KeyFuncs of this package do not fail
// on client-controlled input.
func OnError(h func(w http.ResponseWriter, r *http.Request, err error)) MiddlewareOption {
	return func(c *mwConfig) { c.onError = h }
}

// OnDenied sets what a denied request gets, after the rate-limit headers
// have been set. The default writes 429 Too Many Requests with Retry-After.
func OnDenied(h func(w http.ResponseWriter, r *http.Request, res Result)) MiddlewareOption {
	return func(c *mwConfig) { c.onDenied = h }
}

// PolicyName sets the policy name used in the RateLimit and RateLimit-Policy
// headers (default "default").
func PolicyName(name string) MiddlewareOption { return func(c *mwConfig) { c.policy = name } }

// DraftHeaders turns the IETF RateLimit and RateLimit-Policy headers on or
// off (default on).
func DraftHeaders(on bool) MiddlewareOption { return func(c *mwConfig) { c.draft = on } }

// LegacyHeaders turns the X-RateLimit-Limit/Remaining/Reset headers on or
// off (default on).
func LegacyHeaders(on bool) MiddlewareOption { return func(c *mwConfig) { c.legacy = on } }

// MiddlewareLogger sets a logger for the default error handler.
func MiddlewareLogger(l *slog.Logger) MiddlewareOption { return func(c *mwConfig) { c.logger = l } }

type costKey struct{}

// WithCost returns a context that makes [Middleware] charge n for the
// request instead of 1 (for expensive endpoints). Set it in a handler or
// middleware that runs before the rate limiter.
func WithCost(ctx context.Context, n int) context.Context {
	return context.WithValue(ctx, costKey{}, n)
}

// CostFromContext returns the cost set by [WithCost].
func CostFromContext(ctx context.Context) (int, bool) {
	n, ok := ctx.Value(costKey{}).(int)
	return n, ok
}

// Middleware rate-limits HTTP requests with l, keyed by key.
//
// Every limited response carries the IETF httpapi draft headers
// (structured fields), for example
//
//	RateLimit-Policy: "default";q=100;w=60
//	RateLimit: "default";r=42;t=18
//
// where q is the limit's Rate, w its Period in seconds, r the remaining
// quota and t the seconds until the quota is fully restored (rounded up), and
// the common X-RateLimit-Limit (Rate), X-RateLimit-Remaining and
// X-RateLimit-Reset (Unix time in seconds when the quota is fully restored).
// A denied request gets 429 Too Many Requests with Retry-After: the seconds
// until the same request can be allowed, rounded up (not the window); a
// request whose cost exceeds the burst gets 429 without Retry-After, since
// it never will be allowed. For a multi-limit limiter the headers describe
// the limit that decided.
func Middleware(l Limiter, key KeyFunc, opts ...MiddlewareOption) func(http.Handler) http.Handler {
	c := &mwConfig{
		skip:    map[string]bool{},
		policy:  "default",
		draft:   true,
		legacy:  true,
		nowUnix: func() int64 { return time.Now().Unix() },
	}
	for _, o := range opts {
		o(c)
	}
	if c.onDenied == nil {
		c.onDenied = deny429
	}
	if c.onError == nil {
		logger := c.logger
		c.onError = func(w http.ResponseWriter, r *http.Request, err error) {
			if logger != nil {
				logger.Warn("ratelimit: request not limited", "path", r.URL.Path, "err", err)
			}
		}
		c.onError = failOpen(c.onError)
	}
	if key == nil {
		key = KeyByIP()
	}
	pc := &policyCache{name: c.policy}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if len(c.skip) > 0 && c.skip[r.URL.Path] || c.skipIf != nil && c.skipIf(r) {
				next.ServeHTTP(w, r)
				return
			}
			k, err := key(r)
			if err != nil {
				c.onError(w, r, &servedError{err: err, next: next})
				return
			}
			cost := 1
			if c.cost != nil {
				cost = c.cost(r)
			} else if n, ok := CostFromContext(r.Context()); ok {
				cost = n
			}
			res, err := l.AllowN(r.Context(), k, cost)
			if err != nil {
				c.onError(w, r, &servedError{err: err, next: next})
				return
			}
			h := w.Header()
			// one backing array for every header value slice
			var vals []string
			if c.draft || c.legacy {
				vals = make([]string, 5)
			}
			if c.draft {
				vals[0] = pc.get(res.Limit)
				vals[1] = `"` + c.policy + `";r=` + strconv.Itoa(res.Remaining) + ";t=" + strconv.FormatInt(ceilSeconds(res.ResetAfter), 10)
				h["Ratelimit-Policy"] = vals[0:1:1]
				h["Ratelimit"] = vals[1:2:2]
			}
			if c.legacy {
				vals[2] = strconv.Itoa(res.Limit.Rate)
				vals[3] = strconv.Itoa(res.Remaining)
				vals[4] = strconv.FormatInt(c.nowUnix()+ceilSeconds(res.ResetAfter), 10)
				h["X-Ratelimit-Limit"] = vals[2:3:3]
				h["X-Ratelimit-Remaining"] = vals[3:4:4]
				h["X-Ratelimit-Reset"] = vals[4:5:5]
			}
			if !res.Allowed {
				c.onDenied(w, r, res)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// servedError carries the next handler to the default error handler so that
// it can fail open.
type servedError struct {
	err  error
	next http.Handler
}

func (e *servedError) Error() string { return e.err.Error() }
func (e *servedError) Unwrap() error { return e.err }

// failOpen wraps the default error handler: log, then serve the request.
func failOpen(log func(http.ResponseWriter, *http.Request, error)) func(http.ResponseWriter, *http.Request, error) {
	return func(w http.ResponseWriter, r *http.Request, err error) {
		log(w, r, err)
		if se, ok := err.(*servedError); ok {
			se.next.ServeHTTP(w, r)
		}
	}
}

func deny429(w http.ResponseWriter, _ *http.Request, res Result) {
	if res.RetryAfter >= 0 {
		w.Header()["Retry-After"] = []string{strconv.FormatInt(max(ceilSeconds(res.RetryAfter), 1), 10)}
	}
	w.Header()["Content-Type"] = []string{"text/plain; charset=utf-8"}
	w.WriteHeader(http.StatusTooManyRequests)
	_, _ = w.Write([]byte("Too Many Requests\n"))
}

// ceilSeconds rounds d up to whole seconds.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// policyCache keeps the RateLimit-Policy value of the last limit seen, so
// that the common case (one limit) formats it once.
type policyCache struct {
	name string
	last atomic.Pointer[policyEntry]
}

type policyEntry struct {
	lim Limit
	s   string
}

func (p *policyCache) get(l Limit) string {
	if e := p.last.Load(); e != nil && e.lim == l {
		return e.s
	}
	s := `"` + p.name + `";q=` + strconv.Itoa(l.Rate) + ";w=" + strconv.FormatInt(ceilSeconds(l.Period), 10)
	p.last.Store(&policyEntry{lim: l, s: s})
	return s
}
