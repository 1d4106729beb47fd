package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/broadcast"
	"github.com/outrigger-dev/outrigger/examples/internal/liveclient"
	"github.com/outrigger-dev/outrigger/scheduler"
)

// TestLiveEmbedded checks the embedded default (`go run ./examples/quotes`:
// in-process Hub, SQLite) serves the page, the SSE stream and the
// WebSocket endpoint, with their errors.
func TestLiveEmbedded(t *testing.T) {
	cfg := testConfig(t)
	cfg.feedRate = 400
	cfg.apiLimit = 1000
	base, _ := startInProcess(t, cfg)

	t.Run("page", func(t *testing.T) {
		resp, err := http.Get(base + "/")
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
		csp := resp.Header.Get("Content-Security-Policy")
		require.Contains(t, csp, "script-src 'self'")
		require.Contains(t, csp, "default-src 'none'")
		page := string(body)
		for _, sym := range symbols {
			require.Contains(t, page, `id="row-`+sym+`"`)
		}
		require.Contains(t, page, `src="static/broadcast.js"`) // relative: works under a prefix
		require.NotContains(t, page, `src="/`)
		for path, ctype := range map[string]string{"/static/app.js": "text/javascript", "/static/style.css": "text/css", "/static/broadcast.js": "text/javascript"} {
			resp, err := http.Get(base + path)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, path)
			require.Contains(t, resp.Header.Get("Content-Type"), ctype, path)
		}
		code, _ := get(t, base+"/nope", nil)
		require.Equal(t, http.StatusNotFound, code)
	})

	t.Run("board", func(t *testing.T) {
		var st boardState
		require.Eventually(t, func() bool {
			code, body := get(t, base+"/v1/board", nil)
			return code == http.StatusOK && json.Unmarshal(body, &st) == nil && st.Symbols[0].Last != nil && len(st.Replicas) == 1
		}, 20*time.Second, 50*time.Millisecond)
		require.Len(t, st.Symbols, len(symbols))
		require.Equal(t, cfg.replica, st.Replicas[0].Replica)
		require.NotEmpty(t, st.Symbols[0].Pos.Epoch)
	})

	t.Run("sse", func(t *testing.T) {
		for _, tc := range []struct {
			query string
			want  int
		}{
			{"", http.StatusBadRequest},
			{"?symbol=NOPE", http.StatusNotFound},
			{"?symbol=ACME&since=garbage", http.StatusBadRequest},
		} {
			code, _ := get(t, base+"/v1/stream"+tc.query, http.Header{"Accept": {"text/event-stream"}})
			require.Equal(t, tc.want, code, tc.query)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/stream?symbol=acme&symbol=GLOBX", nil)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
		sc := bufio.NewScanner(resp.Body)
		var got liveQuote
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var f struct {
					Channel string    `json:"channel"`
					Data    liveQuote `json:"data"`
				}
				require.NoError(t, json.Unmarshal([]byte(data), &f))
				require.Contains(t, []string{"quotes:ACME", "quotes:GLOBX"}, f.Channel)
				got = f.Data
				break
			}
		}
		require.NotEmpty(t, got.ID)
		require.Equal(t, cfg.replica, got.StoredBy)
		require.False(t, got.TS.IsZero())
	})

	t.Run("websocket", func(t *testing.T) {
		ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/v1/live?viewer=test-viewer-1", nil)
		require.NoError(t, err)
		defer ws.Close()
		for _, f := range []map[string]any{
			{"op": "subscribe", "id": "1", "channel": "quotes:ACME"},
			{"op": "subscribe", "id": "2", "channel": "quotes:NOPE"},
			{"op": "subscribe", "id": "3", "channel": "viewer:someone-else"},
			{"op": "publish", "id": "4", "channel": "quotes:ACME", "data": map[string]any{"price": 1}},
			{"op": "subscribe", "id": "5", "channel": "viewer:test-viewer-1", "presence": true},
		} {
			require.NoError(t, ws.WriteJSON(f))
		}
		replies := map[string]string{}
		var joined, message bool
		require.NoError(t, ws.SetReadDeadline(time.Now().Add(20*time.Second)))
		for len(replies) < 5 || !joined || !message {
			var f struct {
				Op, ID, Code string
				Member       broadcast.Member
			}
			require.NoError(t, ws.ReadJSON(&f))
			switch {
			case f.ID != "":
				replies[f.ID] = f.Op + ":" + f.Code
			case f.Op == "join":
				require.Equal(t, "test-viewer-1", f.Member.ClientID)
				require.Equal(t, nodeID(cfg.replica), f.Member.Node) // the page learns its replica from its own join
				joined = true
			case f.Op == "message":
				message = true
			}
		}
		require.Equal(t, map[string]string{"1": "subscribed:", "2": "error:forbidden", "3": "error:forbidden", "4": "error:forbidden", "5": "subscribed:"}, replies)
		_, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/v1/live?viewer=bad!", nil)
		require.Error(t, err)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	})

	t.Run("liveclient", func(t *testing.T) {
		for _, tr := range []liveclient.Transport{liveclient.WebSocket, liveclient.SSE} {
			ctx, cancel := context.WithCancel(context.Background())
			c := &liveclient.Client{Endpoints: []string{base}, Channels: []string{"quotes:ACME", "quotes:SOYL"}, Transport: tr}
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			require.Eventually(t, func() bool { return c.Stats().Messages >= 20 }, 20*time.Second, 20*time.Millisecond)
			cancel()
			require.NoError(t, <-done)
			st := c.Stats()
			require.Zero(t, st.Missing)
			require.Zero(t, st.Repeated)
		}
	})
}

