package broadcast_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/broadcast"
	"github.com/outrigger-dev/outrigger/internal/redistest"
)

// serve starts an httptest server for h's Handler at /live.
func serve(t *testing.T, h *broadcast.Hub, opts ...broadcast.HandlerOption) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/live", h.Handler(opts...))
	mux.Handle("/live/client.js", broadcast.ClientJS)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// wsClient is a raw WebSocket client: it sends and reads JSON text frames,
// not our Go API.
type wsClient struct {
	t  *testing.T
	ws *websocket.Conn
}

func dial(t *testing.T, srv *httptest.Server, hdr http.Header) *wsClient {
	t.Helper()
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/live"
	ws, resp, err := websocket.DefaultDialer.Dial(url, hdr)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	require.NoError(t, err)
	t.Cleanup(func() { _ = ws.Close() })
	return &wsClient{t: t, ws: ws}
}

func (c *wsClient) send(frame string) {
	c.t.Helper()
	require.NoError(c.t, c.ws.WriteMessage(websocket.TextMessage, []byte(frame)))
}

// read returns the next frame as a map.
func (c *wsClient) read() map[string]any {
	c.t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, b, err := c.ws.ReadMessage()
	require.NoError(c.t, err)
	var m map[string]any
	require.NoError(c.t, json.Unmarshal(b, &m), "frame %s", b)
	return m
}

// readRaw returns the next frame's text.
func (c *wsClient) readRaw() string {
	c.t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, b, err := c.ws.ReadMessage()
	require.NoError(c.t, err)
	return string(b)
}

func TestWebSocketProtocol(t *testing.T) {
	leakCheck(t)
	h, err := broadcast.NewLocal(broadcast.WithMaxMessageSize(1024))
	require.NoError(t, err)
	defer h.Close()
	srv := serve(t, h, broadcast.MaxSubscriptions(3))
	defer srv.Close()
	c := dial(t, srv, nil)
	ctx := testCtx(t, 30*time.Second)

	c.send(`{"op":"subscribe","id":"1","channel":"news"}`)
	sub := c.read()
	require.Equal(t, "subscribed", sub["op"])
	require.Equal(t, "1", sub["id"])
	require.Equal(t, "news", sub["channel"])
	require.Equal(t, false, sub["recovered"])
	epoch := sub["epoch"].(string)
	require.NotEmpty(t, epoch)
	require.EqualValues(t, 0, sub["offset"])

	_, err = h.Publish(ctx, "news", []byte(`{"t":"a<b"}`))
	require.NoError(t, err)
	require.Equal(t, `{"op":"message","channel":"news","data":{"t":"a<b"},"epoch":"`+epoch+`","offset":1}`, c.readRaw())

	// Errors keep the connection open.
	for _, tc := range []struct{ frame, code string }{
		{`{`, "bad_request"},
		{`[1]`, "bad_request"},
		{`{"op":"dance","channel":"x"}`, "bad_request"},
		{`{"op":"subscribe","id":"2"}`, "bad_request"},
		{`{"op":"subscribe","id":"2","channel":"` + strings.Repeat("x", 256) + `"}`, "bad_request"},
		{`{"op":"subscribe","id":"2","channel":"news"}`, "bad_request"}, // already subscribed
		{`{"op":"publish","id":"3","channel":"news","data":1}`, "forbidden"},
		{`{"op":"publish","id":"3","channel":"news"}`, "bad_request"},
		{`{"op":"unsubscribe","id":"4","channel":"other"}`, "not_found"},
		{`{"op":"publish","id":"5","channel":"news","data":"` + strings.Repeat("x", 2000) + `"}`, "too_large"},
	} {
		c.send(tc.frame)
		e := c.read()
		require.Equal(t, "error", e["op"], tc.frame)
		require.Equal(t, tc.code, e["code"], "%s: %v", tc.frame, e["message"])
	}
	require.NoError(t, c.ws.WriteMessage(websocket.BinaryMessage, []byte{1, 2}))
	require.Equal(t, "error", c.read()["op"])

	// The subscription limit.
	c.send(`{"op":"subscribe","channel":"b"}`)
	require.Equal(t, "subscribed", c.read()["op"])
	c.send(`{"op":"subscribe","channel":"c"}`)
	require.Equal(t, "subscribed", c.read()["op"])
	c.send(`{"op":"subscribe","id":"9","channel":"d"}`)
	e := c.read()
	require.Equal(t, "error", e["op"])
	require.Contains(t, e["message"], "too many subscriptions")

	// Presence and unsubscribe.
	c.send(`{"op":"presence","id":"p","channel":"news"}`)
	p := c.read()
	require.Equal(t, "presence", p["op"])
	require.Equal(t, "p", p["id"])
	require.Empty(t, p["members"], "anonymous connections join no presence")
	c.send(`{"op":"unsubscribe","id":"u","channel":"news"}`)
	require.Equal(t, "unsubscribed", c.read()["op"])
	_, err = h.Publish(ctx, "news", []byte(`2`))
	require.NoError(t, err)
	_, err = h.Publish(ctx, "b", []byte(`3`))
	require.NoError(t, err)
	m := c.read()
	require.Equal(t, "b", m["channel"], "news is no longer delivered")
	require.Equal(t, 1, h.Stats().Connections)
}

