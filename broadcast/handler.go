package broadcast

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// HandlerOption configures Hub.Handler.
type HandlerOption func(*handlerConfig)

type handlerConfig struct {
	identify  func(*http.Request) (Member, error)
	authorize func(r *http.Request, m Member, channel string, a Action) error
	origins   []string
	anyOrigin bool
	maxSubs   int
	ping      time.Duration
	writeWait time.Duration
}

// Identify sets how a connection's member is found from its upgrade (or
// SSE) request: a cookie, a token. An error answers 401. Without it every
// connection is anonymous (a random ClientID) and joins no presence; with
// it the connection appears as the returned member in the presence of each
// channel it subscribes (ClientID, if empty, is set to a random one).
func Identify(f func(*http.Request) (Member, error)) HandlerOption {
	return func(c *handlerConfig) { c.identify = f }
}

// Authorize decides every subscribe, publish and presence request of a
// connection: nil allows it, an error refuses it (a forbidden error frame,
// or 403 for SSE). Without it subscribe and presence are allowed and publish
// is refused.
func Authorize(f func(r *http.Request, m Member, channel string, a Action) error) HandlerOption {
	return func(c *handlerConfig) { c.authorize = f }
}

// AllowOrigins sets which browser origins may connect, besides the request's
// own host (the default, and always allowed). A pattern is matched
// (path.Match syntax, case-insensitive) against the Origin's host[:port],
// e.g. "app.example.com" or "*.example.com", or against the whole origin,
// e.g. "https://*.example.com"; "*" allows every origin. Requests without
// an Origin header (not from a browser) are always allowed. It panics on a
// malformed pattern.
func AllowOrigins(patterns ...string) HandlerOption {
	return func(c *handlerConfig) {
		for _, p := range patterns {
			p = strings.ToLower(p)
			if _, err := path.Match(p, ""); err != nil {
				panic(fmt.Sprintf("broadcast: AllowOrigins: bad pattern %q: %v", p, err))
			}
			if p == "*" {
				c.anyOrigin = true
			}
			c.origins = append(c.origins, p)
		}
	}
}

// MaxSubscriptions bounds the channels one connection may subscribe to
// (default 64); a subscribe beyond it gets a bad_request error frame (SSE:
// 400). It panics if n < 1.
func MaxSubscriptions(n int) HandlerOption {
	if n < 1 {
		panic(fmt.Sprintf("broadcast: MaxSubscriptions must be >= 1, got %d", n))
	}
	return func(c *handlerConfig) { c.maxSubs = n }
}

// PingInterval sets how often the server pings idle WebSocket connections
// and sends SSE heartbeat comments (default 15s); a WebSocket that answers
// nothing for three intervals is closed. It panics if d < 10ms.
func PingInterval(d time.Duration) HandlerOption {
	if d < 10*time.Millisecond {
		panic(fmt.Sprintf("broadcast: PingInterval must be >= 10ms, got %v", d))
	}
	return func(c *handlerConfig) { c.ping = d }
}

// WriteTimeout bounds each write to a connection (default 10s): a client
// that takes no data for that long is disconnected, whatever WithSlowClient
// says. It panics if d < 10ms.
func WriteTimeout(d time.Duration) HandlerOption {
	if d < 10*time.Millisecond {
		panic(fmt.Sprintf("broadcast: WriteTimeout must be >= 10ms, got %v", d))
	}
	return func(c *handlerConfig) { c.writeWait = d }
}

// Handler returns the HTTP endpoint of the wire protocol (see the package
// documentation): a WebSocket upgrade, or an SSE stream when the request
// accepts text/event-stream. It works under any path (http.StripPrefix).
func (h *Hub) Handler(opts ...HandlerOption) http.Handler {
	hc := &handlerConfig{maxSubs: 64, ping: 15 * time.Second, writeWait: 10 * time.Second}
	for _, o := range opts {
		if o != nil {
			o(hc)
		}
	}
	if hc.authorize == nil {
		hc.authorize = func(r *http.Request, m Member, channel string, a Action) error {
			if a == ActionPublish {
				return ErrForbidden
			}
			return nil
		}
	}
	hh := &handler{h: h, cfg: hc}
	hh.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		// 0: use the reader the hijack returns, which is ours (smallHijack).
		ReadBufferSize:  0,
		WriteBufferPool: &writePool,
		CheckOrigin:     hc.checkOrigin,
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			http.Error(w, reason.Error(), status)
		},
	}
	return hh
}

// writePool holds WebSocket write buffers between writes: an idle
// connection holds none.
var writePool sync.Pool

