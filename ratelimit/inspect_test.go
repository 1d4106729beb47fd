package ratelimit_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/ratelimit"
)

// TestInspector reads the state real limiters left in Redis, on a single
// node and on a Cluster, with both algorithms, with and without the limits,
// and resets it.
func TestInspector(t *testing.T) {
	for _, mk := range []func(testing.TB) *redistest.DB{redistest.New, redistest.NewCluster} {
		db := mk(t)
		for _, alg := range []ratelimit.Algorithm{ratelimit.GCRA, ratelimit.SlidingWindow} {
			name := "single"
			if db.Cluster {
				name = "cluster"
			}
			t.Run(name+"/alg="+alg.String(), func(t *testing.T) {
				ctx := ctxT(t, 30*time.Second)
				prefix := db.Prefix + alg.String() + ":"
				limits := []ratelimit.Limit{ratelimit.PerMinute(10), ratelimit.PerHour(100)}
				l := newRedis(t, db.Client, prefix, limits, ratelimit.WithAlgorithm(alg))
				for range 4 {
					res, err := l.Allow(ctx, "user:1")
					require.NoError(t, err)
					require.True(t, res.Allowed)
				}
				in := l.Inspector()
				st, err := in.Get(ctx, "user:1")
				require.NoError(t, err)
				assert.True(t, st.Exists)
				assert.True(t, st.Known)
				assert.Equal(t, 6, st.Remaining, "10/min with 4 spent")
				assert.Equal(t, ratelimit.PerMinute(10), st.Limit)
				assert.Greater(t, st.ResetAfter, time.Duration(0))
				assert.Greater(t, st.TTL, time.Duration(0))
				assert.Equal(t, l.Key("user:1"), st.RedisKey)

				// Get consumed nothing.
				again, err := in.Get(ctx, "user:1")
				require.NoError(t, err)
				assert.Equal(t, 6, again.Remaining)

				// An inspector built from options alone, as the CLI does.
				raw, err := ratelimit.NewInspector(db.Client, nil, ratelimit.WithPrefix(prefix), ratelimit.WithAlgorithm(alg))
				require.NoError(t, err)
				rs, err := raw.Get(ctx, "user:1")
				require.NoError(t, err)
				assert.True(t, rs.Exists)
				assert.False(t, rs.Known)
				assert.Equal(t, -1, rs.Remaining)
				assert.Greater(t, rs.ResetAfter, time.Duration(0))
				withLimits, err := ratelimit.NewInspector(db.Client, limits, ratelimit.WithPrefix(prefix), ratelimit.WithAlgorithm(alg))
				require.NoError(t, err)
				ws, err := withLimits.Get(ctx, "user:1")
				require.NoError(t, err)
				assert.Equal(t, 6, ws.Remaining)

				missing, err := in.Get(ctx, "user:2")
				require.NoError(t, err)
				assert.False(t, missing.Exists)
				assert.Equal(t, 10, missing.Remaining)

				deleted, err := in.Reset(ctx, "user:1")
				require.NoError(t, err)
				assert.True(t, deleted)
				st, err = in.Get(ctx, "user:1")
				require.NoError(t, err)
				assert.False(t, st.Exists)
				assert.Equal(t, 10, st.Remaining)
				deleted, err = in.Reset(ctx, "user:1")
				require.NoError(t, err)
				assert.False(t, deleted)
			})
		}
	}
}

// TestInspectorResetUnblocks: a key denied on one replica is allowed again
// on another after a reset (the replica's deny cache is off, as it would be
// for a replica that never saw the deny).
func TestInspectorResetUnblocks(t *testing.T) {
	db := redistest.New(t)
	ctx := ctxT(t, 30*time.Second)
	lim := ratelimit.PerHour(2)
	a := newRedis(t, db.Client, db.Prefix, []ratelimit.Limit{lim})
	b := newRedis(t, db.NewClient(t), db.Prefix, []ratelimit.Limit{lim}, ratelimit.WithDenyCache(0))
	for range 2 {
		res, err := a.Allow(ctx, "k")
		require.NoError(t, err)
		require.True(t, res.Allowed)
	}
	res, err := b.Allow(ctx, "k")
	require.NoError(t, err)
	require.False(t, res.Allowed)
	_, err = a.Inspector().Reset(ctx, "k")
	require.NoError(t, err)
	res, err = b.Allow(ctx, "k")
	require.NoError(t, err)
	assert.True(t, res.Allowed)
	// and the resetting replica's own deny cache was cleared too
	res, err = a.Allow(ctx, "k")
	require.NoError(t, err)
	assert.True(t, res.Allowed)
}

func TestInspectorArguments(t *testing.T) {
	_, err := ratelimit.NewInspector(nil, nil)
	assert.ErrorIs(t, err, ratelimit.ErrInvalidArgument)
	db := redistest.New(t)
	in, err := ratelimit.NewInspector(db.Client, nil)
	require.NoError(t, err)
	_, err = in.Get(t.Context(), "")
	assert.ErrorIs(t, err, ratelimit.ErrInvalidArgument)
	_, err = ratelimit.NewInspector(db.Client, []ratelimit.Limit{{Rate: 0, Period: time.Second, Burst: 1}})
	assert.ErrorIs(t, err, ratelimit.ErrInvalidLimit)
}

func TestParseLimit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ratelimit.Limit
		err  bool
	}{
		{in: "100/1s", want: ratelimit.PerSecond(100)},
		{in: "100/s", want: ratelimit.PerSecond(100)},
		{in: "10/1m burst 20", want: ratelimit.PerMinute(10).WithBurst(20)},
		{in: "5000/h", want: ratelimit.PerHour(5000)},
		{in: "3/500ms", want: ratelimit.Limit{Rate: 3, Period: 500 * time.Millisecond, Burst: 3}},
		{in: "100", err: true},
		{in: "x/1s", err: true},
		{in: "1/forever", err: true},
		{in: "0/1s", err: true},
		{in: "1/1s burst x", err: true},
		{in: "", err: true},
	} {
		got, err := ratelimit.ParseLimit(tc.in)
		if tc.err {
			if err == nil || !errors.Is(err, ratelimit.ErrInvalidLimit) {
				t.Errorf("ParseLimit(%q): got %v, %v; want an ErrInvalidLimit", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseLimit(%q): got %v, %v; want %v", tc.in, got, err, tc.want)
		}
		// the inverse of String
		back, err := ratelimit.ParseLimit(got.String())
		if err != nil || back != got {
			t.Errorf("ParseLimit(%q.String()): got %v, %v", tc.in, back, err)
		}
	}
}

// FuzzParseLimit: never panics; what parses is valid and round-trips.
func FuzzParseLimit(f *testing.F) {
	for _, s := range []string{"100/1s", "10/1m burst 20", "5/h", "1/1µs", "x", "1/", "/1s burst 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ratelimit.ParseLimit(s)
		if err != nil {
			return
		}
		if err := l.Validate(); err != nil {
			t.Fatalf("ParseLimit(%q) = %v, invalid: %v", s, l, err)
		}
		back, err := ratelimit.ParseLimit(l.String())
		if err != nil || back != l {
			t.Fatalf("round trip of %v: %v, %v", l, back, err)
		}
	})
}
