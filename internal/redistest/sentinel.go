package redistest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMasterName is the name under which the sentinels started by
// [StartSentinel] monitor the primary (the FailoverOptions.MasterName).
const SentinelMasterName = "outrigger"

// SentinelOption configures a deployment started by [StartSentinel].
type SentinelOption func(*sentinelConfig)

type sentinelConfig struct {
	replicas        int
	sentinels       int
	quorum          int
	downAfter       time.Duration
	failoverTimeout time.Duration
	minReplicas     int
	minReplicasLag  time.Duration
	server          []ServerOption
}

// WithSentinelReplicas sets the number of replicas of the primary (default 1).
func WithSentinelReplicas(n int) SentinelOption {
	return func(c *sentinelConfig) { c.replicas = n }
}

// WithDownAfter sets the sentinels' down-after-milliseconds (default 1s): how
// long the primary may not answer before a sentinel considers it down.
func WithDownAfter(d time.Duration) SentinelOption {
	return func(c *sentinelConfig) { c.downAfter = d }
}

// WithFailoverTimeout sets the sentinels' failover-timeout (default 4s). A
// failed failover is retried after twice this time.
func WithFailoverTimeout(d time.Duration) SentinelOption {
	return func(c *sentinelConfig) { c.failoverTimeout = d }
}

// WithMinReplicasToWrite starts every data node with min-replicas-to-write n
// and min-replicas-max-lag maxLag (rounded up to whole seconds, at least 1):
// a primary then refuses writes (NOREPLICAS) unless n replicas acknowledged
// its stream within maxLag. This is the Redis setting that bounds the writes
// a zombie primary (see [Sentinel.BeginZombie]) can accept. Every node gets
// it because every node may become the primary.
func WithMinReplicasToWrite(n int, maxLag time.Duration) SentinelOption {
	return func(c *sentinelConfig) { c.minReplicas, c.minReplicasLag = n, maxLag }
}

// WithDataServerOptions applies options to the primary and the replicas (not
// to the sentinels).
func WithDataServerOptions(opts ...ServerOption) SentinelOption {
	return func(c *sentinelConfig) { c.server = append(c.server, opts...) }
}

// Sentinel is a Redis deployment supervised by Redis Sentinel, started by
// [StartSentinel] on loopback ports: a primary, its replicas and three
// sentinels monitoring it as [SentinelMasterName] with quorum 2.
//
// The harness tracks which data node is the primary as of the last harness
// call that changed or observed it ([StartSentinel], [Sentinel.Failover],
// [Sentinel.WaitFailover], [Lag.FailOver], [Sentinel.BeginZombie]);
// [Sentinel.CurrentPrimary] asks the sentinels. Methods are safe for
// concurrent use, but fault helpers must not run concurrently with each other.
type Sentinel struct {
	cfg       sentinelConfig
	nodes     []*Server // data nodes, the initial primary first
	sentinels []*Server

	mu      sync.Mutex // protects primary
	primary *Server
}

// StartSentinel starts a primary, its replicas (1 by default) and three
// sentinels, and stops them all when the test ends. It returns once the
// replicas are in sync and every sentinel sees the primary, every replica
// and the other sentinels; sentinels that do not within 20s are replaced by
// new ones, all within 60s. It skips the test (fails it in CI) when
// redis-server is not installed.
//
// The sentinels use down-after-milliseconds 1000, failover-timeout 4000,
// parallel-syncs 1, and SENTINEL DEBUG info-period 1000, publish-period 1000
// and tilt-period 5000 (Redis defaults: 10s, 2s, 30s) so that discovery and
// the demotion of a returning old primary take seconds, not tens of seconds.
func StartSentinel(tb testing.TB, opts ...SentinelOption) *Sentinel {
	tb.Helper()
	s, err := startSentinel(opts...)
	if s != nil {
		tb.Cleanup(s.shutdown)
	}
	if err != nil {
		if errors.Is(err, ErrNoServerBinary) {
			skipOrFail(tb, err.Error())
		}
		tb.Fatalf("redistest: start sentinel deployment: %v", err)
	}
	return s
}

