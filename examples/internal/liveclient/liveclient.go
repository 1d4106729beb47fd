// Package liveclient is a small client of the broadcast wire protocol
// (broadcast/doc.go) written against the frames, not the Go API: it speaks
// raw WebSocket JSON frames or reads Server-Sent Events. A Client follows
// channels on one of several endpoints, and when its connection fails it
// connects to the next one and resumes every channel after the last offset
// it delivered, counting what it saw: messages, offsets skipped (missing),
// offsets seen again (repeated), resyncs and reconnects. loadgen -live and
// the quotes service's tests use it.
package liveclient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Position is a place in a channel: the epoch of its history and an offset.
type Position struct {
	Epoch  string `json:"epoch"`
	Offset uint64 `json:"offset"`
}

// Message is a publication the Client delivers.
type Message struct {
	Channel  string
	Position Position
	Data     json.RawMessage
	// Endpoint is the endpoint whose connection delivered it.
	Endpoint string
}

// frame is a server frame, every op's fields together.
type frame struct {
	Op        string          `json:"op"`
	ID        string          `json:"id,omitempty"`
	Channel   string          `json:"channel"`
	Data      json.RawMessage `json:"data,omitempty"`
	Epoch     string          `json:"epoch,omitempty"`
	Offset    uint64          `json:"offset,omitempty"`
	Recovered bool            `json:"recovered,omitempty"`
	Code      string          `json:"code,omitempty"`
	Message   string          `json:"message,omitempty"`
}

// Transport selects the protocol.
type Transport int

const (
	// WebSocket subscribes with subscribe frames (since the last offset on
	// reconnect) on the endpoint's /v1/live.
	WebSocket Transport = iota
	// SSE reads /v1/stream?symbol=… and resumes with Last-Event-ID.
	SSE
)

// Client follows Channels on Endpoints. Set the fields, then call Run once.
// Stats and Positions are safe to call while it runs.
type Client struct {
	// Endpoints are base URLs of replicas (http://host:port); the Client
	// starts on the first and moves to the next when a connection fails.
	Endpoints []string
	// Channels to follow. With SSE they must be quote channels
	// ("quotes:<SYMBOL>"): the stream is asked for by symbol.
	Channels  []string
	Transport Transport
	// Since, if set, gives channels a position to start after (e.g.
	// {epoch, 0}: from the epoch's first message), as if the Client had
	// delivered up to it.
	Since map[string]Position
	// Header is sent with every connection request (e.g. X-API-Key).
	Header http.Header
	// OnMessage, if set, is called for each new publication, in order per
	// channel, from the Client's goroutine.
	OnMessage func(Message)
	// Dialer for WebSocket connections (default: 10s handshake timeout);
	// HTTPClient for SSE (default: no timeout).
	Dialer     *websocket.Dialer
	HTTPClient *http.Client

	mu       sync.Mutex // protects pos and sseID
	pos      map[string]Position
	sseID    string
	endpoint int

	connectTime atomic.Int64 // of the first connection, ns
	stats       struct{ messages, missing, repeated, resyncs, connects atomic.Uint64 }
	// Closed is closed when a connection's subscriptions are all confirmed
	// the first time (WebSocket) or the stream started (SSE).
	readyOnce sync.Once
	ready     chan struct{}
	initOnce  sync.Once
}

// Stats are what a Client counted.
type Stats struct {
	Messages, Missing, Repeated, Resyncs uint64
	// Connects counts connections that were established (1 + reconnects).
	Connects uint64
	// ConnectTime is from Run to the first connection's subscriptions
	// being confirmed.
	ConnectTime time.Duration
}

func (c *Client) init() {
	c.initOnce.Do(func() {
		c.pos = map[string]Position{}
		c.ready = make(chan struct{})
		var parts []string
		for _, ch := range c.Channels {
			p, ok := c.Since[ch]
			if ok {
				c.pos[ch] = p
				parts = append(parts, p.Epoch+"-"+strconv.FormatUint(p.Offset, 10))
			} else {
				parts = append(parts, "")
			}
		}
		if len(c.Since) > 0 {
			c.sseID = strings.Join(parts, ".")
		}
	})
}