func TestWebSocketAuth(t *testing.T) {
	leakCheck(t)
	h, err := broadcast.NewLocal()
	require.NoError(t, err)
	defer h.Close()
	srv := serve(t, h,
		broadcast.Identify(func(r *http.Request) (broadcast.Member, error) {
			u := r.URL.Query().Get("user")
			if u == "" {
				return broadcast.Member{}, errors.New("no user")
			}
			return broadcast.Member{UserID: u, Info: json.RawMessage(`{"name":"` + u + `"}`)}, nil
		}),
		broadcast.Authorize(func(r *http.Request, m broadcast.Member, ch string, a broadcast.Action) error {
			if strings.HasPrefix(ch, "private") && m.UserID != "admin" {
				return broadcast.ErrForbidden
			}
			if a == broadcast.ActionPublish && m.UserID != "admin" {
				return broadcast.ErrForbidden
			}
			return nil
		}),
		broadcast.AllowOrigins("*.example.com"),
	)
	defer srv.Close()
	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http") + "/live"

	_, resp, err := websocket.DefaultDialer.Dial(wsURL, nil)
	require.Error(t, err)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp.Body.Close()

	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"https://evil.test", false},
		{"https://app.example.com", true},
		{srv.URL, true}, // same host
		{"null", false},
	} {
		ws, resp, err := websocket.DefaultDialer.Dial(wsURL+"?user=ann", http.Header{"Origin": {tc.origin}})
		if tc.ok {
			require.NoError(t, err, tc.origin)
			ws.Close()
		} else {
			require.Error(t, err, tc.origin)
			require.Equal(t, http.StatusForbidden, resp.StatusCode, tc.origin)
		}
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
	}

	ws, _, err := websocket.DefaultDialer.Dial(wsURL+"?user=ann", nil)
	require.NoError(t, err)
	ann := &wsClient{t: t, ws: ws}
	defer ws.Close()
	ann.send(`{"op":"subscribe","id":"1","channel":"private-x"}`)
	require.Equal(t, "forbidden", ann.read()["code"])
	ann.send(`{"op":"subscribe","id":"2","channel":"room","presence":true}`)
	require.Equal(t, "subscribed", ann.read()["op"])
	j := ann.read()
	require.Equal(t, "join", j["op"])
	require.Equal(t, "ann", j["member"].(map[string]any)["user"])

	ws2, _, err := websocket.DefaultDialer.Dial(wsURL+"?user=admin", nil)
	require.NoError(t, err)
	admin := &wsClient{t: t, ws: ws2}
	admin.send(`{"op":"subscribe","channel":"room"}`)
	require.Equal(t, "subscribed", admin.read()["op"])
	require.Equal(t, "join", ann.read()["op"])
	admin.send(`{"op":"publish","id":"7","channel":"room","data":{"hello":"world"}}`)
	ack := admin.read()
	for ack["op"] == "message" {
		ack = admin.read()
	}
	require.Equal(t, "published", ack["op"])
	require.Equal(t, "7", ack["id"])
	require.EqualValues(t, 1, ack["offset"])
	msg := ann.read()
	require.Equal(t, "message", msg["op"])
	require.Equal(t, map[string]any{"hello": "world"}, msg["data"])

	ann.send(`{"op":"presence","id":"p","channel":"room"}`)
	p := ann.read()
	require.Len(t, p["members"], 2)
	ws2.Close()
	l := ann.read()
	require.Equal(t, "leave", l["op"])
	require.Equal(t, "admin", l["member"].(map[string]any)["user"])

	// SSE: 401 and 403 too.
	resp, err = sseGet(srv.URL+"/live?channel=room", "")
	require.NoError(t, err)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp.Body.Close()
	resp, err = sseGet(srv.URL+"/live?user=ann&channel=private-x", "")
	require.NoError(t, err)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	resp.Body.Close()
}