func startSentinel(opts ...SentinelOption) (*Sentinel, error) {
	cfg := sentinelConfig{
		replicas:        1,
		sentinels:       3,
		quorum:          2,
		downAfter:       time.Second,
		failoverTimeout: 4 * time.Second,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.replicas < 1 {
		return nil, fmt.Errorf("redistest: a sentinel deployment needs replicas >= 1, got %d", cfg.replicas)
	}
	if cfg.downAfter < 100*time.Millisecond || cfg.failoverTimeout < time.Second {
		return nil, fmt.Errorf("redistest: down-after must be >= 100ms and failover-timeout >= 1s, got %v and %v", cfg.downAfter, cfg.failoverTimeout)
	}
	data := []ServerOption{WithArgs("--repl-diskless-sync-delay", "0")}
	if cfg.minReplicas > 0 {
		lag := max(1, int((cfg.minReplicasLag+time.Second-1)/time.Second))
		data = append(data, WithArgs(
			"--min-replicas-to-write", strconv.Itoa(cfg.minReplicas),
			"--min-replicas-max-lag", strconv.Itoa(lag),
		))
	}
	data = append(data, cfg.server...)

	s := &Sentinel{cfg: cfg}
	p, err := startServer(data...)
	if err != nil {
		return nil, err
	}
	s.nodes, s.primary = append(s.nodes, p), p

	replicas := make([]*Server, cfg.replicas)
	errs := make([]error, cfg.replicas)
	ropts := append(slices.Clone(data), WithArgs("--replicaof", "127.0.0.1", strconv.Itoa(p.port)))
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() { replicas[i], errs[i] = startServer(ropts...) })
	}
	wg.Wait()
	for _, r := range replicas {
		if r != nil {
			s.nodes = append(s.nodes, r)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return s, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Replicas first: a sentinel learns them from the primary's INFO.
	if err := WaitInSync(ctx, p, replicas...); err != nil {
		return s, err
	}

	conf := fmt.Sprintf("sentinel monitor %[1]s 127.0.0.1 %[2]d %[3]d\n"+
		"sentinel down-after-milliseconds %[1]s %[4]d\n"+
		"sentinel failover-timeout %[1]s %[5]d\n"+
		"sentinel parallel-syncs %[1]s 1\n",
		SentinelMasterName, p.port, cfg.quorum, cfg.downAfter.Milliseconds(), cfg.failoverTimeout.Milliseconds())
	if err := s.startSentinels(ctx, conf); err != nil {
		return s, err
	}
	if err := s.settleSentinels(ctx, conf); err != nil {
		return s, fmt.Errorf("sentinels did not settle: %w", err)
	}
	return s, nil
}

// settleRound bounds each wait of [Sentinel.settleSentinels] before it
// replaces the sentinels. Discovery takes about a second, and some five
// more when a stalled sentinel enters TILT mode.
const settleRound = 20 * time.Second

// startSentinels starts s.cfg.sentinels new sentinels with the config conf
// and shortens their periods with SENTINEL DEBUG.
func (s *Sentinel) startSentinels(ctx context.Context, conf string) error {
	sentinels := make([]*Server, s.cfg.sentinels)
	errs := make([]error, s.cfg.sentinels)
	var wg sync.WaitGroup
	for i := range sentinels {
		wg.Go(func() {
			sentinels[i], errs[i] = startServer(func(c *serverConfig) { c.sentinelConf = conf })
		})
	}
	wg.Wait()
	s.sentinels = slices.DeleteFunc(sentinels, func(x *Server) bool { return x == nil })
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, sn := range s.sentinels {
		c := adminClient(sn.Addr())
		err := c.Do(ctx, "SENTINEL", "DEBUG", "info-period", 1000, "publish-period", 1000, "tilt-period", 5000).Err()
		c.Close()
		if err != nil {
			return fmt.Errorf("SENTINEL DEBUG on %s: %w", sn.Addr(), err)
		}
	}
	return nil
}

// settleSentinels waits until the sentinels have settled
// ([Sentinel.sentinelsSettled]). Sentinels that have not settled within
// [settleRound] are replaced by new ones (new ports, IDs and configs, same
// conf), until ctx is done. Sentinel does not repair every discovery that
// went wrong: a peer it knows under a stale or a foreign identity, or an
// address that changed hands, stays in its tables; new sentinels start
// clean. The error names each round's lagging sentinel with its log tail.
func (s *Sentinel) settleSentinels(ctx context.Context, conf string) error {
	var rounds []error
	for {
		rctx, cancel := context.WithTimeout(ctx, settleRound)
		err := poll(rctx, s.sentinelsSettled)
		cancel()
		if err == nil {
			return nil
		}
		rounds = append(rounds, withSentinelLog(err))
		if ctx.Err() != nil {
			break
		}
		s.stopSentinels()
		if err := s.startSentinels(ctx, conf); err != nil {
			rounds = append(rounds, fmt.Errorf("replace sentinels: %w", err))
			break
		}
	}
	if len(rounds) == 1 {
		return rounds[0]
	}
	for i, err := range rounds {
		rounds[i] = fmt.Errorf("sentinel set %d of %d: %w", i+1, len(rounds), err)
	}
	return errors.Join(rounds...)
}

// stopSentinels stops the sentinels for good and forgets them.
func (s *Sentinel) stopSentinels() {
	var wg sync.WaitGroup
	for _, sn := range s.sentinels {
		wg.Go(sn.shutdown)
	}
	wg.Wait()
	s.sentinels = nil
}

// sentinelError is a sentinel's view that keeps a deployment unsettled.
type sentinelError struct {
	sn  *Server
	err error
}

func (e *sentinelError) Error() string { return fmt.Sprintf("sentinel %s: %v", e.sn.Addr(), e.err) }

func (e *sentinelError) Unwrap() error { return e.err }

// withSentinelLog adds to err the log tail of the sentinel it is about, if
// any: its discovery events (+sentinel, +sentinel-address-switch,
// +sentinel-invalid-addr, +tilt) tell why it lags.
func withSentinelLog(err error) error {
	var se *sentinelError
	if !errors.As(err, &se) {
		return err
	}
	return fmt.Errorf("%w (log of %s: %s)", err, se.sn.Addr(), tailBytes(filepath.Join(se.sn.Dir(), "redis.log"), 1500))
}

// sentinelsSettled reports nil when every running sentinel sees the primary
// up, every running replica up with its link ok, and every other sentinel.
func (s *Sentinel) sentinelsSettled() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	primary := s.Primary()
	var wantReplicas []string
	for _, n := range s.nodes {
		if n != primary && n.Running() {
			wantReplicas = append(wantReplicas, n.Addr())
		}
	}
	slices.Sort(wantReplicas)
	for _, sn := range s.sentinels {
		if !sn.Running() {
			continue
		}
		c := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr(), MaxRetries: -1, ReadTimeout: time.Second, DialTimeout: time.Second})
		err := func() error {
			defer c.Close()
			m, err := c.Master(ctx, SentinelMasterName).Result()
			if err != nil {
				return err
			}
			if got := net.JoinHostPort(m["ip"], m["port"]); got != primary.Addr() || m["flags"] != "master" {
				return fmt.Errorf("master %s flags %q, want %s flags \"master\"", got, m["flags"], primary.Addr())
			}
			reps, err := c.Replicas(ctx, SentinelMasterName).Result()
			if err != nil {
				return err
			}
			var up []string
			for _, r := range reps {
				if r["flags"] == "slave" && r["master-link-status"] == "ok" {
					up = append(up, net.JoinHostPort(r["ip"], r["port"]))
				}
			}
			slices.Sort(up)
			for _, w := range wantReplicas {
				if _, ok := slices.BinarySearch(up, w); !ok {
					return fmt.Errorf("sees replicas %v up, want %v", up, wantReplicas)
				}
			}
			others, err := c.Sentinels(ctx, SentinelMasterName).Result()
			if err != nil {
				return err
			}
			if len(others) != len(s.sentinels)-1 {
				return fmt.Errorf("knows %d other sentinels, want %d", len(others), len(s.sentinels)-1)
			}
			return nil
		}()
		if err != nil {
			return &sentinelError{sn: sn, err: err}
		}
	}
	return nil
}

