package redistest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func verifyNoLeaks(t *testing.T) func() {
	t.Helper()
	opts := []goleak.Option{
		goleak.IgnoreCurrent(),
		goleak.IgnoreTopFunction("github.com/redis/go-redis/v9/maintnotifications.(*CircuitBreakerManager).cleanupLoop"),
	}
	return func() { goleak.VerifyNone(t, opts...) }
}

func TestProxy(t *testing.T) {
	defer verifyNoLeaks(t)()
	ctx := ctxT(t, 60*time.Second)
	db := New(t)
	key := db.Key("k")

	p := StartProxy(t, db.Addrs[0])
	defer p.Close()
	require.Equal(t, db.Addrs[0], p.Target())
	c := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1, ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond})
	defer c.Close()
	require.NoError(t, c.Set(ctx, key, "v", 0).Err())

	t.Run("latency adds delay", func(t *testing.T) {
		p.SetLatency(100 * time.Millisecond)
		require.Equal(t, 100*time.Millisecond, p.Latency())
		start := time.Now()
		require.Equal(t, "v", c.Get(ctx, key).Val())
		// Each direction is delayed: a round trip takes at least twice the latency.
		require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)
		p.SetLatency(0)
		require.NoError(t, c.Ping(ctx).Err())
	})

	t.Run("blackhole times commands out", func(t *testing.T) {
		p.Blackhole(true)
		err := c.Get(ctx, key).Err()
		require.Error(t, err)
		var ne net.Error
		require.True(t, errors.As(err, &ne) && ne.Timeout(), "got %v, want a timeout", err)
		// A new connection is accepted but answered by nobody.
		fresh := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1, ReadTimeout: 300 * time.Millisecond})
		defer fresh.Close()
		err = fresh.Ping(ctx).Err()
		require.True(t, errors.As(err, &ne) && ne.Timeout(), "new connection: got %v, want a timeout", err)
		p.Blackhole(false)
		require.Eventually(t, func() bool { return c.Get(ctx, key).Val() == "v" }, 10*time.Second, 20*time.Millisecond)
		require.Eventually(t, func() bool { return fresh.Ping(ctx).Err() == nil }, 10*time.Second, 20*time.Millisecond)
	})

	t.Run("reset breaks connections, clients recover", func(t *testing.T) {
		raw, err := net.Dial("tcp", p.Addr())
		require.NoError(t, err)
		defer raw.Close()
		_, err = raw.Write([]byte("PING\r\n"))
		require.NoError(t, err)
		buf := make([]byte, 7)
		_, err = io.ReadFull(raw, buf)
		require.NoError(t, err)
		require.Equal(t, "+PONG\r\n", string(buf))

		// A blocking command in flight fails when its connection is reset.
		slow := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1, ReadTimeout: -1})
		defer slow.Close()
		require.NoError(t, slow.Ping(ctx).Err())
		errc := make(chan error, 1)
		go func() { errc <- slow.BLPop(ctx, 20*time.Second, db.Key("empty")).Err() }()
		require.Eventually(t, func() bool { return p.Conns() >= 3 }, 5*time.Second, 10*time.Millisecond)
		time.Sleep(50 * time.Millisecond) // let BLPOP reach the server; the assertion does not depend on it
		start := time.Now()
		require.GreaterOrEqual(t, p.ResetAll(), 3)
		select {
		case err := <-errc:
			require.Error(t, err)
			require.NotErrorIs(t, err, redis.Nil)
		case <-time.After(15 * time.Second):
			t.Fatal("BLPOP did not fail after the reset")
		}
		require.Less(t, time.Since(start), 15*time.Second)

		_, err = raw.Read(buf)
		require.True(t, errors.Is(err, syscall.ECONNRESET), "raw connection: got %v, want ECONNRESET", err)

		require.Eventually(t, func() bool { return c.Get(ctx, key).Val() == "v" }, 10*time.Second, 20*time.Millisecond)
		require.NoError(t, slow.Ping(ctx).Err())
	})

	t.Run("closed proxy refuses", func(t *testing.T) {
		require.NoError(t, p.Close())
		require.NoError(t, p.Close())
		_, err := net.DialTimeout("tcp", p.Addr(), time.Second)
		require.Error(t, err)
		require.Zero(t, p.Conns())
	})
}

func TestProxyTargetDown(t *testing.T) {
	defer verifyNoLeaks(t)()
	ctx := ctxT(t, 30*time.Second)
	port, err := freePort() // nothing listens there
	require.NoError(t, err)
	p := StartProxy(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	defer p.Close()
	c := redis.NewClient(&redis.Options{Addr: p.Addr(), MaxRetries: -1, ReadTimeout: time.Second})
	defer c.Close()
	require.Error(t, c.Ping(ctx).Err())
	require.Zero(t, p.Conns())
}

func TestProxyDialerFaultsOneClusterNode(t *testing.T) {
	ctx := ctxT(t, 60*time.Second)
	db := NewCluster(t) // the shared cluster's processes outlive the test
	defer verifyNoLeaks(t)()
	p := StartProxy(t, db.Addrs[0])
	defer p.Close()
	c := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:        db.Addrs,
		Dialer:       Dialer(p),
		MaxRetries:   -1,
		MaxRedirects: 1,
		ReadTimeout:  300 * time.Millisecond,
	})
	defer c.Close()
	// Find a key on the proxied master and one elsewhere.
	var onProxied, elsewhere string
	for i := 0; onProxied == "" || elsewhere == ""; i++ {
		k := db.Key(fmt.Sprint("k", i))
		require.NoError(t, c.Set(ctx, k, "v", 0).Err())
		addr := ""
		require.NoError(t, c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			if n.Exists(ctx, k).Val() == 1 {
				addr = n.Options().Addr
			}
			return nil
		}))
		if addr == db.Addrs[0] {
			onProxied = k
		} else {
			elsewhere = k
		}
	}
	require.Positive(t, p.Conns(), "the cluster client reaches the node through the proxy")
	p.Blackhole(true)
	err := c.Get(ctx, onProxied).Err()
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "proxied node: got %v, want a timeout", err)
	require.NoError(t, c.Get(ctx, elsewhere).Err(), "other nodes are not affected")
	p.Blackhole(false)
	require.Eventually(t, func() bool { return c.Get(ctx, onProxied).Err() == nil }, 10*time.Second, 20*time.Millisecond)
}
