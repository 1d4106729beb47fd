package scheduler

import (
	"context"
	_ "embed"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/internal/coalesce"
	"github.com/outrigger-dev/outrigger/internal/rediserr"
)

var (
	//go:embed scripts/claim.lua
	claimLua string
	//go:embed scripts/refresh.lua
	refreshLua string
	//go:embed scripts/complete.lua
	completeLua string
	//go:embed scripts/abandoned.lua
	abandonedLua string

	claimScript     = redis.NewScript(claimLua)
	refreshScript   = redis.NewScript(refreshLua)
	completeScript  = redis.NewScript(completeLua)
	abandonedScript = redis.NewScript(abandonedLua)
)

// scripts are the scripts a redisBackend runs: the embedded ones (tests
// swap one for a broken one through export_test.go).
type scripts struct {
	claim, refresh, complete, abandoned *redis.Script
}

var schedulerScripts = scripts{claim: claimScript, refresh: refreshScript, complete: completeScript, abandoned: abandonedScript}

// redisBackend keeps a job's keys under <ns>{<job>}: so that one script's
// keys share a Cluster hash slot. Safe for concurrent use. Replies of the
// wrong shape are returned as rediserr.BadReply errors.
type redisBackend struct {
	c     redis.UniversalClient
	ns    string
	sc    scripts
	calls *coalesce.Group[*coalesce.Script] // claims and completions share round trips
}

// newRedisBackend returns the backend of New.
func newRedisBackend(c redis.UniversalClient, ns string) *redisBackend {
	return &redisBackend{c: c, ns: ns, sc: schedulerScripts,
		calls: coalesce.NewScripts(c, 1, maxPipeline)}
}

// maxPipeline caps how many concurrent claims and completions share one
// pipeline. One pipeline is in flight at a time: calls that arrive
// meanwhile wait at most a round trip and go out together, which costs a
// scheduler's Redis client far fewer system calls and wake-ups than a
// round trip per call (and jobs due at the same moment start sooner).
const maxPipeline = 128

// run executes script once. Concurrent calls (the claims of jobs due at the
// same moment, their completions) share round trips: while pipelines are in
// flight, calls queue and go out together in the next one (see
// internal/coalesce). A call still queued when ctx ends is not sent.
func (r *redisBackend) run(ctx context.Context, script *redis.Script, keys []string, args ...any) (any, error) {
	call := &coalesce.Script{Script: script, Keys: keys, Args: args}
	if err := r.calls.Do(ctx, call); err != nil {
		return nil, err
	}
	return call.Val, call.Err
}

var _ backend = (*redisBackend)(nil)

func (r *redisBackend) base(job string) string { return r.ns + "{" + job + "}:" }

// hashTag returns the part of key Redis Cluster hashes to pick its slot:
// the text between the first '{' and the next '}' when not empty, else the
// whole key.
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if n := strings.IndexByte(key[i+1:], '}'); n > 0 {
			return key[i+1 : i+1+n]
		}
	}
	return key
}

func ms(d time.Duration) int64 { return max(d.Milliseconds(), 1) }

// historyTTL is the least time a job's history outlives its last run.
const historyTTL = 7 * 24 * time.Hour

