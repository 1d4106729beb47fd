package broadcast

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Close codes the server sends.
const (
	closeSlow     = websocket.CloseTryAgainLater // 1013: the buffer filled up (WithSlowClient Disconnect)
	closeShutdown = websocket.CloseGoingAway     // 1001: the Hub closes
)

// wsConn is one WebSocket connection. The handler's goroutine reads and
// runs the client's requests; a writer goroutine runs only while frames are
// queued, so an idle connection holds one goroutine and no write buffer.
type wsConn struct {
	hh     *handler
	h      *Hub
	ws     *websocket.Conn
	br     *bufio.Reader // ws's read buffer (nil: not ours)
	r      *http.Request
	member Member
	joins  bool   // identified: subscriptions join presence
	tslot  uint32 // tick slot (ticker)

	mu       sync.Mutex // protects the fields below
	subs     map[string]*wsSub
	queue    []wsFrame
	bytes    int
	writing  bool // a writer goroutine runs
	overflow bool // Resync policy: dropping until resync frames are queued
	closed   bool
	closing  int // close code to send once the queue is written (0: none)
	lastRead time.Time
	writerWG sync.WaitGroup
	stopping atomic.Bool // closeLocked ran: the writer skips queued data
}

// wsFrame is a queued frame: its opcode (opText, opPing, ...) and payload.
type wsFrame struct {
	data []byte
	op   byte
}

// wsSub is a connection's subscription to one channel, the sink the
// channel hands events to.
type wsSub struct {
	c       *wsConn
	channel string
	events  bool
	started bool     // "subscribed" is queued; later events go to the queue
	early   []*event // events before that
}

func (hh *handler) serveWebSocket(w *smallHijack, r *http.Request, m Member, identified bool) {
	ws, err := hh.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered
	}
	ws.SetReadLimit(int64(hh.h.cfg.maxMessage) + 4096)
	c := &wsConn{hh: hh, h: hh.h, ws: ws, br: w.br, r: r, member: m, joins: identified, subs: map[string]*wsSub{}, lastRead: time.Now(), tslot: hh.h.nextSlot()}
	if !hh.h.addConn(c) {
		_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(closeShutdown, "closed"), time.Now().Add(time.Second))
		_ = ws.Close()
		return
	}
	hh.h.startTicker(hh.cfg.ping)
	ws.SetPongHandler(func(string) error { c.touch(); return nil })
	// Only the writer writes to the socket: a pong or a close reply is
	// queued like any frame.
	ws.SetPingHandler(func(data string) error { c.control(opPong, []byte(data)); return nil })
	ws.SetCloseHandler(func(code int, text string) error {
		if code == websocket.CloseNoStatusReceived {
			c.control(opClose, nil)
		} else {
			c.control(opClose, []byte{byte(code >> 8), byte(code)})
		}
		return nil
	})
	// Read on a fresh goroutine and let the HTTP server's one end: its
	// stack (grown by the request's handling) and its buffers are freed,
	// so an idle connection holds one small goroutine.
	if !hh.h.goTracked(func() {
		c.readLoop()
		c.shutdown()
	}) {
		c.shutdown()
	}
}

func (c *wsConn) touch() {
	c.mu.Lock()
	c.lastRead = time.Now()
	c.mu.Unlock()
}

// readLoop runs the client's requests until the connection fails.
func (c *wsConn) readLoop() {
	for {
		if c.br != nil && c.br.Buffered() == 0 {
			waitReadable(c.ws.NetConn())
		}
		typ, b, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		c.touch()
		if typ != websocket.TextMessage {
			c.send(encodeError("", "", codeBadRequest, "frames must be text"))
			continue
		}
		f, ferr := decodeClientFrame(b, c.h.cfg.maxMessage)
		if ferr != nil {
			c.send(encodeError(f.ID, f.Channel, ferr.code, ferr.msg))
			continue
		}
		c.handle(f)
	}
}

