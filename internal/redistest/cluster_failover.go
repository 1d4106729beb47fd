package redistest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// shardSlots returns the first and last slot of shard i, as StartCluster
// assigned them.
func (c *Cluster) shardSlots(i int) (lo, hi int) {
	per := clusterSlots / len(c.Masters)
	lo, hi = i*per, (i+1)*per-1
	if i == len(c.Masters)-1 {
		hi = clusterSlots - 1
	}
	return lo, hi
}

// ShardTag returns a hash tag ("{s<i>-<n>}") whose slot belongs to shard i
// (the slots first served by Masters[i]). Keys containing it live on that
// shard, wherever its master moves: put it in the keys a test writes before
// failing the shard over, e.g. db.Prefix + c.ShardTag(0) + ":k".
func (c *Cluster) ShardTag(i int) string {
	lo, hi := c.shardSlots(i)
	for n := 0; ; n++ {
		tag := "s" + strconv.Itoa(i) + "-" + strconv.Itoa(n)
		if s := int(crc16(tag) % clusterSlots); s >= lo && s <= hi {
			return "{" + tag + "}"
		}
	}
}

// crc16 is the CRC16-XMODEM Redis Cluster hashes keys with.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

func (c *Cluster) checkShard(i int) error {
	if i < 0 || i >= len(c.Masters) {
		return fmt.Errorf("redistest: shard %d out of range [0, %d)", i, len(c.Masters))
	}
	if len(c.Replicas[i]) == 0 {
		return fmt.Errorf("redistest: shard %d has no replica (start the cluster WithReplicas(1))", i)
	}
	return nil
}