func (r *redisBackend) claim(ctx context.Context, a claimArgs) (claimResult, error) {
	b := r.base(a.job)
	score, oldest := "", ""
	if a.pending {
		score = strconv.FormatInt(a.tick.UnixMicro(), 10)
		oldest = strconv.FormatInt(a.oldest.UnixMicro(), 10)
	}
	fence := "0"
	if a.fence {
		fence = "1"
	}
	keys := []string{b + "tick:" + a.id, b + "pending", b + "fence", b + "paused"}
	args := []any{a.owner, ms(a.ttl), score, a.id, fence, ms(a.pendingTTL), oldest, b + "tick:", pausable(a.id)}
	if a.lease != nil {
		keys = append(keys, a.lease.key, a.lease.fence)
		args = append(args, a.lease.owner, ms(a.ttl))
	}
	sent := time.Now()
	res, err := r.run(ctx, r.sc.claim, keys, args...)
	if err != nil {
		return claimResult{}, err
	}
	if n, ok := res.(int64); ok && (n == 0 || n == -1) {
		// another owner holds or completed it, or (-1) the job is paused
		return claimResult{}, nil
	}
	arr, ok := res.([]any)
	if !ok || len(arr) < 2 || len(arr)%2 != 0 {
		return claimResult{}, rediserr.BadReply("claim reply %v (%T), want 0, -1 or {status, token, id, score, ...}", res, res)
	}
	status, ok1 := arr[0].(int64)
	tok, ok2 := arr[1].(int64)
	want := int64(1) // no lease asked
	if a.lease != nil {
		want = 2 // taken, or 3: held
	}
	if !ok1 || !ok2 || tok < 0 || status != want && !(a.lease != nil && (status == 3 || status == 4)) ||
		status == 2 && tok == 0 || status >= 3 && tok != 0 {
		return claimResult{}, rediserr.BadReply("claim reply %v, want {%d, token, ...}", arr, want)
	}
	out := claimResult{ok: true, token: uint64(tok), sent: sent}
	switch status {
	case 2:
		out.lease = leaseTaken
	case 3:
		out.lease = leaseHeld
	case 4:
		out.lease = leaseRefused
	}
	if len(arr) > 2 {
		out.abandoned = make([]pendingTick, 0, (len(arr)-2)/2)
	}
	for i := 2; i+1 < len(arr); i += 2 {
		id, _ := arr[i].(string)
		sc, _ := arr[i+1].(string)
		p, err := parsePending(id, sc)
		if err != nil {
			return claimResult{}, err
		}
		out.abandoned = append(out.abandoned, p)
	}
	return out, nil
}

// parsePending reads a pending tick as claim.lua and abandoned.lua return
// it: its id and its score, the tick in unix micros.
func parsePending(id, score string) (pendingTick, error) {
	us, err := strconv.ParseFloat(score, 64)
	if err != nil || id == "" {
		return pendingTick{}, rediserr.BadReply("pending tick %q with score %q", id, score)
	}
	return pendingTick{id: id, tick: time.UnixMicro(int64(us))}, nil
}

func (r *redisBackend) refresh(ctx context.Context, job, id, owner string, ttl time.Duration) (bool, error) {
	n, err := r.sc.refresh.Run(ctx, r.c, []string{r.base(job) + "tick:" + id}, owner, ms(ttl)).Int()
	if err == nil && n != 0 && n != 1 {
		err = rediserr.BadReply("refresh reply %d, want 0 or 1", n)
	}
	return n == 1, err
}

func (r *redisBackend) complete(ctx context.Context, a completeArgs) (bool, error) {
	b := r.base(a.job)
	keys := []string{b + "tick:" + a.id, b + "pending", b + "history"}
	args := []any{a.owner, ms(a.doneTTL), a.id, a.rec, a.keep, ms(max(a.doneTTL, historyTTL))}
	if l := a.lease; l != nil {
		keys = append(keys, l.Lock, l.Queue, l.Tombstone)
		args = append(args, l.Owner)
	}
	v, err := r.run(ctx, r.sc.complete, keys, args...)
	n, ok := v.(int64)
	if err == nil && !ok {
		err = rediserr.BadReply("complete reply %v (%T), want an integer", v, v)
	}
	if err == nil && (n < 0 || n > 3 || n > 1 && a.lease == nil) {
		err = rediserr.BadReply("complete reply %d, want 0 or 1 (+2 with a lease)", n)
	}
	return err == nil && n >= 2, err
}

func (r *redisBackend) abandoned(ctx context.Context, job string, oldest time.Time, limit int) ([]pendingTick, error) {
	b := r.base(job)
	res, err := r.sc.abandoned.Run(ctx, r.c, []string{b + "pending"},
		oldest.UnixMicro(), b+"tick:", limit).StringSlice()
	if err != nil {
		return nil, err
	}
	if len(res)%2 != 0 {
		return nil, rediserr.BadReply("abandoned reply of odd length %d", len(res))
	}
	out := make([]pendingTick, 0, len(res)/2)
	for i := 0; i < len(res); i += 2 {
		p, err := parsePending(res[i], res[i+1])
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func (r *redisBackend) history(ctx context.Context, job string, n int) ([][]byte, error) {
	vals, err := r.c.LRange(ctx, r.base(job)+"history", 0, int64(n-1)).Result()
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(vals))
	for i, v := range vals {
		out[i] = []byte(v)
	}
	return out, nil
}