// handle runs one decoded request.
func (c *wsConn) handle(f clientFrame) {
	ctx, cancel := context.WithTimeout(c.h.ctx, 30*time.Second)
	defer cancel()
	switch f.Op {
	case opSubscribe:
		c.subscribe(ctx, f)
	case opUnsubscribe:
		c.mu.Lock()
		s := c.subs[f.Channel]
		delete(c.subs, f.Channel)
		c.mu.Unlock()
		if s == nil {
			c.send(encodeError(f.ID, f.Channel, codeNotFound, "not subscribed"))
			return
		}
		c.h.detach(ctx, f.Channel, s, c.memberFor())
		if f.ID != "" {
			c.send(encodeUnsubscribed(f.ID, f.Channel))
		}
	case opPublish:
		if err := c.hh.cfg.authorize(c.r, c.member, f.Channel, ActionPublish); err != nil {
			c.send(encodeError(f.ID, f.Channel, codeForbidden, "publish not allowed"))
			return
		}
		pos, err := c.h.Publish(ctx, f.Channel, f.Data)
		if err != nil {
			c.sendErr(f, err)
			return
		}
		if f.ID != "" {
			c.send(encodePublished(f.ID, f.Channel, pos))
		}
	case opPresence:
		if err := c.hh.cfg.authorize(c.r, c.member, f.Channel, ActionPresence); err != nil {
			c.send(encodeError(f.ID, f.Channel, codeForbidden, "presence not allowed"))
			return
		}
		ms, err := c.h.Presence(ctx, f.Channel)
		if err != nil {
			c.sendErr(f, err)
			return
		}
		c.send(encodePresence(f.ID, f.Channel, ms))
	}
}

func (c *wsConn) sendErr(f clientFrame, err error) {
	switch {
	case errors.Is(err, ErrInvalidArgument):
		c.send(encodeError(f.ID, f.Channel, codeBadRequest, trimPrefix(err)))
	case errors.Is(err, ErrForbidden):
		c.send(encodeError(f.ID, f.Channel, codeForbidden, "forbidden"))
	default:
		c.h.cfg.logger.Warn("broadcast: request failed", "op", f.Op, "channel", f.Channel, "err", err)
		c.send(encodeError(f.ID, f.Channel, codeInternal, "temporarily unavailable"))
	}
}