// FailoverShard promotes the first replica of shard i with CLUSTER FAILOVER
// (the coordinated manual failover: the master stops accepting writes until
// the replica has its whole stream, so nothing is lost), and waits until
// every running node names the replica as the shard's master, a cluster
// client writes to the shard, the old master replicates the new one and the
// cluster is healthy. It then swaps Masters[i] and Replicas[i][0], so that
// Masters[i] is still the shard's master; calling it again fails back.
// A failover of a shard that FailoverShard failed over less than
// 2*cluster-node-timeout + 1s ago first waits that long (masters refuse to
// vote again sooner). FailoverShard must not run concurrently with other
// uses of c's fields.
func (c *Cluster) FailoverShard(ctx context.Context, i int) error {
	if err := c.checkShard(i); err != nil {
		return err
	}
	old, rep := c.Masters[i], c.Replicas[i][0]
	// A master refuses to vote twice for replicas of the same master within
	// 2*cluster-node-timeout: a failover of the shard right after the last
	// one would go without votes. Let that window pass first.
	if last, ok := c.lastFailover[i]; ok {
		t := time.NewTimer(time.Until(last.Add(2*c.nodeTimeout + time.Second)))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
	if err := WaitInSync(ctx, old, rep); err != nil {
		return err
	}
	// A manual failover that gets no votes gives up after 5s: ask again
	// until the replica is master.
	err := poll(ctx, func() error {
		if err := clusterFailover(ctx, rep); err != nil {
			return err
		}
		wctx, cancel := context.WithTimeout(ctx, 6*time.Second)
		defer cancel()
		return poll(wctx, func() error { return isMaster(wctx, rep) })
	})
	if err != nil {
		return fmt.Errorf("redistest: CLUSTER FAILOVER of shard %d: %w", i, err)
	}
	if err := c.waitShardMaster(ctx, i, rep); err != nil {
		return err
	}
	c.Masters[i], c.Replicas[i][0] = rep, old
	if c.lastFailover == nil {
		c.lastFailover = map[int]time.Time{}
	}
	c.lastFailover[i] = time.Now()
	if err := WaitInSync(ctx, rep, old); err != nil {
		return err
	}
	return c.WaitHealthy(ctx)
}

// TakeoverShard simulates the crash of shard i's master: it kills it
// (SIGKILL) and promotes the first replica at once with CLUSTER FAILOVER
// TAKEOVER (no agreement, no waiting for cluster-node-timeout), then waits as
// [Cluster.FailoverShard] does and swaps Masters[i] and Replicas[i][0]. Writes
// the replica had not received are lost. The old master stays stopped: bring
// it back with [Cluster.RejoinNode](ctx, c.Replicas[i][0]).
func (c *Cluster) TakeoverShard(ctx context.Context, i int) error {
	if err := c.checkShard(i); err != nil {
		return err
	}
	old, rep := c.Masters[i], c.Replicas[i][0]
	if err := old.Kill(); err != nil {
		return err
	}
	return c.takeover(ctx, i, old, rep)
}

func (c *Cluster) takeover(ctx context.Context, i int, old, rep *Server) error {
	if err := clusterFailover(ctx, rep, "TAKEOVER"); err != nil {
		return err
	}
	if err := c.waitShardMaster(ctx, i, rep); err != nil {
		return err
	}
	c.Masters[i], c.Replicas[i][0] = rep, old
	return c.WaitHealthy(ctx)
}

// BeginShardLag begins a forced replication lag on shard i (see [Lag]): it
// waits until the shard's replicas are in sync, pauses them and fills the
// master's replication stream with a key of the shard. Writes to the shard
// acknowledged from then on are lost by [Lag.FailOver], which kills the
// master, resumes the replicas and runs CLUSTER FAILOVER TAKEOVER on the
// first one, as [Cluster.TakeoverShard] does.
func (c *Cluster) BeginShardLag(ctx context.Context, i int) (*Lag, error) {
	if err := c.checkShard(i); err != nil {
		return nil, err
	}
	old, rep := c.Masters[i], c.Replicas[i][0]
	var running []*Server
	for _, r := range c.Replicas[i] {
		if r.Running() {
			running = append(running, r)
		}
	}
	l, err := beginLag(ctx, old, running, "redistest:lag-filler"+c.ShardTag(i))
	if err != nil {
		return nil, err
	}
	l.promote = func(ctx context.Context) (*Server, error) {
		if err := c.takeover(ctx, i, old, rep); err != nil {
			return nil, err
		}
		return rep, nil
	}
	return l, nil
}

// RejoinNode starts a stopped node of the cluster again (empty, unless the
// cluster was started WithServerOptions(WithPersistence())) and waits until
// it is a replica in sync with its master and the cluster is healthy. A
// former master whose slots moved while it was down comes back as a replica
// of the new owner.
func (c *Cluster) RejoinNode(ctx context.Context, s *Server) error {
	if err := s.Start(); err != nil {
		return err
	}
	var master *Server
	err := poll(ctx, func() error {
		r, err := NodeRole(ctx, s.Addr())
		if err != nil {
			return err
		}
		if r.Role != "slave" || r.LinkState != "connected" {
			return fmt.Errorf("%s is %s (link %q)", s.Addr(), r.Role, r.LinkState)
		}
		for _, m := range c.Masters {
			if m.Addr() == r.MasterAddr {
				master = m
				return nil
			}
		}
		return fmt.Errorf("%s replicates %s, not a master of the cluster", s.Addr(), r.MasterAddr)
	})
	if err != nil {
		return fmt.Errorf("redistest: rejoin %s: %w", s.Addr(), err)
	}
	if err := WaitInSync(ctx, master, s); err != nil {
		return err
	}
	return c.WaitHealthy(ctx)
}

func isMaster(ctx context.Context, s *Server) error {
	r, err := NodeRole(ctx, s.Addr())
	if err != nil {
		return err
	}
	if r.Role != "master" {
		return fmt.Errorf("%s is %s, not master", s.Addr(), r.Role)
	}
	return nil
}

// clusterFailover runs CLUSTER FAILOVER [mode] on the replica rep.
func clusterFailover(ctx context.Context, rep *Server, mode ...any) error {
	cl := adminClient(rep.Addr())
	defer cl.Close()
	args := append([]any{"CLUSTER", "FAILOVER"}, mode...)
	if err := cl.Do(ctx, args...).Err(); err != nil {
		return fmt.Errorf("redistest: %v on %s: %w", args, rep.Addr(), err)
	}
	return nil
}

// waitShardMaster waits until rep answers ROLE master, every running node's
// CLUSTER SHARDS names rep as the online master of shard i's slots, and a
// fresh cluster client writes a key of the shard on rep.
func (c *Cluster) waitShardMaster(ctx context.Context, i int, rep *Server) error {
	lo, _ := c.shardSlots(i)
	err := poll(ctx, func() error {
		if err := isMaster(ctx, rep); err != nil {
			return err
		}
		for _, s := range c.Nodes() {
			if !s.Running() {
				continue
			}
			if err := shardMasterIs(ctx, s, lo, rep); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redistest: shard %d not served by %s: %w", i, rep.Addr(), err)
	}
	var seeds []string
	for _, s := range c.Nodes() {
		if s.Running() {
			seeds = append(seeds, s.Addr())
		}
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: seeds, DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	defer cc.Close()
	key := "redistest:probe" + c.ShardTag(i)
	direct := adminClient(rep.Addr())
	defer direct.Close()
	err = poll(ctx, func() error {
		if err := cc.Set(ctx, key, rep.Addr(), time.Minute).Err(); err != nil {
			return err
		}
		if got, err := direct.Get(ctx, key).Result(); err != nil || got != rep.Addr() {
			return fmt.Errorf("probe on %s: got %q, %v", rep.Addr(), got, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redistest: shard %d not writable through a cluster client: %w", i, err)
	}
	return nil
}

// shardMasterIs reports nil when node s sees want as the online master of
// the shard holding slot.
func shardMasterIs(ctx context.Context, s *Server, slot int, want *Server) error {
	cl := adminClient(s.Addr())
	defer cl.Close()
	shards, err := cl.ClusterShards(ctx).Result()
	if err != nil {
		return err
	}
	for _, sh := range shards {
		for _, r := range sh.Slots {
			if int(r.Start) > slot || int(r.End) < slot {
				continue
			}
			for _, n := range sh.Nodes {
				if n.Role == "master" {
					if int(n.Port) == want.port && n.Health == "online" {
						return nil
					}
					return fmt.Errorf("%s: slot %d master is port %d (%s), want %d", s.Addr(), slot, n.Port, n.Health, want.port)
				}
			}
		}
	}
	return errors.New(s.Addr() + ": no shard serves slot " + strconv.Itoa(slot))
}
