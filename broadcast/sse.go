package broadcast

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"
)

// sseConn is one Server-Sent Events stream: the channels of the request's
// channel parameters, written by the request's goroutine.
type sseConn struct {
	hh       *handler
	h        *Hub
	channels []string
	tslot    uint32 // tick slot (ticker)
	// pos is per channel the position of the last event written: the
	// request's goroutine alone reads and writes it.
	pos []Position

	mu      sync.Mutex // protects the fields below
	queue   []sseItem
	bytes   int
	closed  bool
	slow    bool
	wake    chan struct{}
	started bool
}

type sseItem struct {
	e         *event // nil: heartbeat
	i         int    // channel index
	heartbeat bool
}

type sseSub struct {
	c      *sseConn
	i      int
	events bool
}

func (hh *handler) serveSSE(w http.ResponseWriter, r *http.Request, m Member, identified bool) {
	q := r.URL.Query()
	channels := q["channel"]
	if len(channels) == 0 {
		http.Error(w, "broadcast: at least one channel parameter is needed", http.StatusBadRequest)
		return
	}
	if len(channels) > hh.cfg.maxSubs {
		http.Error(w, "broadcast: too many channels", http.StatusBadRequest)
		return
	}
	for i, ch := range channels {
		if err := checkChannel(ch); err != nil {
			http.Error(w, trimPrefix(err), http.StatusBadRequest)
			return
		}
		if slices.Contains(channels[:i], ch) {
			http.Error(w, "broadcast: channel "+ch+" given twice", http.StatusBadRequest)
			return
		}
		if err := hh.cfg.authorize(r, m, ch, ActionSubscribe); err != nil {
			http.Error(w, "broadcast: forbidden", http.StatusForbidden)
			return
		}
	}
	var since []Position
	id := r.Header.Get("Last-Event-ID")
	if id == "" {
		id = q.Get("since")
	}
	if id != "" {
		var err error
		if since, err = parseSSEID(id, len(channels)); err != nil {
			http.Error(w, trimPrefix(err), http.StatusBadRequest)
			return
		}
	}
	events := q.Get("presence") == "1" || q.Get("presence") == "true"
	rc := http.NewResponseController(w)
	c := &sseConn{hh: hh, h: hh.h, channels: channels, pos: make([]Position, len(channels)), wake: make(chan struct{}, 1), tslot: hh.h.nextSlot()}
	if !hh.h.addConn(c) {
		http.Error(w, "broadcast: closed", http.StatusServiceUnavailable)
		return
	}
	defer hh.h.removeConn(c)
	hh.h.startTicker(hh.cfg.ping)

	var member *Member
	if identified {
		member = &m
	}
	subs := make([]*sseSub, 0, len(channels))
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, s := range subs {
			hh.h.detach(ctx, channels[s.i], s, member)
		}
	}()
	var resync []int
	for i, ch := range channels {
		s := &sseSub{c: c, i: i, events: events}
		sc := subConfig{events: events, member: member}
		if since != nil && !since[i].IsZero() {
			sc.since, sc.hasSince = since[i], true
		}
		recovered, pos, err := hh.h.attach(r.Context(), ch, s, sc)
		if err != nil {
			status := http.StatusServiceUnavailable
			if errors.Is(err, ErrInvalidArgument) {
				status = http.StatusBadRequest
			}
			http.Error(w, "broadcast: subscribe to "+ch+" failed", status)
			return
		}
		subs = append(subs, s)
		if c.pos[i].IsZero() {
			c.pos[i] = pos
		}
		if sc.hasSince && !recovered {
			resync = append(resync, i)
		}
	}

	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 4096)
	c.mu.Lock()
	c.started = true
	c.mu.Unlock()
	// An event with only an id sets the browser's Last-Event-ID: a client
	// that reconnects before any message still resumes from here.
	c.deadline(rc)
	bw.WriteString("retry: 1000\nid: " + encodeSSEID(c.pos) + "\n\n")
	for _, i := range resync {
		c.writeResync(bw, i)
	}
	if err := c.flush(rc, bw); err != nil {
		return
	}
	c.loop(r.Context(), rc, bw)
}

