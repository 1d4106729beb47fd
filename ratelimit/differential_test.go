package ratelimit_test

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/ratelimit"
	"github.com/stretchr/testify/require"
)

// TestRedisMatchesLocal feeds the same random costs to the Redis script and
// to the in-process GCRA, on limits whose quota comes back too slowly to
// matter during the test, and requires identical decisions. It covers the
// script's single-limit fast path, its multi-limit path and Rates that do
// not divide the Period.
func TestRedisMatchesLocal(t *testing.T) {
	db := redistest.New(t)
	ctx := ctxT(t, 30*time.Second)
	sets := [][]ratelimit.Limit{
		{ratelimit.PerHour(7)},
		{{Rate: 3, Period: 24 * time.Hour, Burst: 11}},
		{ratelimit.PerHour(13), {Rate: 7, Period: 24 * time.Hour, Burst: 9}},
		{{Rate: 1, Period: time.Hour, Burst: 5}, ratelimit.PerHour(4), {Rate: 1000, Period: 24 * time.Hour, Burst: 6}},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i, limits := range sets {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			r, err := ratelimit.NewMulti(db.Client, limits, ratelimit.WithPrefix(db.Prefix+strconv.Itoa(i)+":"), ratelimit.WithDenyCache(0))
			require.NoError(t, err)
			l, err := ratelimit.NewLocalMulti(limits)
			require.NoError(t, err)
			maxBurst := 0
			for _, lim := range limits {
				maxBurst = max(maxBurst, lim.Burst)
			}
			for step := range 60 {
				n := rng.IntN(maxBurst + 3)
				rr, err := r.AllowN(ctx, "k", n)
				require.NoError(t, err)
				lr, err := l.AllowN(ctx, "k", n)
				require.NoError(t, err)
				require.Equalf(t, lr.Allowed, rr.Allowed, "step %d n=%d: allowed", step, n)
				require.Equalf(t, lr.Remaining, rr.Remaining, "step %d n=%d: remaining", step, n)
				require.Equalf(t, lr.Limit, rr.Limit, "step %d n=%d: deciding limit", step, n)
				require.Equalf(t, lr.RetryAfter < 0, rr.RetryAfter < 0, "step %d n=%d: never", step, n)
				// times differ only by the milliseconds between the two calls
				require.InDeltaf(t, float64(lr.RetryAfter), float64(rr.RetryAfter), float64(time.Second), "step %d n=%d: retry", step, n)
				require.InDeltaf(t, float64(lr.ResetAfter), float64(rr.ResetAfter), float64(time.Second), "step %d n=%d: reset", step, n)
			}
		})
	}
}
