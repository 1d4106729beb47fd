package redistest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const clusterSlots = 16384

// ClusterOption configures a cluster started by [StartCluster].
type ClusterOption func(*clusterConfig)

type clusterConfig struct {
	masters     int
	replicas    int
	nodeTimeout time.Duration
	server      []ServerOption
}

// WithMasters sets the number of masters (default 3, at least 1).
func WithMasters(n int) ClusterOption { return func(c *clusterConfig) { c.masters = n } }

// WithReplicas sets the number of replicas per master (default 0).
func WithReplicas(n int) ClusterOption { return func(c *clusterConfig) { c.replicas = n } }

// WithNodeTimeout sets cluster-node-timeout (default 2s): how long a node may
// be unreachable before the cluster considers it failed.
func WithNodeTimeout(d time.Duration) ClusterOption {
	return func(c *clusterConfig) { c.nodeTimeout = d }
}

// WithServerOptions applies options to every node of the cluster.
func WithServerOptions(opts ...ServerOption) ClusterOption {
	return func(c *clusterConfig) { c.server = append(c.server, opts...) }
}

// Cluster is a Redis Cluster of servers started by the harness on loopback
// ports. Masters[i] serves the i-th equal share of the slots; Replicas[i]
// replicate Masters[i].
type Cluster struct {
	Masters  []*Server
	Replicas [][]*Server

	nodeTimeout  time.Duration
	lastFailover map[int]time.Time // per shard: when FailoverShard's last failover ended
}

// Addrs returns the masters' addresses, the seeds for a cluster client.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Masters))
	for i, s := range c.Masters {
		addrs[i] = s.Addr()
	}
	return addrs
}

// Nodes returns every server of the cluster, masters first.
func (c *Cluster) Nodes() []*Server {
	nodes := append([]*Server(nil), c.Masters...)
	for _, r := range c.Replicas {
		nodes = append(nodes, r...)
	}
	return nodes
}

// Client returns a new cluster client, closed when the test ends.
func (c *Cluster) Client(tb testing.TB, mods ...func(*redis.ClusterOptions)) *redis.ClusterClient {
	tb.Helper()
	o := &redis.ClusterOptions{Addrs: c.Addrs()}
	for _, m := range mods {
		m(o)
	}
	cc := redis.NewClusterClient(o)
	tb.Cleanup(func() { _ = cc.Close() })
	return cc
}

// StartCluster starts a new Redis Cluster (3 masters by default) and stops it
// when the test ends. It returns once every node reports cluster_state:ok and
// agrees on the slot map. It skips the test (fails it in CI) when
// redis-server is not installed.
func StartCluster(tb testing.TB, opts ...ClusterOption) *Cluster {
	tb.Helper()
	c, err := startCluster(opts...)
	if c != nil {
		tb.Cleanup(c.shutdown)
	}
	if err != nil {
		if errors.Is(err, ErrNoServerBinary) {
			skipOrFail(tb, err.Error())
		}
		tb.Fatalf("redistest: start cluster: %v", err)
	}
	return c
}