// loop writes queued events until the client goes, the Hub closes or the
// stream is cut for being slow.
func (c *sseConn) loop(ctx context.Context, rc *http.ResponseController, bw *bufio.Writer) {
	var batch []sseItem
	for {
		select {
		case <-c.wake:
		case <-ctx.Done():
			return
		case <-c.h.ctx.Done():
			return
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return
		}
		batch, c.queue = c.queue, batch[:0]
		c.bytes = 0
		c.mu.Unlock()
		// Written without c.mu: a client that reads slowly blocks this
		// goroutine only, while deliver goes on queueing up to the bound.
		c.deadline(rc)
		for _, it := range batch {
			c.writeItem(bw, it)
		}
		clear(batch)
		if err := c.flush(rc, bw); err != nil {
			return
		}
	}
}

// deadline bounds the writes that follow, those a full bufio.Writer makes
// as well as the flush.
func (c *sseConn) deadline(rc *http.ResponseController) {
	_ = rc.SetWriteDeadline(time.Now().Add(c.hh.cfg.writeWait))
}

func (c *sseConn) flush(rc *http.ResponseController, bw *bufio.Writer) error {
	if err := bw.Flush(); err != nil {
		return err
	}
	return rc.Flush()
}

// writeItem writes one event, with the id of every channel's position
// after it. Only the stream's goroutine calls it, once the stream started:
// c.pos is its own then.
func (c *sseConn) writeItem(bw *bufio.Writer, it sseItem) {
	if it.heartbeat {
		bw.WriteString(": heartbeat\n\n")
		return
	}
	e := it.e
	switch e.kind {
	case Publication:
		c.pos[it.i] = e.pos
		bw.WriteString("id: " + encodeSSEID(c.pos) + "\nevent: message\ndata: ")
		writeDataLine(bw, e.wsFrame())
	case kindResync:
		c.pos[it.i] = e.pos
		c.writeResync(bw, it.i)
	case Join, Leave:
		if e.kind == Join {
			bw.WriteString("event: join\ndata: ")
		} else {
			bw.WriteString("event: leave\ndata: ")
		}
		writeDataLine(bw, e.wsFrame())
	}
}

func (c *sseConn) writeResync(bw *bufio.Writer, i int) {
	bw.WriteString("id: " + encodeSSEID(c.pos) + "\nevent: resync\ndata: ")
	writeDataLine(bw, encodeResync(c.channels[i]))
}

// writeDataLine writes b on one data line. JSON has no raw line breaks
// inside strings, so those outside (whitespace) become spaces.
func writeDataLine(bw *bufio.Writer, b []byte) {
	if bytes.ContainsAny(b, "\r\n") {
		b = bytes.Map(func(r rune) rune {
			if r == '\r' || r == '\n' {
				return ' '
			}
			return r
		}, b)
	}
	bw.Write(b)
	bw.WriteString("\n\n")
}

// deliver implements sink.
func (s *sseSub) deliver(e *event) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if (e.kind == Join || e.kind == Leave) && !s.events {
		return
	}
	if e.kind == kindResync && !c.started {
		return // reported after the start
	}
	size := e.size()
	if len(c.queue) >= c.h.cfg.bufMessages || c.bytes+size > c.h.cfg.bufBytes {
		if c.h.cfg.slow == Disconnect {
			c.h.slowDisconnected(c.channels[s.i])
			c.closed, c.slow = true, true
			c.queue = nil
			c.wakeLocked()
			return
		}
		// Resync: drop what is queued; each channel that lost messages
		// gets a resync at the position of the last one dropped.
		last := make(map[int]Position)
		for _, it := range c.queue {
			if it.e != nil && it.e.kind == Publication {
				last[it.i] = it.e.pos
			}
		}
		if e.kind == Publication {
			last[s.i] = e.pos
		}
		clear(c.queue)
		c.queue, c.bytes = c.queue[:0], 0
		for i, p := range last {
			c.h.resynced(c.channels[i], ResyncSlow)
			c.queue = append(c.queue, sseItem{e: &event{kind: kindResync, channel: c.channels[i], pos: p, reason: ResyncSlow}, i: i})
		}
		c.wakeLocked()
		if e.kind == Publication {
			return
		}
	}
	c.queue = append(c.queue, sseItem{e: e, i: s.i})
	c.bytes += size
	c.wakeLocked()
}

func (c *sseConn) wakeLocked() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *sseConn) slot() uint32 { return c.tslot }

// tick implements ticker: a heartbeat comment.
func (c *sseConn) tick(time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.queue = append(c.queue, sseItem{heartbeat: true})
		c.wakeLocked()
	}
}

// closeHub implements closer.
func (c *sseConn) closeHub() {
	c.mu.Lock()
	c.closed = true
	c.wakeLocked()
	c.mu.Unlock()
}