// TestWebSocketRecoveryAcrossHubs: a client reads part of a stream on one
// Hub's server, disconnects, and resumes on another Hub's with since.
func TestWebSocketRecoveryAcrossHubs(t *testing.T) {
	leakCheck(t)
	db := redistest.New(t)
	prefix := db.Prefix + "wsrec:"
	h1, h2 := hubOn(t, db.NewClient(t), prefix), hubOn(t, db.NewClient(t), prefix)
	s1, s2 := serve(t, h1), serve(t, h2)
	ctx := testCtx(t, 60*time.Second)
	c := dial(t, s1, nil)
	c.send(`{"op":"subscribe","channel":"r"}`)
	require.Equal(t, "subscribed", c.read()["op"])
	for k := range 10 {
		_, err := h2.Publish(ctx, "r", []byte(strconv.Itoa(k)))
		require.NoError(t, err)
	}
	var last map[string]any
	for range 4 {
		last = c.read()
	}
	require.NoError(t, c.ws.Close())
	for k := 10; k < 20; k++ {
		_, err := h1.Publish(ctx, "r", []byte(strconv.Itoa(k)))
		require.NoError(t, err)
	}
	c2 := dial(t, s2, nil)
	c2.send(`{"op":"subscribe","id":"r","channel":"r","since":{"epoch":"` + last["epoch"].(string) + `","offset":` + strconv.Itoa(int(last["offset"].(float64))) + `}}`)
	sub := c2.read()
	require.Equal(t, "subscribed", sub["op"])
	require.Equal(t, true, sub["recovered"])
	for k := 4; k < 20; k++ {
		m := c2.read()
		require.Equal(t, "message", m["op"])
		require.EqualValues(t, k, m["data"])
		require.EqualValues(t, k+1, m["offset"])
	}
	c2.send(`{"op":"subscribe","channel":"r2","since":{"epoch":"gone","offset":3}}`)
	sub = c2.read()
	require.Equal(t, false, sub["recovered"])
}

func sseGet(url, lastID string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	return http.DefaultClient.Do(req)
}

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct{ id, event, data string }

// sseReader parses an event stream as a browser does.
type sseReader struct {
	t      *testing.T
	sc     *bufio.Scanner
	lastID string
	body   interface{ Close() error }
}

func newSSEReader(t *testing.T, resp *http.Response) *sseReader {
	t.Helper()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	t.Cleanup(func() { resp.Body.Close() })
	return &sseReader{t: t, sc: bufio.NewScanner(resp.Body), body: resp.Body}
}

// next returns the next event with data; comments and id-only events
// update lastID as EventSource does.
func (r *sseReader) next() sseEvent {
	r.t.Helper()
	var ev sseEvent
	comments := 0
	for r.sc.Scan() {
		line := r.sc.Text()
		switch {
		case line == "":
			if ev.data != "" {
				return ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, ":"):
			comments++
		case strings.HasPrefix(line, "id: "):
			ev.id = line[4:]
			r.lastID = ev.id
		case strings.HasPrefix(line, "event: "):
			ev.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			ev.data += line[6:]
		}
	}
	r.t.Fatalf("event stream ended: %v", r.sc.Err())
	return ev
}