// WaitSettled waits until a quorum of sentinels names a primary that
// answers ROLE master, every running replica is in sync with it, and every
// running sentinel sees it, the running replicas and the other sentinels, as
// after [StartSentinel]. It follows the sentinels: if they failed over on
// their own (a loaded machine can stall a node past down-after), the
// primary it settles on, and [Sentinel.Primary] afterwards, is the new one.
func (s *Sentinel) WaitSettled(ctx context.Context) error {
	err := poll(ctx, func() error {
		p, err := s.CurrentPrimary(ctx)
		if err != nil {
			return err
		}
		s.setPrimary(p)
		r, err := NodeRole(ctx, p.Addr())
		if err != nil {
			return err
		}
		if r.Role != "master" {
			return fmt.Errorf("primary %s answers ROLE %s", p.Addr(), r.Role)
		}
		for _, n := range s.runningReplicas() {
			if err := inSync(ctx, p, r.Offset, n); err != nil {
				return err
			}
		}
		return s.sentinelsSettled()
	})
	if err != nil {
		return fmt.Errorf("redistest: sentinel deployment not settled: %w", withSentinelLog(err))
	}
	return nil
}

func (s *Sentinel) shutdown() {
	var wg sync.WaitGroup
	for _, n := range append(slices.Clone(s.sentinels), s.nodes...) {
		wg.Go(n.shutdown)
	}
	wg.Wait()
}