func startCluster(opts ...ClusterOption) (*Cluster, error) {
	cfg := clusterConfig{masters: 3, nodeTimeout: 2 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.masters < 1 || cfg.replicas < 0 {
		return nil, fmt.Errorf("redistest: cluster needs masters >= 1 and replicas >= 0, got %d and %d", cfg.masters, cfg.replicas)
	}
	n := cfg.masters * (1 + cfg.replicas)
	sopts := append([]ServerOption{WithArgs(
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", strconv.FormatInt(cfg.nodeTimeout.Milliseconds(), 10),
	)}, cfg.server...)
	servers := make([]*Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { servers[i], errs[i] = startServer(sopts...) })
	}
	wg.Wait()
	c := &Cluster{Masters: servers[:cfg.masters], Replicas: make([][]*Server, cfg.masters), nodeTimeout: cfg.nodeTimeout}
	for i := range cfg.masters {
		for r := range cfg.replicas {
			c.Replicas[i] = append(c.Replicas[i], servers[cfg.masters+i*cfg.replicas+r])
		}
	}
	if err := errors.Join(errs...); err != nil {
		c.shutdown()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.form(ctx, cfg); err != nil {
		c.shutdown()
		return nil, err
	}
	return c, nil
}

// form assigns slots, joins the nodes, attaches replicas and waits for the
// cluster to settle.
func (c *Cluster) form(ctx context.Context, cfg clusterConfig) error {
	nodes := c.Nodes()
	clients := make([]*redis.Client, len(nodes))
	for i, s := range nodes {
		clients[i] = redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
		defer clients[i].Close()
	}
	per := clusterSlots / cfg.masters
	for i := range cfg.masters {
		lo, hi := i*per, (i+1)*per-1
		if i == cfg.masters-1 {
			hi = clusterSlots - 1
		}
		if err := clients[i].Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			return fmt.Errorf("ADDSLOTSRANGE on %s: %w", nodes[i].Addr(), err)
		}
	}
	for _, s := range nodes[1:] {
		if err := clients[0].ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(s.port)).Err(); err != nil {
			return fmt.Errorf("CLUSTER MEET %s: %w", s.Addr(), err)
		}
	}
	// Every node must know every other before replicas can name their master.
	met := make([]time.Time, len(nodes)) // when node i was last met
	for i := range met {
		met[i] = time.Now()
	}
	if err := poll(ctx, func() error {
		for i, cl := range clients {
			out, err := cl.ClusterNodes(ctx).Result()
			if err != nil {
				return err
			}
			if got := strings.Count(strings.TrimSpace(out), "\n") + 1; got != len(nodes) {
				if i > 0 && got == 1 && time.Since(met[i]) > 2*cfg.nodeTimeout {
					// A handshake not done within the node timeout (a
					// loaded host) is dropped, never retried: meet again.
					// An error says a handshake is still in progress.
					met[i] = time.Now()
					_ = clients[0].ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(nodes[i].port)).Err()
				}
				return fmt.Errorf("node %s knows %d nodes, want %d", nodes[i].Addr(), got, len(nodes))
			}
		}
		return nil
	}); err != nil {
		return err
	}
	for m := range cfg.masters {
		id, err := clients[m].ClusterMyID(ctx).Result()
		if err != nil {
			return err
		}
		for r := range cfg.replicas {
			rc := clients[cfg.masters+m*cfg.replicas+r]
			if err := rc.Do(ctx, "CLUSTER", "REPLICATE", id).Err(); err != nil {
				return fmt.Errorf("CLUSTER REPLICATE: %w", err)
			}
		}
	}
	return poll(ctx, func() error { return c.settled(ctx, clients, cfg.masters) })
}

// settled reports nil when every node says cluster_state:ok and sees the
// expected number of masters serving slots.
func (c *Cluster) settled(ctx context.Context, clients []*redis.Client, masters int) error {
	for _, cl := range clients {
		info, err := cl.ClusterInfo(ctx).Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("%s: cluster_state not ok", cl.Options().Addr)
		}
		shards, err := cl.ClusterShards(ctx).Result()
		if err != nil {
			return err
		}
		serving := 0
		for _, sh := range shards {
			if len(sh.Slots) == 0 {
				continue
			}
			serving++
			online := 0
			for _, n := range sh.Nodes {
				if n.Health == "online" {
					online++
				}
			}
			if want := 1 + len(c.Replicas[0]); online != want {
				return fmt.Errorf("%s: a shard has %d online nodes, want %d", cl.Options().Addr, online, want)
			}
		}
		if serving != masters {
			return fmt.Errorf("%s: sees %d shards serving slots, want %d", cl.Options().Addr, serving, masters)
		}
	}
	return nil
}

// WaitHealthy waits until every running node reports cluster_state:ok, for
// use after a fault or a failover.
func (c *Cluster) WaitHealthy(ctx context.Context) error {
	return poll(ctx, func() error {
		for _, s := range c.Nodes() {
			if !s.Running() {
				continue
			}
			cl := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, ReadTimeout: time.Second})
			info, err := cl.ClusterInfo(ctx).Result()
			cl.Close()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") {
				return fmt.Errorf("%s: cluster_state not ok", s.Addr())
			}
		}
		return nil
	})
}

func (c *Cluster) shutdown() {
	var wg sync.WaitGroup
	for _, s := range c.Nodes() {
		if s != nil {
			wg.Go(s.shutdown)
		}
	}
	wg.Wait()
}

// poll calls f every 50ms until it returns nil or ctx is done. Its error
// wraps both ctx's and f's last one.
func poll(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: last: %w", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// sharedCluster is started once per test binary by NewCluster.
var sharedCluster struct {
	once sync.Once
	c    *Cluster
	err  error
}

// NewCluster returns a DB on a 3-master cluster shared by the tests of this
// binary (started on first use, stopped by [Main]), with a fresh key prefix
// whose keys are deleted when the test ends. Keys without a hash tag spread
// over all three masters.
func NewCluster(tb testing.TB) *DB {
	tb.Helper()
	sharedCluster.once.Do(func() { sharedCluster.c, sharedCluster.err = startCluster() })
	if err := sharedCluster.err; err != nil {
		if errors.Is(err, ErrNoServerBinary) {
			skipOrFail(tb, err.Error())
		}
		tb.Fatalf("redistest: start shared cluster: %v", err)
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: sharedCluster.c.Addrs()})
	d := &DB{Client: cc, Prefix: NewPrefix(), Addrs: sharedCluster.c.Addrs(), Cluster: true}
	tb.Cleanup(func() {
		cleanup(tb, d)
		_ = cc.Close()
	})
	return d
}
