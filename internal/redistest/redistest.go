package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultAddr is where the harness looks for Redis when OUTRIGGER_REDIS_ADDR
// is not set.
const DefaultAddr = "127.0.0.1:6379"

// Main runs the tests and then stops every server the harness started. Call
// it from TestMain in each package that uses the harness:
//
//	func TestMain(m *testing.M) { redistest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	shutdownAll()
	os.Exit(code)
}

// DB is a test's view of a Redis deployment: a client and a key prefix that
// no other test uses. Keys under the prefix are deleted when the test ends.
type DB struct {
	// Client talks to the deployment (a *redis.Client or *redis.ClusterClient).
	Client redis.UniversalClient
	// Prefix is unique to the test. Put every key the test writes under it.
	Prefix string
	// Addrs are the deployment's addresses (one, or the cluster's masters).
	Addrs []string
	// Cluster reports whether the deployment is a Redis Cluster.
	Cluster bool
}

// Key returns Prefix + name.
func (d *DB) Key(name string) string { return d.Prefix + name }

// NewClient returns another client for the same deployment, closed when the
// test ends; mods adjust the options first (timeouts, retries, pool size).
// Tests use it to stand for several replicas of a service.
func (d *DB) NewClient(tb testing.TB, mods ...func(*redis.UniversalOptions)) redis.UniversalClient {
	tb.Helper()
	o := &redis.UniversalOptions{Addrs: d.Addrs, IsClusterMode: d.Cluster}
	for _, m := range mods {
		m(o)
	}
	c := redis.NewUniversalClient(o)
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// shared is the server found or started once per test binary.
var shared struct {
	once   sync.Once
	addr   string
	reason string // why there is no server, when addr is ""
}

// Addr returns the address of the shared Redis server, discovering it (or
// starting one) on first use. ok is false, with a reason, when there is none.
func Addr() (addr string, reason string, ok bool) {
	shared.once.Do(discover)
	return shared.addr, shared.reason, shared.addr != ""
}

func discover() {
	if a := os.Getenv(EnvAddr); a != "" {
		if err := ping(a); err != nil {
			shared.reason = fmt.Sprintf("%s=%s does not answer PING: %v", EnvAddr, a, err)
			return
		}
		shared.addr = a
		return
	}
	if ping(DefaultAddr) == nil {
		shared.addr = DefaultAddr
		return
	}
	s, err := startServer()
	if err != nil {
		shared.reason = fmt.Sprintf("no Redis: nothing answers on %s and redis-server could not be started: %v", DefaultAddr, err)
		return
	}
	shared.addr = s.Addr()
}

func ping(addr string) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return c.Ping(ctx).Err()
}

// New returns a DB on the shared server for this test. It skips the test when
// there is no Redis, or fails it when [Required] is true.
func New(tb testing.TB) *DB {
	tb.Helper()
	addr, reason, ok := Addr()
	if !ok {
		skipOrFail(tb, reason)
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	d := &DB{Client: c, Prefix: NewPrefix(), Addrs: []string{addr}}
	tb.Cleanup(func() {
		cleanup(tb, d)
		_ = c.Close()
	})
	return d
}

// NewPrefix returns a fresh key prefix of the form "ot-test:<16 hex>:". It
// contains no hash tag, so keys under it spread over a cluster's slots.
func NewPrefix() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "ot-test:" + hex.EncodeToString(b[:]) + ":"
}

// cleanup deletes every key under d.Prefix.
func cleanup(tb testing.TB, d *DB) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	del := func(ctx context.Context, c redis.UniversalClient) error {
		iter := c.Scan(ctx, 0, d.Prefix+"*", 1000).Iterator()
		var keys []string
		flush := func() error {
			if len(keys) == 0 {
				return nil
			}
			// One UNLINK a key, pipelined: keys may live in different slots.
			_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				for _, k := range keys {
					p.Unlink(ctx, k)
				}
				return nil
			})
			keys = keys[:0]
			return err
		}
		for iter.Next(ctx) {
			if keys = append(keys, iter.Val()); len(keys) == 1000 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := iter.Err(); err != nil {
			return err
		}
		return flush()
	}
	var err error
	if cc, ok := d.Client.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return del(ctx, c) })
	} else {
		err = del(ctx, d.Client)
	}
	if err != nil && !errors.Is(err, redis.ErrClosed) {
		tb.Logf("redistest: cleanup of %s*: %v", d.Prefix, err)
	}
}

// skipOrFail ends the test: a skip on a laptop, a failure in CI.
func skipOrFail(tb testing.TB, reason string) {
	tb.Helper()
	if Required() {
		tb.Fatalf("redistest: %s (Redis is required: %s or %s is set)", reason, EnvCI, EnvRequire)
	}
	tb.Skipf("redistest: %s", reason)
}