// MasterName returns [SentinelMasterName].
func (s *Sentinel) MasterName() string { return SentinelMasterName }

// SentinelAddrs returns the sentinels' addresses.
func (s *Sentinel) SentinelAddrs() []string {
	addrs := make([]string, len(s.sentinels))
	for i, sn := range s.sentinels {
		addrs[i] = sn.Addr()
	}
	return addrs
}

// Primary returns the data node the harness last knew as the primary.
func (s *Sentinel) Primary() *Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.primary
}

func (s *Sentinel) setPrimary(p *Server) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.primary = p
}

// Replicas returns the data nodes other than [Sentinel.Primary], stopped or
// not.
func (s *Sentinel) Replicas() []*Server {
	p := s.Primary()
	var out []*Server
	for _, n := range s.nodes {
		if n != p {
			out = append(out, n)
		}
	}
	return out
}

func (s *Sentinel) runningReplicas() []*Server {
	return slices.DeleteFunc(s.Replicas(), func(n *Server) bool { return !n.Running() })
}

// Sentinels returns the sentinel processes.
func (s *Sentinel) Sentinels() []*Server { return slices.Clone(s.sentinels) }

// Nodes returns every data node (primary and replicas), in start order.
func (s *Sentinel) Nodes() []*Server { return slices.Clone(s.nodes) }

// Node returns the data node at addr, or nil.
func (s *Sentinel) Node(addr string) *Server {
	for _, n := range s.nodes {
		if n.Addr() == addr {
			return n
		}
	}
	return nil
}

// Client returns a new Sentinel-aware client (redis.NewFailoverClient) for
// the deployment, closed when the test ends; mods adjust the options first.
// It follows failovers: it asks the sentinels for the primary and switches
// when they announce a new one.
func (s *Sentinel) Client(tb testing.TB, mods ...func(*redis.FailoverOptions)) *redis.Client {
	tb.Helper()
	o := &redis.FailoverOptions{MasterName: SentinelMasterName, SentinelAddrs: s.SentinelAddrs()}
	for _, m := range mods {
		m(o)
	}
	c := redis.NewFailoverClient(o)
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// CurrentPrimary asks every running sentinel for the primary's address and
// returns the data node that a quorum (2) of them name.
func (s *Sentinel) CurrentPrimary(ctx context.Context) (*Server, error) {
	votes := map[string]int{}
	var errs []error
	for _, sn := range s.sentinels {
		if !sn.Running() {
			continue
		}
		c := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr(), MaxRetries: -1, ReadTimeout: time.Second, DialTimeout: time.Second})
		a, err := c.GetMasterAddrByName(ctx, SentinelMasterName).Result()
		c.Close()
		if err != nil {
			errs = append(errs, fmt.Errorf("sentinel %s: %w", sn.Addr(), err))
			continue
		}
		if len(a) == 2 {
			votes[net.JoinHostPort(a[0], a[1])]++
		}
	}
	for addr, n := range votes {
		if n >= s.cfg.quorum {
			if node := s.Node(addr); node != nil {
				return node, nil
			}
			return nil, fmt.Errorf("redistest: sentinels name %s, which is not a data node of this deployment", addr)
		}
	}
	return nil, fmt.Errorf("redistest: no quorum of sentinels agrees on a primary (votes %v): %w", votes, errors.Join(errs...))
}