func trimPrefix(err error) string {
	s := err.Error()
	if p := ErrInvalidArgument.Error() + ": "; len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

func (c *wsConn) memberFor() *Member {
	if !c.joins {
		return nil
	}
	m := c.member
	return &m
}

func (c *wsConn) subscribe(ctx context.Context, f clientFrame) {
	c.mu.Lock()
	_, dup := c.subs[f.Channel]
	n := len(c.subs)
	c.mu.Unlock()
	if dup {
		c.send(encodeError(f.ID, f.Channel, codeBadRequest, "already subscribed"))
		return
	}
	if n >= c.hh.cfg.maxSubs {
		c.send(encodeError(f.ID, f.Channel, codeBadRequest, "too many subscriptions on this connection"))
		return
	}
	if err := c.hh.cfg.authorize(c.r, c.member, f.Channel, ActionSubscribe); err != nil {
		c.send(encodeError(f.ID, f.Channel, codeForbidden, "subscribe not allowed"))
		return
	}
	s := &wsSub{c: c, channel: f.Channel, events: f.Presence}
	sc := subConfig{events: f.Presence, member: c.memberFor()}
	if f.Since != nil {
		sc.since, sc.hasSince = Position{Epoch: f.Since.Epoch, Offset: f.Since.Offset}, true
	}
	c.mu.Lock()
	c.subs[f.Channel] = s
	c.mu.Unlock()
	recovered, pos, err := c.h.attach(ctx, f.Channel, s, sc)
	if err != nil {
		c.mu.Lock()
		delete(c.subs, f.Channel)
		c.mu.Unlock()
		c.sendErr(f, err)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	s.started = true
	c.enqueueLocked(encodeSubscribed(f.ID, f.Channel, pos, recovered))
	early := s.early
	s.early = nil
	for _, e := range early {
		c.enqueueEventLocked(s, e)
	}
}

// deliver implements sink.
func (s *wsSub) deliver(e *event) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.overflow {
		return
	}
	if !s.started {
		if e.kind == kindResync {
			s.early = s.early[:0] // the subscribed frame says recovered: false
			return
		}
		s.early = append(s.early, e)
		return
	}
	c.enqueueEventLocked(s, e)
}

func (c *wsConn) enqueueEventLocked(s *wsSub, e *event) {
	if e.kind == kindResync {
		// The server drops the subscription; the client subscribes again.
		if c.subs[s.channel] == s {
			delete(c.subs, s.channel)
			c.h.goTracked(func() { c.h.detach(context.Background(), s.channel, s, c.memberFor()) })
		}
		c.enqueueLocked(encodeResync(s.channel))
		return
	}
	if (e.kind == Join || e.kind == Leave) && !s.events {
		return
	}
	b := e.wsFrame()
	if len(c.queue) >= c.h.cfg.bufMessages || c.bytes+len(b) > c.h.cfg.bufBytes {
		c.slowLocked(s.channel)
		return
	}
	c.enqueueLocked(b)
}

// slowLocked applies WithSlowClient to a connection whose queue is full.
func (c *wsConn) slowLocked(channel string) {
	clear(c.queue)
	c.queue, c.bytes = c.queue[:0], 0
	if c.h.cfg.slow == Disconnect {
		c.h.slowDisconnected(channel)
		c.closeLocked(closeSlow, "too slow")
		return
	}
	c.overflow = true
	c.h.goTracked(c.resyncAll)
}

// resyncAll drops every subscription and queues a resync frame for each.
func (c *wsConn) resyncAll() {
	c.mu.Lock()
	subs := c.subs
	c.subs = map[string]*wsSub{}
	c.mu.Unlock()
	for ch, s := range subs {
		c.h.detach(context.Background(), ch, s, c.memberFor())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.overflow = false
	for ch := range subs {
		c.h.resynced(ch, ResyncSlow)
		c.enqueueLocked(encodeResync(ch))
	}
}

// send queues a reply frame. Replies are small and few (one per request),
// so they are not counted against the buffer.
func (c *wsConn) send(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.enqueueLocked(b)
}

func (c *wsConn) enqueueLocked(b []byte) {
	if c.closed {
		return
	}
	c.queue = append(c.queue, wsFrame{data: b, op: opText})
	c.bytes += len(b)
	c.startWriterLocked()
}

func (c *wsConn) startWriterLocked() {
	if c.writing {
		return
	}
	c.writing = true
	c.writerWG.Add(1)
	go c.writeLoop()
}

// WebSocket opcodes of the frames the writer sends.
const (
	opText  = 1
	opClose = 8
	opPing  = 9
	opPong  = 10
)

// appendHeader appends the header of an unmasked, final server frame.
func appendHeader(b []byte, op byte, n int) []byte {
	switch {
	case n < 126:
		return append(b, 0x80|op, byte(n))
	case n < 1<<16:
		return append(b, 0x80|op, 126, byte(n>>8), byte(n))
	}
	return append(b, 0x80|op, 127, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// writeScratch is a writer's per-batch memory, pooled: an idle connection
// holds none.
type writeScratch struct {
	hdrs []byte
	bufs net.Buffers
}

var scratchPool = sync.Pool{New: func() any { return new(writeScratch) }}

// writeLoop writes the queue until it is empty, then exits. Every frame
// queued meanwhile goes out in one writev system call: the writer is the
// only one that writes to the socket (pongs and close frames are queued
// too), so it frames them itself.
func (c *wsConn) writeLoop() {
	defer c.writerWG.Done()
	var batch []wsFrame
	nc := c.ws.NetConn()
	for {
		c.mu.Lock()
		if len(c.queue) == 0 || c.closed && c.closing == 0 {
			code := c.closing
			c.writing = false
			c.closing = 0
			c.mu.Unlock()
			if code != 0 {
				c.writeClose(code)
			}
			return
		}
		batch, c.queue = c.queue, batch[:0]
		c.bytes = 0
		c.mu.Unlock()
		ws := scratchPool.Get().(*writeScratch)
		stopping := c.stopping.Load()
		if need := 10 * len(batch); cap(ws.hdrs) < need {
			ws.hdrs = make([]byte, 0, need)
		}
		for _, f := range batch {
			if stopping && f.op == opText {
				continue // closing: the close frame goes next
			}
			at := len(ws.hdrs)
			ws.hdrs = appendHeader(ws.hdrs, f.op, len(f.data))
			ws.bufs = append(ws.bufs, ws.hdrs[at:len(ws.hdrs)], f.data)
		}
		wait := c.hh.cfg.writeWait
		if stopping {
			wait = time.Second
		}
		_ = nc.SetWriteDeadline(time.Now().Add(wait))
		bufs := ws.bufs
		_, err := bufs.WriteTo(nc)
		clear(ws.bufs[:cap(ws.bufs)])
		ws.hdrs, ws.bufs = ws.hdrs[:0], ws.bufs[:0]
		if cap(ws.hdrs) <= 64<<10 && cap(ws.bufs) <= 8192 {
			scratchPool.Put(ws)
		}
		clear(batch)
		if err != nil {
			c.mu.Lock()
			c.writing = false
			c.mu.Unlock()
			_ = nc.Close()
			return
		}
	}
}

func (c *wsConn) writeClose(code int) {
	msg := "closed"
	if code == closeSlow {
		msg = "too slow"
	}
	nc := c.ws.NetConn()
	payload := append([]byte{byte(code >> 8), byte(code)}, msg...)
	_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = nc.Write(append(appendHeader(nil, opClose, len(payload)), payload...))
	_ = nc.Close()
}

// closeLocked stops queueing and has the writer send a close frame (or
// sends it now if no writer runs), which ends the read loop.
func (c *wsConn) closeLocked(code int, reason string) {
	if c.closed {
		return
	}
	c.closed = true
	c.stopping.Store(true)
	if c.writing {
		// Cut a write blocked on a client that does not read short: one
		// second more for it, then the close frame (or the socket close).
		c.closing = code
		_ = c.ws.NetConn().SetWriteDeadline(time.Now().Add(time.Second))
		return
	}
	c.writerWG.Add(1)
	go func() {
		defer c.writerWG.Done()
		c.writeClose(code)
	}()
}

// control queues a control frame (a pong, a close reply).
func (c *wsConn) control(op byte, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.queue = append(c.queue, wsFrame{op: op, data: data})
	c.startWriterLocked()
}

func (c *wsConn) slot() uint32 { return c.tslot }

// tick implements ticker: a ping when the connection was quiet, and a close
// when the client answered nothing for three intervals.
func (c *wsConn) tick(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	quiet := now.Sub(c.lastRead)
	if quiet > 3*c.hh.cfg.ping {
		c.closed = true
		go func() { _ = c.ws.Close() }()
		return
	}
	c.queue = append(c.queue, wsFrame{op: opPing})
	c.startWriterLocked()
}

// closeHub implements closer.
func (c *wsConn) closeHub() {
	c.mu.Lock()
	c.closeLocked(closeShutdown, "closed")
	c.mu.Unlock()
}

// shutdown runs when the read loop ends: drop the subscriptions, wait for
// the writer, close the socket.
func (c *wsConn) shutdown() {
	c.mu.Lock()
	c.closed = true
	subs := c.subs
	c.subs = map[string]*wsSub{}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for ch, s := range subs {
		c.h.detach(ctx, ch, s, c.memberFor())
	}
	// Let the writer send what is queued (a close reply), for a second.
	_ = c.ws.NetConn().SetWriteDeadline(time.Now().Add(time.Second))
	c.writerWG.Wait()
	_ = c.ws.Close()
	c.h.removeConn(c)
}