func TestSSE(t *testing.T) {
	leakCheck(t)
	db := redistest.New(t)
	prefix := db.Prefix + "sse:"
	h1, h2 := hubOn(t, db.NewClient(t), prefix), hubOn(t, db.NewClient(t), prefix)
	s1, s2 := serve(t, h1, broadcast.PingInterval(50*time.Millisecond)), serve(t, h2)
	ctx := testCtx(t, 60*time.Second)

	resp, err := sseGet(s1.URL+"/live?channel=a&channel=b", "")
	require.NoError(t, err)
	r := newSSEReader(t, resp)
	for k := range 6 {
		ch := []string{"a", "b"}[k%2]
		_, err := h2.Publish(ctx, ch, []byte(`{"k":`+strconv.Itoa(k)+`}`))
		require.NoError(t, err)
	}
	for k := range 3 { // in publish order: the stream interleaves a and b as they arrive
		ev := r.next()
		require.Equal(t, "message", ev.event)
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(ev.data), &m))
		require.Equal(t, "message", m["op"])
		require.EqualValues(t, k, m["data"].(map[string]any)["k"])
	}
	lastID := r.lastID
	resp.Body.Close()

	// EventSource reconnects with Last-Event-ID, here to another Hub.
	resp, err = sseGet(s2.URL+"/live?channel=a&channel=b", lastID)
	require.NoError(t, err)
	r2 := newSSEReader(t, resp)
	got := map[int]bool{}
	for range 3 { // recovered channel by channel: a's, then b's
		ev := r2.next()
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(ev.data), &m))
		got[int(m["data"].(map[string]any)["k"].(float64))] = true
	}
	require.Equal(t, map[int]bool{3: true, 4: true, 5: true}, got, "after Last-Event-ID %s", lastID)
	// A since that history no longer covers: resync.
	resp, err = sseGet(s2.URL+"/live?channel=a&since=ffff-3", "")
	require.NoError(t, err)
	r3 := newSSEReader(t, resp)
	ev := r3.next()
	require.Equal(t, "resync", ev.event)
	require.JSONEq(t, `{"op":"resync","channel":"a"}`, ev.data)

	for _, bad := range []string{"x", "a-1.b-2.c-3", "a?-1"} {
		resp, err = sseGet(s2.URL+"/live?channel=a&channel=b", bad)
		require.NoError(t, err)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, bad)
		resp.Body.Close()
	}
	resp, err = sseGet(s2.URL+"/live", "")
	require.NoError(t, err)
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp.Body.Close()

	// Heartbeats keep flowing on the 50ms server.
	resp, err = sseGet(s1.URL+"/live?channel=hb", "")
	require.NoError(t, err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && sc.Text() != ": heartbeat" {
	}
	require.Equal(t, ": heartbeat", sc.Text())
}

// TestSSEIdleThenLarge: a stream idle for longer than its WriteTimeout
// still takes a message bigger than its write buffer. The write deadline is
// set when a batch is written, not left from the last flush.
func TestSSEIdleThenLarge(t *testing.T) {
	leakCheck(t)
	h, err := broadcast.NewLocal()
	require.NoError(t, err)
	defer h.Close()
	const wait = 50 * time.Millisecond
	srv := serve(t, h, broadcast.WriteTimeout(wait))
	ctx := testCtx(t, 30*time.Second)
	resp, err := sseGet(srv.URL+"/live?channel=idle", "")
	require.NoError(t, err)
	r := newSSEReader(t, resp)
	waitFor(t, 10*time.Second, "the stream registered", func() bool { return h.Stats().Connections == 1 })
	// Real time, not a clock: the deadline is the socket's.
	time.Sleep(4 * wait)
	payload := `"` + strings.Repeat("y", 32<<10) + `"`
	_, err = h.Publish(ctx, "idle", []byte(payload))
	require.NoError(t, err)
	ev := r.next()
	require.Equal(t, "message", ev.event)
	require.Contains(t, ev.data, payload)
}

