package redistest

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy is a TCP proxy on a loopback port in front of one address (a Redis
// node), for network faults without root: added latency, a blackhole and
// connection resets. Point a client at [Proxy.Addr] instead of the node.
//
// Each proxied connection is served by four goroutines (a reader and a
// writer per direction) and the listener by one; [Proxy.Close], called at
// the latest when the test ends, stops them all. Methods are safe for
// concurrent use.
type Proxy struct {
	target  string
	ln      net.Listener
	latency atomic.Int64 // one-way delay in nanoseconds

	mu        sync.Mutex // protects blackhole, closed and conns
	blackhole bool
	closed    bool
	conns     map[*proxyConn]struct{}

	wg sync.WaitGroup // every goroutine of the proxy
}

// StartProxy starts a proxy to target (host:port) on a free loopback port
// and closes it when the test ends.
func StartProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("redistest: proxy listen: %v", err)
	}
	p := &Proxy{target: target, ln: ln, conns: map[*proxyConn]struct{}{}}
	p.wg.Go(p.acceptLoop)
	tb.Cleanup(func() { _ = p.Close() })
	return p
}

// Addr returns the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target returns the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// SetLatency delays every chunk of data by d in each direction, so a
// request-reply round trip takes at least 2*d longer. Data read before the
// call keeps its delay. Throughput is not limited: chunks are delayed, not
// serialized.
func (p *Proxy) SetLatency(d time.Duration) { p.latency.Store(int64(max(d, 0))) }

// Latency returns the one-way delay set by SetLatency.
func (p *Proxy) Latency() time.Duration { return time.Duration(p.latency.Load()) }

// Blackhole(true) makes the proxy a black hole: it keeps accepting
// connections and reading what both sides send, but forwards nothing, in
// either direction, and dials nothing. Clients see their commands time out.
// Blackhole(false) ends it: connections that lost data (their byte stream is
// no longer whole) are reset, and new connections are forwarded again.
func (p *Proxy) Blackhole(on bool) {
	p.mu.Lock()
	p.blackhole = on
	var tainted []*proxyConn
	if !on {
		for c := range p.conns {
			if c.tainted.Load() {
				tainted = append(tainted, c)
			}
		}
	}
	p.mu.Unlock()
	for _, c := range tainted {
		c.close(true)
	}
}

func (p *Proxy) blackholed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.blackhole
}

// ResetAll closes every proxied connection with a TCP reset (SO_LINGER 0)
// on both sides, as a dropped NAT entry or a restarted middlebox would, and
// returns how many it reset. New connections are accepted as before.
func (p *Proxy) ResetAll() int {
	p.mu.Lock()
	all := make([]*proxyConn, 0, len(p.conns))
	for c := range p.conns {
		all = append(all, c)
	}
	p.mu.Unlock()
	for _, c := range all {
		c.close(true)
	}
	return len(all)
}

// Conns returns the number of open proxied connections.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close stops accepting, resets every connection and waits for the proxy's
// goroutines to exit. Closing a closed proxy is a no-op.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.ResetAll()
	p.wg.Wait()
	return err
}

func (p *Proxy) acceptLoop() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return // listener closed
		}
		p.wg.Go(func() { p.serve(client) })
	}
}

// serve connects a client to the target and starts the pumps.
func (p *Proxy) serve(client net.Conn) {
	c := &proxyConn{p: p, client: client, done: make(chan struct{})}
	if !p.blackholed() {
		server, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			resetConn(client)
			return
		}
		c.server = server
	} else {
		c.tainted.Store(true) // nothing upstream: reset when the blackhole ends
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		c.close(true)
		return
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()

	if c.server == nil {
		c.pump(client, nil)
		return
	}
	p.wg.Go(func() { c.pump(c.server, client) })
	c.pump(client, c.server)
}

// proxyConn is one proxied connection.
type proxyConn struct {
	p       *Proxy
	client  net.Conn
	server  net.Conn // nil when accepted during a blackhole
	tainted atomic.Bool
	done    chan struct{} // closed by close

	once sync.Once
}

type chunk struct {
	data []byte
	at   time.Time
}

// pump copies src to dst (nil: discard) through a delay queue until either
// side fails or the connection is closed.
func (c *proxyConn) pump(src, dst net.Conn) {
	defer c.close(false)
	ch := make(chan chunk, 16)
	if dst != nil {
		c.p.wg.Go(func() { c.write(dst, ch) })
	}
	defer close(ch)
	for {
		buf := make([]byte, 32<<10)
		n, err := src.Read(buf)
		if n > 0 {
			if dst == nil || c.p.blackholed() {
				c.tainted.Store(true)
			} else {
				select {
				case ch <- chunk{data: buf[:n], at: time.Now().Add(c.p.Latency())}:
				case <-c.done:
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

func (c *proxyConn) write(dst net.Conn, ch <-chan chunk) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for k := range ch {
		if wait := time.Until(k.at); wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			select {
			case <-timer.C:
			case <-c.done:
				return
			}
		}
		if c.p.blackholed() {
			c.tainted.Store(true)
			continue
		}
		if _, err := dst.Write(k.data); err != nil {
			c.close(false)
			return
		}
	}
}

// close closes both sides, with a reset when rst is true, and forgets the
// connection. Only the first call has an effect.
func (c *proxyConn) close(rst bool) {
	c.once.Do(func() {
		close(c.done)
		for _, conn := range []net.Conn{c.client, c.server} {
			if conn == nil {
				continue
			}
			if rst {
				resetConn(conn)
			} else {
				_ = conn.Close()
			}
		}
		c.p.mu.Lock()
		delete(c.p.conns, c)
		c.p.mu.Unlock()
	})
}

// resetConn closes conn with an RST instead of a FIN.
func resetConn(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// Dialer returns a dial function for go-redis options (Options.Dialer,
// ClusterOptions.Dialer, FailoverOptions.Dialer) that connects to each
// proxy's address instead of its target and dials every other address
// directly. Cluster and Sentinel clients learn node addresses from the
// servers, so pointing them at a proxy is not enough; with this dialer the
// faults of one node's proxy apply to their connections to that node.
func Dialer(proxies ...*Proxy) func(ctx context.Context, network, addr string) (net.Conn, error) {
	route := make(map[string]string, len(proxies))
	for _, p := range proxies {
		route[p.Target()] = p.Addr()
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if a, ok := route[addr]; ok {
			addr = a
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}
