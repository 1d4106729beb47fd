package scheduler

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
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

// redisBackend keeps a job's keys under <ns>{<job>}: so that one script's
// keys share a Cluster hash slot. Safe for concurrent use.
type redisBackend struct {
	c  redis.UniversalClient
	ns string
}

var _ backend = (*redisBackend)(nil)

func (r *redisBackend) base(job string) string { return r.ns + "{" + job + "}:" }

func ms(d time.Duration) int64 { return max(d.Milliseconds(), 1) }

// historyTTL is the least time a job's history outlives its last run.
const historyTTL = 7 * 24 * time.Hour

func (r *redisBackend) claim(ctx context.Context, a claimArgs) (bool, uint64, []pendingTick, error) {
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
	res, err := claimScript.Run(ctx, r.c, []string{b + "tick:" + a.id, b + "pending", b + "fence", b + "paused"},
		a.owner, ms(a.ttl), score, a.id, fence, ms(a.pendingTTL), oldest, b+"tick:", pausable(a.id)).Result()
	if err != nil {
		return false, 0, nil, err
	}
	arr, ok := res.([]any)
	if !ok || len(arr) < 2 {
		return false, 0, nil, nil
	}
	tok, _ := arr[1].(int64)
	var ab []pendingTick
	for i := 2; i+1 < len(arr); i += 2 {
		id, _ := arr[i].(string)
		sc, _ := arr[i+1].(string)
		us, err := strconv.ParseFloat(sc, 64)
		if err != nil || id == "" {
			continue
		}
		ab = append(ab, pendingTick{id: id, tick: time.UnixMicro(int64(us))})
	}
	return true, uint64(tok), ab, nil
}

func (r *redisBackend) refresh(ctx context.Context, job, id, owner string, ttl time.Duration) (bool, error) {
	n, err := refreshScript.Run(ctx, r.c, []string{r.base(job) + "tick:" + id}, owner, ms(ttl)).Int()
	return n == 1, err
}

func (r *redisBackend) complete(ctx context.Context, job, id, owner string, doneTTL time.Duration, rec []byte, keep int) error {
	b := r.base(job)
	return completeScript.Run(ctx, r.c, []string{b + "tick:" + id, b + "pending", b + "history"},
		owner, ms(doneTTL), id, rec, keep, ms(max(doneTTL, historyTTL))).Err()
}

func (r *redisBackend) abandoned(ctx context.Context, job string, oldest time.Time, limit int) ([]pendingTick, error) {
	b := r.base(job)
	res, err := abandonedScript.Run(ctx, r.c, []string{b + "pending"},
		oldest.UnixMicro(), b+"tick:", limit).StringSlice()
	if err != nil {
		return nil, err
	}
	if len(res)%2 != 0 {
		return nil, fmt.Errorf("scheduler: abandoned: odd reply length %d", len(res))
	}
	out := make([]pendingTick, 0, len(res)/2)
	for i := 0; i < len(res); i += 2 {
		us, err := strconv.ParseFloat(res[i+1], 64)
		if err != nil {
			return nil, fmt.Errorf("scheduler: abandoned: bad score %q", res[i+1])
		}
		out = append(out, pendingTick{id: res[i], tick: time.UnixMicro(int64(us))})
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