// TestSlowWebSocket: a client that never reads is disconnected (1013) or
// resynced at its buffer bound; another client on the same channel gets
// everything, and the Hub's memory stays bounded.
func TestSlowWebSocket(t *testing.T) {
	leakCheck(t)
	for _, policy := range []broadcast.SlowPolicy{broadcast.Disconnect, broadcast.Resync} {
		t.Run(policy.String(), func(t *testing.T) {
			h, err := broadcast.NewLocal(broadcast.WithClientBuffer(64, 256<<10), broadcast.WithSlowClient(policy))
			require.NoError(t, err)
			defer h.Close()
			// The slow client reads nothing while the test publishes: a
			// long write timeout keeps the server from closing it for that.
			srv := serve(t, h, broadcast.WriteTimeout(5*time.Minute))
			defer srv.Close()
			slow, fast := dial(t, srv, nil), dial(t, srv, nil)
			for _, c := range []*wsClient{slow, fast} {
				c.send(`{"op":"subscribe","channel":"s"}`)
				require.Equal(t, "subscribed", c.read()["op"])
			}
			ctx := testCtx(t, 60*time.Second)
			payload := `"` + strings.Repeat("x", 16<<10) + `"`
			const n = 2000 // 32 MB: far over the socket buffers
			heapBefore := heapAlloc()
			for k := 1; k <= n; k++ {
				_, err := h.Publish(ctx, "s", []byte(payload))
				require.NoError(t, err)
				m := fast.readRaw() // in step, so the fast client is never behind
				require.True(t, strings.HasPrefix(m, `{"op":"message"`) && strings.HasSuffix(m, `"offset":`+strconv.Itoa(k)+`}`),
					"the fast client is unaffected: got %.60s… at %d", m, k)
			}
			// What the Hub holds for the stuck client is its buffer (256 KiB),
			// not the 32 MB published; the history keeps 256 × 16 KiB.
			grown := int64(heapAlloc()) - int64(heapBefore)
			require.Less(t, grown, int64(16<<20), "heap grew by %d bytes", grown)
			if policy == broadcast.Disconnect {
				waitFor(t, 30*time.Second, "slow disconnect", func() bool { return h.Stats().SlowDisconnects >= 1 })
				waitFor(t, 30*time.Second, "slow connection gone", func() bool { return h.Stats().Connections == 1 })
				// The slow client reads what was in flight, then the end:
				// the close frame (1013), or, when the server's last write
				// was cut short, the socket's close (1006) or a reset (the
				// client answers the pings it finds after the server closed).
				for {
					_ = slow.ws.SetReadDeadline(time.Now().Add(20 * time.Second))
					_, _, err := slow.ws.ReadMessage()
					if err == nil {
						continue
					}
					var cerr *websocket.CloseError
					if errors.As(err, &cerr) {
						require.Contains(t, []int{websocket.CloseTryAgainLater, websocket.CloseAbnormalClosure}, cerr.Code)
					} else {
						require.ErrorIs(t, err, syscall.ECONNRESET)
					}
					break
				}
				return
			}
			waitFor(t, 30*time.Second, "a resync", func() bool { return h.Stats().Resyncs >= 1 })
			// The slow client finds a resync frame in what it reads, and no
			// message after it until it subscribes again.
			sawResync := false
			for !sawResync {
				m := slow.read()
				sawResync = m["op"] == "resync"
			}
			slow.send(`{"op":"subscribe","channel":"s"}`)
			for {
				m := slow.read()
				if m["op"] == "subscribed" {
					break
				}
				require.NotEqual(t, "message", m["op"], "no message between resync and subscribed")
			}
		})
	}
}

