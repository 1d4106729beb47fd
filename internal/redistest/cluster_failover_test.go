package redistest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

func TestCRC16(t *testing.T) {
	// The check value of CRC16-XMODEM, as in the Redis Cluster specification.
	require.Equal(t, uint16(0x31C3), crc16("123456789"))
}

func TestClusterShardFailovers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 6-node cluster and fails shards over")
	}
	t.Parallel()
	ctx := ctxT(t, 120*time.Second)
	cl := StartCluster(t, WithReplicas(1))
	// go-redis reloads the slot map on MOVED, but not when the master it knows
	// refuses connections: after a crash it waits for ClusterStateReloadInterval
	// (default 60s). Fault tests that kill masters lower it.
	c := cl.Client(t, func(o *redis.ClusterOptions) { o.ClusterStateReloadInterval = time.Second })
	for i := range cl.Masters {
		tag := cl.ShardTag(i)
		lo, hi := cl.shardSlots(i)
		slot, err := cl.Masters[0].Client(t).Do(ctx, "CLUSTER", "KEYSLOT", "x"+tag+"y").Int()
		require.NoError(t, err)
		require.True(t, slot >= lo && slot <= hi, "tag %s: slot %d not in shard %d [%d, %d]", tag, slot, i, lo, hi)
	}
	keys := func(shard int) []string {
		ks := make([]string, 20)
		for i := range ks {
			ks[i] = fmt.Sprintf("k%s%d", cl.ShardTag(shard), i)
		}
		return ks
	}
	write := func(ks []string) {
		for i, k := range ks {
			require.NoError(t, c.Set(ctx, k, i, 0).Err())
		}
	}
	readable := func(ks []string) {
		t.Helper()
		for i, k := range ks {
			require.Eventually(t, func() bool {
				v, err := c.Get(ctx, k).Int()
				return err == nil && v == i
			}, 20*time.Second, 50*time.Millisecond, "key %s", k)
		}
	}

	t.Run("CLUSTER FAILOVER and back", func(t *testing.T) {
		ks := keys(0)
		write(ks)
		old, rep := cl.Masters[0], cl.Replicas[0][0]
		start := time.Now()
		require.NoError(t, cl.FailoverShard(ctx, 0))
		t.Logf("shard failover settled in %v", time.Since(start))
		require.Equal(t, rep, cl.Masters[0])
		require.Equal(t, old, cl.Replicas[0][0])
		readable(ks)
		require.NoError(t, c.Set(ctx, ks[0], 0, 0).Err(), "write after failover")
		require.NoError(t, cl.FailoverShard(ctx, 0))
		require.Equal(t, old, cl.Masters[0])
		readable(ks)
	})

	t.Run("forced lag loses acknowledged writes", func(t *testing.T) {
		kept := keys(1)
		write(kept)
		lag, err := cl.BeginShardLag(ctx, 1)
		require.NoError(t, err)
		const n = 30
		for i := range n {
			require.NoError(t, c.Set(ctx, fmt.Sprintf("lost%s%d", cl.ShardTag(1), i), i, 0).Err())
		}
		old := lag.Primary()
		start := time.Now()
		p, err := lag.FailOver(ctx)
		require.NoError(t, err)
		t.Logf("forced-lag takeover settled in %v", time.Since(start))
		require.Equal(t, p, cl.Masters[1])
		require.Equal(t, old, cl.Replicas[1][0])
		require.False(t, old.Running())
		readable(kept)
		lost := 0
		for i := range n {
			var err error
			require.Eventually(t, func() bool {
				err = c.Get(ctx, fmt.Sprintf("lost%s%d", cl.ShardTag(1), i)).Err()
				return err == nil || errors.Is(err, redis.Nil)
			}, 20*time.Second, 50*time.Millisecond)
			if errors.Is(err, redis.Nil) {
				lost++
			}
		}
		require.Equal(t, n, lost, "got %d of %d acknowledged writes lost, want all", lost, n)
		require.NoError(t, cl.RejoinNode(ctx, old))
		r, err := NodeRole(ctx, old.Addr())
		require.NoError(t, err)
		require.Equal(t, p.Addr(), r.MasterAddr)
	})

	t.Run("TAKEOVER after a crash keeps replicated keys", func(t *testing.T) {
		ks := keys(2)
		write(ks)
		require.NoError(t, WaitInSync(ctx, cl.Masters[2], cl.Replicas[2]...))
		old := cl.Masters[2]
		require.NoError(t, cl.TakeoverShard(ctx, 2))
		require.False(t, old.Running())
		readable(ks)
		require.NoError(t, cl.RejoinNode(ctx, old))
		require.NoError(t, cl.WaitHealthy(ctx))
		readable(ks)
	})
}
