package ratelimit_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/ratelimit"
)

// Helpers of the failover tests (failover_test.go): a load driver that
// records every decision of several limiter replicas on one key, and the
// over-admission count against the GCRA bound.

// faultLimit is the limit the failover tests enforce: 10/s, bursts of 40.
// Demand (every replica's goroutines asking every few ms) is far above it,
// so without a fault the allowed count is exactly the bound, and any state
// Redis loses shows up as over-admissions.
var faultLimit = ratelimit.Limit{Rate: 10, Period: time.Second, Burst: 40}

// faultClientTimeouts are the client settings of the failover tests: short
// timeouts so that a dead primary is noticed quickly, one retry.
const (
	faultDialTimeout = 500 * time.Millisecond
	faultIOTimeout   = 300 * time.Millisecond
)

func sentinelClient(t *testing.T, s *redistest.Sentinel) *redis.Client {
	return s.Client(t, func(o *redis.FailoverOptions) {
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = faultDialTimeout, faultIOTimeout, faultIOTimeout
		o.MaxRetries = 1
	})
}

func clusterClient(t *testing.T, c *redistest.Cluster) *redis.ClusterClient {
	return c.Client(t, func(o *redis.ClusterOptions) {
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = faultDialTimeout, faultIOTimeout, faultIOTimeout
		o.MaxRetries = 1
		// go-redis does not reload the slot map when a dead master refuses
		// connections; the default interval is a minute.
		o.ClusterStateReloadInterval = 200 * time.Millisecond
	})
}

// decisionRec is one AllowN call.
type decisionRec struct {
	start, end time.Time
	allowed    bool
	source     ratelimit.Source
	err        error
}

// loadRun drives limiter replicas against one key until stop.
type loadRun struct {
	lim   ratelimit.Limit
	stopc chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	recs  []decisionRec
	calls atomic.Int64
}

// startLoad starts perReplica goroutines per limiter, each asking for key
// every 5 ms.
func startLoad(ctx context.Context, lim ratelimit.Limit, limiters []*ratelimit.RedisLimiter, key string, perReplica int) *loadRun {
	r := &loadRun{lim: lim, stopc: make(chan struct{})}
	for _, l := range limiters {
		for range perReplica {
			r.wg.Go(func() {
				for {
					select {
					case <-r.stopc:
						return
					case <-ctx.Done():
						return
					default:
					}
					start := time.Now()
					res, err := l.Allow(ctx, key)
					rec := decisionRec{start: start, end: time.Now(), allowed: err == nil && res.Allowed, source: res.Source, err: err}
					r.mu.Lock()
					r.recs = append(r.recs, rec)
					r.mu.Unlock()
					r.calls.Add(1)
					time.Sleep(5 * time.Millisecond)
				}
			})
		}
	}
	return r
}

// waitCalls waits until n more calls have been made.
func (r *loadRun) waitCalls(t *testing.T, n int64) {
	t.Helper()
	target := r.calls.Load() + n
	require.Eventually(t, func() bool { return r.calls.Load() >= target }, 60*time.Second, 5*time.Millisecond)
}

// sinceFallback returns how long ago the last fallback answer ended (a
// large duration if there was none).
func (r *loadRun) sinceFallback() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.recs) - 1; i >= 0; i-- {
		if r.recs[i].source == ratelimit.SourceFallback {
			return time.Since(r.recs[i].end)
		}
	}
	return time.Hour
}

func (r *loadRun) stop() {
	close(r.stopc)
	r.wg.Wait()
}

// loadSummary counts a run's decisions against the GCRA bound.
type loadSummary struct {
	calls, errors              int
	allowed, allowedRedis      int
	allowedFallback            int
	fallback                   int
	bound                      int // burst + rate × elapsed
	over, overRedis            int // allowed beyond the bound (total, Redis-decided only)
	elapsed, recovery, maxCall time.Duration
	firstErr                   error
}

// summarize counts the decisions; faultStart is when the fault began:
// recovery is from then to the end of the last fallback answer.
func (r *loadRun) summarize(faultStart time.Time) loadSummary {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s loadSummary
	if len(r.recs) == 0 {
		return s
	}
	first, last := r.recs[0].start, r.recs[0].end
	for _, d := range r.recs {
		s.calls++
		if d.start.Before(first) {
			first = d.start
		}
		if d.end.After(last) {
			last = d.end
		}
		if lat := d.end.Sub(d.start); lat > s.maxCall {
			s.maxCall = lat
		}
		if d.err != nil {
			s.errors++
			if s.firstErr == nil {
				s.firstErr = d.err
			}
			continue
		}
		if d.source == ratelimit.SourceFallback {
			s.fallback++
			if rec := d.end.Sub(faultStart); rec > s.recovery {
				s.recovery = rec
			}
		}
		if d.allowed {
			s.allowed++
			switch d.source {
			case ratelimit.SourceRedis:
				s.allowedRedis++
			case ratelimit.SourceFallback:
				s.allowedFallback++
			}
		}
	}
	s.elapsed = last.Sub(first)
	s.bound = r.lim.Burst + int(int64(r.lim.Rate)*int64(s.elapsed)/int64(r.lim.Period))
	s.over = max(0, s.allowed-s.bound)
	s.overRedis = max(0, s.allowedRedis-s.bound)
	return s
}

func (s loadSummary) String() string {
	return fmt.Sprintf("calls=%d errors=%d allowed=%d (redis %d, fallback %d) bound=%d over-admissions=%d (redis-decided %d) fallback-answers=%d recovery=%v max-call=%v elapsed=%v",
		s.calls, s.errors, s.allowed, s.allowedRedis, s.allowedFallback, s.bound, s.over, s.overRedis, s.fallback,
		s.recovery.Round(time.Millisecond), s.maxCall.Round(time.Millisecond), s.elapsed.Round(time.Millisecond))
}

// shardKey returns a limiter key whose Redis key ("<prefix>{<key>}") lands
// on shard i of c: the limiter wraps the key in braces, so the key is the
// shard's hash tag without them.
func shardKey(c *redistest.Cluster, i int) string {
	return strings.Trim(c.ShardTag(i), "{}")
}

// warmForPause loads l's script and opens 4 connections to the node serving
// key, so that copies go-redis re-sends while that node is paused go out on
// live connections (it does not re-send after a timeout while dialling one).
func warmForPause(t *testing.T, ctx context.Context, c redis.UniversalClient, l *ratelimit.RedisLimiter, key string) {
	t.Helper()
	_, err := l.AllowN(ctx, key, 0)
	require.NoError(t, err)
	require.NoError(t, redistest.FillPool(ctx, c, l.Key(key), 4))
}

// repeats is how many times a long fault test repeats its scenario.
func repeats() int {
	if redistest.Long() {
		return 5
	}
	return 1
}