func TestClientJSServed(t *testing.T) {
	h, err := broadcast.NewLocal()
	require.NoError(t, err)
	defer h.Close()
	srv := serve(t, h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/live/client.js")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "javascript")
	require.NotEmpty(t, resp.Header.Get("ETag"))
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL+"/live/client.js", nil)
	req.Header.Set("If-None-Match", resp.Header.Get("ETag"))
	resp2, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp2.Body.Close()
	require.Equal(t, http.StatusNotModified, resp2.StatusCode)
}

// heapAlloc returns the live heap after a GC.
func heapAlloc() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestSilentWebSocketClosed: a client that answers no ping is closed after
// three ping intervals; one that reads (and so answers pings) stays.
func TestSilentWebSocketClosed(t *testing.T) {
	leakCheck(t)
	h, err := broadcast.NewLocal()
	require.NoError(t, err)
	defer h.Close()
	srv := serve(t, h, broadcast.PingInterval(250*time.Millisecond))
	defer srv.Close()
	silent, alive := dial(t, srv, nil), dial(t, srv, nil)
	frames := make(chan []byte, 16)
	go func() { // gorilla answers pings while it reads
		defer close(frames)
		for {
			_, b, err := alive.ws.ReadMessage()
			if err != nil {
				return
			}
			frames <- b
		}
	}()
	waitFor(t, 10*time.Second, "both connections registered", func() bool { return h.Stats().Connections == 2 })
	start := time.Now()
	// The silent client reads nothing until the server gave up on it.
	waitFor(t, 30*time.Second, "a connection closed", func() bool { return h.Stats().Connections < 2 })
	require.Greater(t, time.Since(start), 500*time.Millisecond, "not before the pings went unanswered")
	_ = silent.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := silent.ws.ReadMessage(); err != nil {
			break // its pings, then the closed socket
		}
	}
	alive.send(`{"op":"subscribe","channel":"still-here"}`)
	select {
	case b, ok := <-frames:
		require.True(t, ok, "the reading client was closed too")
		require.Contains(t, string(b), `"op":"subscribed"`)
	case <-time.After(20 * time.Second):
		t.Fatal("the reading client got no answer")
	}
}

// TestSlowSSE: an SSE client that stops reading has its stream ended at
// its buffer bound (Disconnect), counted, with the Hub's memory bounded;
// when it comes back with Last-Event-ID it missed more than a recovery may
// hold (the buffer bound), so it gets a resync, then the live messages.
func TestSlowSSE(t *testing.T) {
	leakCheck(t)
	h, err := broadcast.NewLocal(broadcast.WithClientBuffer(16, 1<<20), broadcast.WithHistory(100000, time.Hour))
	require.NoError(t, err)
	defer h.Close()
	srv := serve(t, h, broadcast.WriteTimeout(500*time.Millisecond))
	defer srv.Close()
	ctx := testCtx(t, 60*time.Second)
	resp, err := sseGet(srv.URL+"/live?channel=s", "")
	require.NoError(t, err)
	r := newSSEReader(t, resp)
	payload := []byte(`"` + strings.Repeat("x", 4<<10) + `"`)
	_, err = h.Publish(ctx, "s", payload)
	require.NoError(t, err)
	r.next() // reading, then not
	lastID := r.lastID
	published := 1
	for h.Stats().SlowDisconnects == 0 {
		_, err := h.Publish(ctx, "s", payload)
		require.NoError(t, err)
		published++
		require.Less(t, published, 50000, "never cut off")
	}
	waitFor(t, 30*time.Second, "the stream gone", func() bool { return h.Stats().Connections == 0 })
	resp.Body.Close()

	resp2, err := sseGet(srv.URL+"/live?channel=s", lastID)
	require.NoError(t, err)
	defer resp2.Body.Close()
	r2 := newSSEReader(t, resp2)
	ev := r2.next()
	require.Equal(t, "resync", ev.event, "%d messages missed, over the 16 a recovery may hold", published-1)
	pos, err := h.Publish(ctx, "s", []byte(`"after"`))
	require.NoError(t, err)
	ev = r2.next()
	require.Equal(t, "message", ev.event)
	require.Contains(t, ev.data, `"offset":`+strconv.FormatUint(pos.Offset, 10)+`}`)
}