type handler struct {
	h        *Hub
	cfg      *handlerConfig
	upgrader websocket.Upgrader
}

func (hh *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		http.Error(w, "broadcast: method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !hh.cfg.checkOrigin(r) {
		http.Error(w, "broadcast: origin not allowed", http.StatusForbidden)
		return
	}
	if hh.h.isClosed() {
		http.Error(w, "broadcast: closed", http.StatusServiceUnavailable)
		return
	}
	m, identified, err := hh.identify(r)
	if err != nil {
		http.Error(w, "broadcast: unauthorized", http.StatusUnauthorized)
		return
	}
	switch {
	case websocket.IsWebSocketUpgrade(r):
		hh.serveWebSocket(&smallHijack{ResponseWriter: w}, r, m, identified)
	case acceptsEventStream(r):
		hh.serveSSE(w, r, m, identified)
	default:
		http.Error(w, "broadcast: expected a WebSocket upgrade or Accept: text/event-stream", http.StatusBadRequest)
	}
}

func (hh *handler) identify(r *http.Request) (m Member, identified bool, err error) {
	if hh.cfg.identify != nil {
		m, err = hh.cfg.identify(r)
		if err != nil {
			return Member{}, false, err
		}
		identified = true
	}
	if m.ClientID == "" {
		m.ClientID = randomID(8)
	}
	if err := hh.h.cfg.checkMember(&m); err != nil {
		return Member{}, false, err
	}
	return m, identified, nil
}

func acceptsEventStream(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			mt, _, _ := strings.Cut(strings.TrimSpace(part), ";")
			if strings.EqualFold(strings.TrimSpace(mt), "text/event-stream") {
				return true
			}
		}
	}
	return false
}

// checkOrigin allows requests without Origin, from the request's own host,
// or from an allowed pattern.
func (c *handlerConfig) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || c.anyOrigin {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	host := strings.ToLower(u.Host)
	if host == strings.ToLower(r.Host) {
		return true
	}
	full := strings.ToLower(u.Scheme + "://" + u.Host)
	for _, p := range c.origins {
		if ok, _ := path.Match(p, host); ok {
			return true
		}
		if ok, _ := path.Match(p, full); ok {
			return true
		}
	}
	return false
}

// ticker is the Hub's one clock for every connection: WebSocket pings and
// SSE heartbeats, instead of a timer per connection.
type ticker interface {
	tick(now time.Time)
	slot() uint32 // which of the tickSlots ticks of an interval is this one's
}

// tickSlots spreads the connections' pings over an interval: each tick of
// the clock (interval/tickSlots) serves one slot's connections, so 10,000
// connections do not all get a ping (and a writer) at once.
const tickSlots = 64

// nextSlot hands out connection slots round-robin.
func (h *Hub) nextSlot() uint32 { return h.slots.Add(1) % tickSlots }

// startTicker runs the Hub's connection clock once, d being the interval
// each connection is visited at (the first Handler's PingInterval).
func (h *Hub) startTicker(d time.Duration) {
	h.tickOnce.Do(func() {
		h.goTracked(func() {
			t := time.NewTicker(d / tickSlots)
			defer t.Stop()
			for k := uint32(0); ; k = (k + 1) % tickSlots {
				select {
				case now := <-t.C:
					h.mu.Lock()
					conns := make([]ticker, 0, len(h.conns)/tickSlots+1)
					for c := range h.conns {
						if tc, ok := c.(ticker); ok && tc.slot() == k {
							conns = append(conns, tc)
						}
					}
					h.mu.Unlock()
					for _, c := range conns {
						c.tick(now)
					}
				case <-h.ctx.Done():
					return
				}
			}
		})
	})
}

// readBufferSize is a WebSocket connection's read buffer: frames longer
// than this are read in several fills.
const readBufferSize = 512

// smallHijack hands the WebSocket upgrader a small read buffer of ours
// instead of the HTTP server's 4 KiB one, and keeps it so the read loop can
// tell whether a frame is already buffered.
type smallHijack struct {
	http.ResponseWriter
	br *bufio.Reader
}

func (s *smallHijack) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	// Through http.ResponseController: middleware that wraps the
	// ResponseWriter and has an Unwrap method works too.
	conn, brw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("broadcast: the ResponseWriter cannot be hijacked: %w", err)
	}
	if brw.Reader.Buffered() > 0 {
		// The client sent data before the handshake's end: keep the
		// server's reader, which holds it (the upgrader refuses it anyway).
		return conn, brw, nil
	}
	s.br = bufio.NewReaderSize(conn, readBufferSize)
	return conn, bufio.NewReadWriter(s.br, brw.Writer), nil
}