// WaitFailover waits until a quorum of sentinels names a primary other than
// oldPrimaryAddr and that node answers ROLE master, and returns it. It does
// not wait for the other nodes to follow; see [Sentinel.WaitSettled].
func (s *Sentinel) WaitFailover(ctx context.Context, oldPrimaryAddr string) (*Server, error) {
	var p *Server
	err := poll(ctx, func() error {
		cur, err := s.CurrentPrimary(ctx)
		if err != nil {
			return err
		}
		if cur.Addr() == oldPrimaryAddr {
			return fmt.Errorf("sentinels still name %s", oldPrimaryAddr)
		}
		r, err := NodeRole(ctx, cur.Addr())
		if err != nil {
			return err
		}
		if r.Role != "master" {
			return fmt.Errorf("new primary %s answers ROLE %s", cur.Addr(), r.Role)
		}
		p = cur
		return nil
	})
	if err != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return nil, fmt.Errorf("redistest: no failover away from %s: %w (sentinels: %s)", oldPrimaryAddr, err, s.sentinelState(sctx))
	}
	s.setPrimary(p)
	return p, nil
}

// Failover runs SENTINEL FAILOVER (a forced failover that needs no
// agreement) and waits until a new primary is named and answers ROLE master,
// the old primary has been demoted by the sentinels and every running replica
// is in sync with the new primary, and a write through a Sentinel client
// succeeds. It returns the primary it settled on. The old primary is not told to stop
// accepting writes: until the sentinels demote it (a few seconds), a client
// that still points at it can write there, and those writes are lost.
func (s *Sentinel) Failover(ctx context.Context) (*Server, error) {
	old := s.Primary()
	if err := s.requestFailover(ctx); err != nil {
		return nil, err
	}
	p, err := s.WaitFailover(ctx, old.Addr())
	if err != nil {
		return nil, err
	}
	if err := s.WaitSettled(ctx); err != nil {
		return p, err
	}
	return s.Primary(), s.waitWritable(ctx)
}

// requestFailover sends SENTINEL FAILOVER to a running sentinel, retrying
// while no replica is eligible yet (NOGOODSLAVE: a replica that was paused is
// still marked down) and treating a failover already in progress as done.
func (s *Sentinel) requestFailover(ctx context.Context) error {
	i := 0
	return poll(ctx, func() error {
		sn := s.sentinels[i%len(s.sentinels)]
		i++
		if !sn.Running() {
			return fmt.Errorf("sentinel %s not running", sn.Addr())
		}
		c := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr(), MaxRetries: -1, ReadTimeout: time.Second, DialTimeout: time.Second})
		defer c.Close()
		err := c.Failover(ctx, SentinelMasterName).Err()
		if err != nil && strings.HasPrefix(err.Error(), "INPROG") {
			return nil
		}
		return err
	})
}

// waitWritable waits until a SET through a Sentinel client succeeds.
func (s *Sentinel) waitWritable(ctx context.Context) error {
	c := redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName:    SentinelMasterName,
		SentinelAddrs: s.SentinelAddrs(),
		MaxRetries:    -1,
		DialTimeout:   time.Second,
		ReadTimeout:   time.Second,
		WriteTimeout:  time.Second,
	})
	defer c.Close()
	err := poll(ctx, func() error { return c.Set(ctx, "redistest:probe", "1", time.Minute).Err() })
	if err != nil {
		return fmt.Errorf("redistest: deployment not writable after failover: %w", err)
	}
	return nil
}

// sentinelState is a debugging aid: every sentinel's view of the master.
func (s *Sentinel) sentinelState(ctx context.Context) string {
	var b strings.Builder
	for _, sn := range s.sentinels {
		c := redis.NewSentinelClient(&redis.Options{Addr: sn.Addr(), MaxRetries: -1, ReadTimeout: time.Second})
		m, err := c.Master(ctx, SentinelMasterName).Result()
		c.Close()
		if err != nil {
			fmt.Fprintf(&b, "%s: %v; ", sn.Addr(), err)
			continue
		}
		keys := slices.Sorted(maps.Keys(m))
		fmt.Fprintf(&b, "%s:", sn.Addr())
		for _, k := range keys {
			if k == "ip" || k == "port" || k == "flags" || k == "failover-state" || k == "num-slaves" {
				fmt.Fprintf(&b, " %s=%s", k, m[k])
			}
		}
		b.WriteString("; ")
	}
	return b.String()
}