// TestLivePrefix mounts the service under a path prefix, as behind a
// reverse proxy: the page's relative URLs keep working.
func TestLivePrefix(t *testing.T) {
	cfg := testConfig(t)
	cfg.feedRate = 0
	ctx := context.Background()
	s, err := newService(ctx, cfg, quietLogger())
	require.NoError(t, err)
	h, err := s.handler()
	require.NoError(t, err)
	s.start(ctx)
	defer func() { s.stopIngest(); require.NoError(t, s.shutdown(ctx)) }()
	mux := http.NewServeMux()
	mux.Handle("/demo/", http.StripPrefix("/demo", h))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(srv.URL + "/demo")
	require.NoError(t, err)
	resp.Body.Close()
	require.Contains(t, []int{http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect}, resp.StatusCode)
	require.Equal(t, "/demo/", resp.Header.Get("Location")) // the mux adds the slash the relative URLs need
	for _, p := range []string{"/demo/", "/demo/static/app.js", "/demo/static/broadcast.js", "/demo/v1/board"} {
		resp, err := client.Get(srv.URL + p)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, p)
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/demo/v1/live", nil)
	require.NoError(t, err)
	ws.Close()
}

// TestOutboxPublishesOrphansOnce stages quotes as a replica that died
// between storing and publishing would leave them (one of them published
// already, one not), and checks the live-outbox job publishes the missing
// one once and the other not again.
func TestOutboxPublishesOrphansOnce(t *testing.T) {
	cfg := testConfig(t)
	cfg.feedRate = 0
	ctx := context.Background()
	s, err := newService(ctx, cfg, quietLogger())
	require.NoError(t, err)
	defer s.close()
	l := s.live
	sub, err := l.hub.Subscribe(ctx, "quotes:ACME")
	require.NoError(t, err)
	defer sub.Close()

	longAgo := time.Now().Add(-2 * outboxLease)
	qs := []quote{
		{ID: "dead-1", Symbol: "ACME", Price: 10, TS: longAgo},
		{ID: "dead-2", Symbol: "ACME", Price: 11, TS: longAgo.Add(time.Millisecond)},
	}
	fresh, err := s.db.insertQuotesStaged(ctx, qs, "dead", longAgo)
	require.NoError(t, err)
	require.Len(t, fresh, 2)
	again, err := s.db.insertQuotesStaged(ctx, qs, "other", time.Now()) // a redelivery
	require.NoError(t, err)
	require.Empty(t, again)
	// The dead replica had published dead-1 (not yet unstaged) when it died.
	require.NoError(t, l.publishQuote(ctx, qs[0]))

	// Not yet expired: nothing to claim for a fresh row.
	n, err := s.db.countStaged(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(2), n)
	require.NoError(t, l.sweepOutbox(ctx, scheduler.Run{}))

	var ids []string
	for len(ids) < 2 {
		mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		m, err := sub.Next(mctx)
		cancel()
		require.NoError(t, err)
		var q liveQuote
		require.NoError(t, json.Unmarshal(m.Data, &q))
		ids = append(ids, q.ID)
	}
	require.Equal(t, []string{"dead-1", "dead-2"}, ids)
	n, err = s.db.countStaged(ctx)
	require.NoError(t, err)
	require.Zero(t, n)
	// A second sweep finds nothing; no third message arrives.
	require.NoError(t, l.sweepOutbox(ctx, scheduler.Run{}))
	mctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	_, err = sub.Next(mctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Zero(t, l.unverified.Load())
}