// Ready is closed once the first connection is subscribed to every channel.
func (c *Client) Ready() <-chan struct{} {
	c.init()
	return c.ready
}

// Stats returns the counters so far.
func (c *Client) Stats() Stats {
	return Stats{
		Messages: c.stats.messages.Load(), Missing: c.stats.missing.Load(), Repeated: c.stats.repeated.Load(),
		Resyncs: c.stats.resyncs.Load(), Connects: c.stats.connects.Load(), ConnectTime: time.Duration(c.connectTime.Load()),
	}
}

// Positions returns the position of the last message delivered per channel.
func (c *Client) Positions() map[string]Position {
	c.init()
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]Position, len(c.pos))
	for k, v := range c.pos {
		out[k] = v
	}
	return out
}

// Run follows the channels until ctx is done (then it returns nil),
// reconnecting to the next endpoint after every failure.
func (c *Client) Run(ctx context.Context) error {
	c.init()
	if len(c.Endpoints) == 0 || len(c.Channels) == 0 {
		return errors.New("liveclient: Endpoints and Channels must not be empty")
	}
	start := time.Now()
	fails := 0
	for ctx.Err() == nil {
		ep := c.Endpoints[c.endpoint%len(c.Endpoints)]
		var err error
		var connected bool
		if c.Transport == SSE {
			connected, err = c.runSSE(ctx, ep, start)
		} else {
			connected, err = c.runWebSocket(ctx, ep, start)
		}
		if ctx.Err() != nil {
			return nil
		}
		_ = err
		if connected {
			fails = 0
		}
		fails++
		c.endpoint++ // the next replica
		delay := min(2*time.Second, time.Duration(fails)*100*time.Millisecond)
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
	}
	return nil
}

func (c *Client) connected(start time.Time) {
	c.stats.connects.Add(1)
	c.readyOnce.Do(func() {
		c.connectTime.Store(int64(time.Since(start)))
		close(c.ready)
	})
}

// deliver checks m against the channel's last position and hands it on.
func (c *Client) deliver(m Message) {
	c.mu.Lock()
	last, ok := c.pos[m.Channel]
	if ok && last.Epoch == m.Position.Epoch {
		if m.Position.Offset <= last.Offset {
			c.mu.Unlock()
			c.stats.repeated.Add(1)
			return
		}
		if gap := m.Position.Offset - last.Offset - 1; gap > 0 {
			c.stats.missing.Add(gap)
		}
	}
	c.pos[m.Channel] = m.Position
	c.mu.Unlock()
	c.stats.messages.Add(1)
	if c.OnMessage != nil {
		c.OnMessage(m)
	}
}

func (c *Client) runWebSocket(ctx context.Context, endpoint string, start time.Time) (connected bool, err error) {
	u, err := url.Parse(strings.TrimRight(endpoint, "/") + "/v1/live")
	if err != nil {
		return false, err
	}
	u.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
	d := c.Dialer
	if d == nil {
		d = &websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	}
	ws, resp, err := d.DialContext(ctx, u.String(), c.Header)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return false, err
	}
	defer ws.Close()
	stop := context.AfterFunc(ctx, func() { ws.Close() })
	defer stop()
	c.mu.Lock()
	for i, ch := range c.Channels {
		f := map[string]any{"op": "subscribe", "id": fmt.Sprint(i + 1), "channel": ch}
		if p, ok := c.pos[ch]; ok {
			f["since"] = p
		}
		if err := ws.WriteJSON(f); err != nil {
			c.mu.Unlock()
			return false, err
		}
	}
	c.mu.Unlock()
	waiting := make(map[string]bool, len(c.Channels))
	for _, ch := range c.Channels {
		waiting[ch] = true
	}
	for {
		_, b, err := ws.ReadMessage()
		if err != nil {
			return connected, err
		}
		var f frame
		if err := json.Unmarshal(b, &f); err != nil {
			return connected, fmt.Errorf("liveclient: bad frame %q: %w", b, err)
		}
		switch f.Op {
		case "subscribed":
			c.mu.Lock()
			last, had := c.pos[f.Channel]
			if had && !f.Recovered {
				c.stats.resyncs.Add(1)
			}
			if !had || !f.Recovered || last.Epoch != f.Epoch {
				c.pos[f.Channel] = Position{Epoch: f.Epoch, Offset: f.Offset}
			}
			c.mu.Unlock()
			delete(waiting, f.Channel)
			if !connected && len(waiting) == 0 {
				connected = true
				c.connected(start)
			}
		case "message", "resync":
			c.handle(f, endpoint)
			if f.Op == "message" {
				continue
			}
			if err := ws.WriteJSON(map[string]any{"op": "subscribe", "channel": f.Channel}); err != nil {
				return connected, err
			}
		case "error":
			return connected, fmt.Errorf("liveclient: %s on %q: %s", f.Code, f.Channel, f.Message)
		}
	}
}

