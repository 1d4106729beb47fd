package livetest

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/broadcast"
	"github.com/outrigger-dev/outrigger/examples/internal/browsertest"
	"github.com/outrigger-dev/outrigger/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

var page = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>broadcast client.js</title>
<style>body{font:16px system-ui,sans-serif;margin:2em} #log{font:13px monospace;white-space:pre-wrap}</style>
<script src="/live/client.js"></script><script src="/app.js" defer></script></head>
<body data-servers="{{.}}" data-state="new">
<h1>ticks</h1>
<p>connection: <b id="status">new</b> · received <b id="count">0</b> · resyncs <b id="resyncs">0</b></p>
<div id="log"></div>
</body></html>`))

const appJS = `"use strict";
window.got = [];
window.resyncs = 0;
const urls = JSON.parse(document.body.dataset.servers);
const log = (s) => { document.getElementById("log").textContent += s + "\n"; };
const live = new OutriggerBroadcast(urls, {
  onStatus: (state, detail) => {
    document.body.dataset.state = state;
    document.getElementById("status").textContent = state + " " + detail;
    log(state + " " + detail);
  },
});
live.subscribe("ticks", (data, m) => {
  window.got.push(m.offset);
  document.getElementById("count").textContent = String(window.got.length);
}, {onResync: () => { window.resyncs++; document.getElementById("resyncs").textContent = String(window.resyncs); }});
`

// TestClientReconnectsAcrossHubs: a page using client.js in Chromium
// follows a channel through one Hub's server; that server dies, the page
// reconnects to the other Hub's server, and by offset it has every message
// exactly once, with no resync.
func TestClientReconnectsAcrossHubs(t *testing.T) {
	ctx := browsertest.New(t, 2*time.Minute)
	db := redistest.New(t)
	prefix := db.Prefix + "live:"
	newHub := func() *broadcast.Hub {
		h, err := broadcast.New(db.NewClient(t), broadcast.WithPrefix(prefix))
		require.NoError(t, err)
		t.Cleanup(func() { _ = h.Close() })
		return h
	}
	h1, h2 := newHub(), newHub()

	// The page is served by a third server, as a CDN or the app would;
	// both Hubs' servers allow its origin.
	pageMux := http.NewServeMux()
	pageSrv := httptest.NewServer(pageMux)
	defer pageSrv.Close()
	pageHost := strings.TrimPrefix(pageSrv.URL, "http://")
	liveSrv := func(h *broadcast.Hub) *httptest.Server {
		mux := http.NewServeMux()
		mux.Handle("/live", h.Handler(broadcast.AllowOrigins(pageHost)))
		s := httptest.NewServer(mux)
		t.Cleanup(s.Close)
		return s
	}
	s1, s2 := liveSrv(h1), liveSrv(h2)
	urls, _ := json.Marshal([]string{
		"ws" + strings.TrimPrefix(s1.URL, "http") + "/live",
		"ws" + strings.TrimPrefix(s2.URL, "http") + "/live",
	})
	pageMux.Handle("/live/client.js", broadcast.ClientJS)
	pageMux.HandleFunc("/app.js", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		_, _ = w.Write([]byte(appJS))
	})
	pageMux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'unsafe-inline'; connect-src ws://127.0.0.1:*")
		_ = page.Execute(w, string(urls))
	})

	if err := chromedp.Do(ctx,
		chromedp.Navigate(pageSrv.URL+"/"),
		chromedp.Poll[chromedp.Void](`document.body.dataset.state === "open"`, chromedp.WithPollingTimeout(30*time.Second)),
	); err != nil {
		text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText + " | client.js: " + typeof OutriggerBroadcast + ", app.js: " + typeof window.got`))
		browsertest.Screenshot(t, ctx, "client-not-open")
		t.Fatalf("the page did not connect: %v; page: %s", err, text)
	}
	waitCount := func(n int) {
		t.Helper()
		err := chromedp.Do(ctx, chromedp.Poll[chromedp.Void](fmt.Sprintf(`window.got.length >= %d`, n),
			chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(60*time.Second)))
		require.NoError(t, err, "waiting for %d messages", n)
	}
	pctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	publish := func(from, to int, h *broadcast.Hub) {
		t.Helper()
		for k := from; k <= to; k++ {
			_, err := h.Publish(pctx, "ticks", []byte(`{"k":`+strconv.Itoa(k)+`}`))
			require.NoError(t, err)
		}
	}
	// The page's Hub must be subscribed before the first publish counts.
	require.Eventually(t, func() bool { return h1.Stats().Subscriptions == 1 }, 30*time.Second, 20*time.Millisecond)
	publish(1, 10, h2)
	waitCount(10)
	browsertest.Screenshot(t, ctx, "client-before-kill")

	// Kill the page's server: its Hub goes and so does the listener.
	s1.CloseClientConnections()
	require.NoError(t, h1.Close())
	s1.Close()
	publish(11, 25, h2) // while the page reconnects
	waitCount(25)
	publish(26, 30, h2)
	waitCount(30)

	got, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](`window.got`))
	require.NoError(t, err)
	resyncs, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.resyncs`))
	require.NoError(t, err)
	status, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#status")))
	require.NoError(t, err)
	want := make([]int, 30)
	for i := range want {
		want[i] = i + 1
	}
	require.Equal(t, want, got, "every offset once, in order")
	require.Zero(t, resyncs)
	require.Contains(t, status, strings.TrimPrefix(s2.URL, "http://"), "connected to the other Hub")
	require.Equal(t, 1, h2.Stats().Connections)
	browsertest.Screenshot(t, ctx, "client-after-kill")
}
