package cache_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/cache"
)

// TestInspector: replicas fill their local tiers; the inspector sees the
// stored entries and the subscribed caches, and Invalidate drops the key
// from Redis and from every replica's local tier.
func TestInspector(t *testing.T) {
	for _, rb := range redisBackends {
		t.Run("deploy="+rb.name, func(t *testing.T) {
			leakCheck(t)
			db := rb.mk(t)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var replicas []*cache.Cache[string]
			for range 2 {
				c, err := cache.New[string](cache.WithRedis(db.NewClient(t)), cache.WithPrefix(db.Prefix),
					cache.WithLocal(100, time.Hour), cache.WithTTL(time.Hour, 0), cache.WithNegativeTTL(time.Minute))
				require.NoError(t, err)
				t.Cleanup(func() { _ = c.Close() })
				replicas = append(replicas, c)
			}
			loads := 0
			for _, c := range replicas {
				v, err := c.Fetch(ctx, "k", func(context.Context) (string, error) { loads++; return "v1", nil })
				require.NoError(t, err)
				require.Equal(t, "v1", v)
			}
			require.Equal(t, 1, loads, "the second replica reads Redis")
			_, err := replicas[0].Fetch(ctx, "gone", func(context.Context) (string, error) { return "", cache.ErrNotFound })
			require.ErrorIs(t, err, cache.ErrNotFound)

			in, err := cache.NewInspector(db.Client, cache.WithPrefix(db.Prefix))
			require.NoError(t, err)
			st, err := in.Stats(ctx)
			require.NoError(t, err)
			assert.Equal(t, int64(2), st.Keys)
			assert.Equal(t, int64(2), st.Subscribers)

			k, err := in.Key(ctx, "k")
			require.NoError(t, err)
			assert.True(t, k.Exists)
			assert.True(t, k.Fresh)
			assert.False(t, k.NotFound)
			assert.False(t, k.Loading)
			assert.Equal(t, len(`"v1"`), k.Size)
			assert.Greater(t, k.TTL, 50*time.Minute)
			assert.WithinDuration(t, time.Now().Add(time.Hour), k.SoftExpiry, time.Minute)
			neg, err := in.Key(ctx, "gone")
			require.NoError(t, err)
			assert.True(t, neg.NotFound)
			none, err := in.Key(ctx, "nothing")
			require.NoError(t, err)
			assert.False(t, none.Exists)
			_, err = in.Key(ctx, "")
			assert.ErrorIs(t, err, cache.ErrEmptyKey)

			// the replicas' own writes published invalidations already: wait
			// for the inspector's two
			before := make([]uint64, len(replicas))
			for i, c := range replicas {
				before[i] = c.Stats().Invalidations
			}
			n, err := in.Invalidate(ctx, "k", "nothing")
			require.NoError(t, err)
			assert.Equal(t, 1, n)
			for i, c := range replicas {
				require.Eventually(t, func() bool { return c.Stats().Invalidations >= before[i]+2 }, 10*time.Second, 5*time.Millisecond,
					"replica %d got no invalidation", i)
				_, ok, err := c.Get(ctx, "k")
				require.NoError(t, err)
				assert.False(t, ok, "replica %d still holds the key", i)
			}
			v, err := replicas[1].Fetch(ctx, "k", func(context.Context) (string, error) { loads++; return "v2", nil })
			require.NoError(t, err)
			assert.Equal(t, "v2", v)
		})
	}
}

func TestInspectorOptions(t *testing.T) {
	_, err := cache.NewInspector(nil)
	assert.ErrorIs(t, err, cache.ErrBadOption)
}
