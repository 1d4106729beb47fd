package lock_test

import (
	"context"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/lock"
)

// TestFence runs the same fencing rules against the Redis fence and the
// generic one over a TokenStore.
func TestFence(t *testing.T) {
	leakCheck(t)
	ctx := context.Background()
	db := redistest.New(t)
	rf, err := lock.NewFence(db.Client, db.Prefix)
	require.NoError(t, err)
	sf, err := lock.NewStoreFence(&lock.MemoryTokenStore{})
	require.NoError(t, err)
	for name, f := range map[string]*lock.Fence{"redis": rf, "store": sf} {
		t.Run("fence="+name, func(t *testing.T) {
			require.NoError(t, f.Check(ctx, "r", 10))
			require.NoError(t, f.Check(ctx, "r", 10), "the same holder may write again")
			require.NoError(t, f.Check(ctx, "r", 11))
			require.ErrorIs(t, f.Check(ctx, "r", 10), lock.ErrStaleToken)
			require.NoError(t, f.Check(ctx, "other", 1), "resources are independent")
			// Exact uint64 comparison, beyond float precision.
			require.NoError(t, f.Check(ctx, "big", math.MaxUint64-1))
			require.ErrorIs(t, f.Check(ctx, "big", math.MaxUint64-2), lock.ErrStaleToken)
			require.NoError(t, f.Check(ctx, "big", math.MaxUint64))
			require.NoError(t, f.Check(ctx, "big2", 1<<60+1))
			require.ErrorIs(t, f.Check(ctx, "big2", 1<<60), lock.ErrStaleToken)
			_, tok, err := f.Get(ctx, "r")
			require.NoError(t, err)
			require.EqualValues(t, 11, tok)
		})
	}
	t.Run("set", func(t *testing.T) {
		require.NoError(t, rf.Set(ctx, "doc", 5, "v5"))
		require.ErrorIs(t, rf.Set(ctx, "doc", 4, "v4"), lock.ErrStaleToken)
		v, tok, err := rf.Get(ctx, "doc")
		require.NoError(t, err)
		require.Equal(t, "v5", v)
		require.EqualValues(t, 5, tok)
		v, tok, err = rf.Get(ctx, "missing")
		require.NoError(t, err)
		require.Empty(t, v)
		require.Zero(t, tok)
		require.Error(t, sf.Set(ctx, "doc", 5, "x"), "a store fence cannot store values")
	})
}
