package redistest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

func TestSentinelFailoverKeepsClientWorking(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Sentinel deployment and fails over")
	}
	t.Parallel()
	ctx := ctxT(t, 60*time.Second)
	s := StartSentinel(t)
	require.Len(t, s.Nodes(), 2)
	require.Len(t, s.Sentinels(), 3)
	c := s.Client(t)
	for i := range 20 {
		require.NoError(t, c.Set(ctx, fmt.Sprint("k", i), i, 0).Err())
	}
	old := s.Primary()
	cur, err := s.CurrentPrimary(ctx)
	require.NoError(t, err)
	require.Equal(t, old, cur)

	start := time.Now()
	p, err := s.Failover(ctx)
	require.NoError(t, err)
	t.Logf("SENTINEL FAILOVER settled in %v", time.Since(start))
	require.Equal(t, p, s.Primary())
	cur, err = s.CurrentPrimary(ctx)
	require.NoError(t, err)
	require.Equal(t, p, cur)
	if p != old { // unless a spurious second failover (a stalled node) went back
		r, err := NodeRole(ctx, old.Addr())
		require.NoError(t, err)
		require.Equal(t, "slave", r.Role, "old primary after failover")
	}

	// The same client writes again, and the writes land on the new primary.
	require.Eventually(t, func() bool { return c.Set(ctx, "after", "yes", 0).Err() == nil }, 20*time.Second, 50*time.Millisecond)
	got, err := p.Client(t).Get(ctx, "after").Result()
	require.NoError(t, err)
	require.Equal(t, "yes", got)
	for i := range 20 {
		v, err := c.Get(ctx, fmt.Sprint("k", i)).Int()
		require.NoError(t, err)
		require.Equal(t, i, v, "key written before the failover")
	}
}

func TestSentinelForcedLagLosesAcknowledgedWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Sentinel deployment and fails over")
	}
	t.Parallel()
	ctx := ctxT(t, 60*time.Second)
	s := StartSentinel(t)
	c := s.Client(t)
	require.NoError(t, c.Set(ctx, "before", "kept", 0).Err())

	lag, err := s.BeginLag(ctx)
	require.NoError(t, err)
	t.Logf("lag: %d bytes of filler, %d bytes pending in the primary", lag.FillerBytes(), lag.PendingBytes())
	const n = 50
	acked := 0
	for i := range n {
		if c.Incr(ctx, "counter").Err() == nil {
			acked++
		}
		require.NoError(t, c.Set(ctx, fmt.Sprint("lost", i), i, 0).Err())
	}
	require.Equal(t, n, acked, "the old primary acknowledged every write")
	old := lag.Primary()
	start := time.Now()
	p, err := lag.FailOver(ctx)
	if err != nil {
		logSentinels(t, s)
	}
	require.NoError(t, err)
	t.Logf("forced-lag failover settled in %v", time.Since(start))

	// Every write acknowledged during the lag is gone; the earlier one is not.
	require.Eventually(t, func() bool { return c.Get(ctx, "before").Val() == "kept" }, 20*time.Second, 50*time.Millisecond)
	lost := 0
	for i := range n {
		if errors.Is(c.Get(ctx, fmt.Sprint("lost", i)).Err(), redis.Nil) {
			lost++
		}
	}
	require.Equal(t, n, lost, "got %d of %d acknowledged SETs lost, want all", lost, n)
	require.ErrorIs(t, c.Get(ctx, "counter").Err(), redis.Nil, "INCRs acknowledged by the old primary")
	// The deployment works again, with the old primary back as a replica.
	require.NoError(t, c.Set(ctx, "after", "ok", 0).Err())
	r, err := NodeRole(ctx, old.Addr())
	require.NoError(t, err)
	if p != old { // unless a spurious second failover promoted the restarted node
		require.Equal(t, "slave", r.Role)
		require.Equal(t, p.Addr(), r.MasterAddr)
	}
	require.Equal(t, p, s.Primary())
}

func TestSentinelLagAbortLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Sentinel deployment")
	}
	t.Parallel()
	ctx := ctxT(t, 60*time.Second)
	s := StartSentinel(t)
	c := s.Client(t)
	lag, err := s.BeginLag(ctx)
	require.NoError(t, err)
	require.NoError(t, c.Set(ctx, "k", "v", 0).Err())
	require.NoError(t, lag.Abort())
	require.Error(t, lag.Abort(), "second end of the same lag")
	require.NoError(t, WaitInSync(ctx, s.Primary(), s.Replicas()...))
	got, err := s.Replicas()[0].Client(t).Get(ctx, "k").Result()
	require.NoError(t, err)
	require.Equal(t, "v", got)
}

func TestSentinelZombiePrimary(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Sentinel deployment and fails over")
	}
	tests := []struct {
		name        string
		opts        []SentinelOption
		zombieTakes bool // the zombie acknowledges writes before its demotion
	}{
		{name: "plain", zombieTakes: true},
		{name: "min-replicas-to-write", opts: []SentinelOption{WithMinReplicasToWrite(1, time.Second)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := ctxT(t, 60*time.Second)
			s := StartSentinel(t, tc.opts...)
			c := s.Client(t)
			require.NoError(t, c.Set(ctx, "before", "kept", 0).Err())
			old := s.Primary()
			stale := old.Client(t, func(o *redis.Options) { o.MaxRetries = -1; o.ReadTimeout = time.Second })

			start := time.Now()
			z, err := s.BeginZombie(ctx)
			require.NoError(t, err)
			t.Logf("sentinels failed over in %v", time.Since(start))
			require.Equal(t, old, z.Old())
			require.NotEqual(t, old, z.New())
			require.NoError(t, z.Wake())

			// The stale client still reaches the old primary, which answers as one.
			r, err := NodeRole(ctx, old.Addr())
			require.NoError(t, err)
			require.Equal(t, "master", r.Role, "woken zombie before its demotion")
			err = stale.Set(ctx, "zombie", "write", 0).Err()
			if tc.zombieTakes {
				require.NoError(t, err, "write to the zombie")
			} else {
				require.Error(t, err)
				require.True(t, strings.HasPrefix(err.Error(), "NOREPLICAS"), "got %v, want NOREPLICAS", err)
			}

			woke := time.Now()
			require.NoError(t, z.WaitDemoted(ctx))
			t.Logf("zombie demoted %v after wake", time.Since(woke))
			r, err = NodeRole(ctx, old.Addr())
			require.NoError(t, err)
			require.Equal(t, "slave", r.Role)
			require.Equal(t, s.Primary().Addr(), r.MasterAddr)
			// The zombie's write did not survive; the earlier one did.
			require.ErrorIs(t, c.Get(ctx, "zombie").Err(), redis.Nil)
			require.ErrorIs(t, stale.Get(ctx, "zombie").Err(), redis.Nil, "read on the demoted zombie")
			require.Equal(t, "kept", c.Get(ctx, "before").Val())
			require.NoError(t, c.Set(ctx, "after", "ok", 0).Err())
		})
	}
}

func logSentinels(t *testing.T, s *Sentinel) {
	t.Helper()
	for _, n := range append(s.Sentinels(), s.Nodes()...) {
		b, _ := os.ReadFile(filepath.Join(n.Dir(), "redis.log"))
		t.Logf("==== %s log:\n%s", n.Addr(), b)
	}
}

func TestSentinelForcedLagTwoReplicas(t *testing.T) {
	if !Long() {
		t.Skipf("set %s=1: two-replica forced-lag failover", EnvLong)
	}
	t.Parallel()
	ctx := ctxT(t, 90*time.Second)
	s := StartSentinel(t, WithSentinelReplicas(2))
	require.Len(t, s.Replicas(), 2)
	c := s.Client(t)
	lag, err := s.BeginLag(ctx)
	require.NoError(t, err)
	require.Len(t, lag.Replicas(), 2)
	const n = 100
	for i := range n {
		require.NoError(t, c.Set(ctx, fmt.Sprint("lost", i), i, 0).Err())
	}
	p, err := lag.FailOver(ctx)
	if err != nil {
		logSentinels(t, s)
	}
	require.NoError(t, err)
	lost := 0
	for i := range n {
		if errors.Is(c.Get(ctx, fmt.Sprint("lost", i)).Err(), redis.Nil) {
			lost++
		}
	}
	require.Equal(t, n, lost)
	require.NoError(t, WaitInSync(ctx, p, s.Replicas()...))
	require.Len(t, s.Replicas(), 2)
}