func (c *Client) runSSE(ctx context.Context, endpoint string, start time.Time) (connected bool, err error) {
	q := url.Values{}
	for _, ch := range c.Channels {
		sym, ok := strings.CutPrefix(ch, "quotes:")
		if !ok {
			return false, fmt.Errorf("liveclient: SSE follows quote channels only, got %q", ch)
		}
		q.Add("symbol", sym)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(endpoint, "/")+"/v1/stream?"+q.Encode(), nil)
	if err != nil {
		return false, err
	}
	for k, v := range c.Header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "text/event-stream")
	c.mu.Lock()
	if c.sseID != "" {
		req.Header.Set("Last-Event-ID", c.sseID)
	}
	c.mu.Unlock()
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("liveclient: %s: %s", req.URL, resp.Status)
	}
	connected = true
	c.connected(start)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var id, event, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if id != "" {
				c.mu.Lock()
				c.sseID = id
				if data == "" { // the stream's first event: where each channel starts
					c.startPositionsLocked(id)
				}
				c.mu.Unlock()
			}
			if data != "" {
				var f frame
				if err := json.Unmarshal([]byte(data), &f); err != nil {
					return connected, fmt.Errorf("liveclient: bad event data %q: %w", data, err)
				}
				if event == "message" || event == "resync" {
					c.handle(f, endpoint)
				}
			}
			id, event, data = "", "", ""
		case strings.HasPrefix(line, "id:"):
			id = strings.TrimSpace(line[3:])
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(line[6:])
		case strings.HasPrefix(line, "data:"):
			data += strings.TrimPrefix(line[5:], " ")
		}
	}
	return connected, sc.Err()
}

// handle takes a message or resync frame (the same JSON over both
// transports).
func (c *Client) handle(f frame, endpoint string) {
	if f.Op == "resync" {
		c.stats.resyncs.Add(1)
		c.mu.Lock()
		delete(c.pos, f.Channel)
		c.mu.Unlock()
		return
	}
	c.deliver(Message{Channel: f.Channel, Position: Position{Epoch: f.Epoch, Offset: f.Offset}, Data: f.Data, Endpoint: endpoint})
}

// startPositionsLocked sets, from an SSE id, the position of the channels
// that have none: "<epoch>-<offset>" per channel, in order, joined by ".".
func (c *Client) startPositionsLocked(id string) {
	for i, el := range strings.Split(id, ".") {
		if i >= len(c.Channels) {
			return
		}
		j := strings.LastIndexByte(el, '-')
		if j <= 0 {
			continue
		}
		var off uint64
		if _, err := fmt.Sscan(el[j+1:], &off); err != nil {
			continue
		}
		if _, ok := c.pos[c.Channels[i]]; !ok {
			c.pos[c.Channels[i]] = Position{Epoch: el[:j], Offset: off}
		}
	}
}
