package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/examples/internal/browsertest"
	"github.com/outrigger-dev/outrigger/examples/internal/liveclient"
	"github.com/outrigger-dev/outrigger/internal/redistest"
)

// pageDiag is window.quotesLive, what the page saw (web/static/app.js).
type pageDiag struct {
	Served   string `json:"served"`
	Via      string `json:"via"`
	LastVia  string `json:"lastVia"`
	Status   string `json:"status"`
	Missing  int    `json:"missing"`
	Repeated int    `json:"repeated"`
	Resyncs  int    `json:"resyncs"`
	Received int    `json:"received"`
	Symbols  map[string]struct {
		Epoch  string   `json:"epoch"`
		Offset uint64   `json:"offset"`
		IDs    []string `json:"ids"`
	} `json:"symbols"`
}

// TestLivePage loads the page from replica A in headless Chromium while
// replica B ingests the feed: rows update within 2s of B's board, A stops,
// and the page resumes on B with every quote once. It saves screenshots
// (under the test's temp dir and OUTRIGGER_SCREENSHOT_DIR).
func TestLivePage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two replicas and a browser")
	}
	rdb := redistest.New(t)
	dbURL := postgresSchema(t)
	addrA, addrB := freeAddr(t), freeAddr(t)
	common := []string{
		"OUTRIGGER_REDIS_ADDR=" + rdb.Addrs[0],
		"DATABASE_URL=" + dbURL,
		"KEY_PREFIX=" + rdb.Prefix,
		"API_LIMIT=20",
		"PEERS=http://" + addrA + ",http://" + addrB,
	}
	a := startReplicaAt(t, "replica-a", addrA, append([]string{"FEED_RATE=0"}, common...)...)
	b := startReplicaAt(t, "replica-b", addrB, append([]string{"FEED_RATE=160"}, common...)...)

	// Let B's feed fill the charts, and bring some viewers and some
	// rate-limited requests, so the page has something to show.
	require.Eventually(t, func() bool {
		st, ok := boardOf(t, a.base)
		return ok && st.Symbols[0].Updates >= 90 && len(st.Replicas) == 2
	}, 60*time.Second, 100*time.Millisecond, "the feed did not reach A's board")
	viewers := startViewers(t, a, b)
	for range 40 {
		get(t, b.base+"/v1/quotes/ACME", http.Header{"X-Api-Key": {"page-test-greedy"}})
	}

	ctx := browsertest.New(t, 3*time.Minute)
	require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800), chromedp.Navigate(a.base+"/")))
	diag := func() pageDiag {
		t.Helper()
		d, err := chromedp.Run(ctx, chromedp.Evaluate[pageDiag](`window.quotesLive`))
		require.NoError(t, err)
		return d
	}
	poll := func(expr string, timeout time.Duration, msg string) {
		t.Helper()
		_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(20*time.Millisecond)))
		if err != nil {
			d := diag()
			offsets := map[string]uint64{}
			for sym, s := range d.Symbols {
				offsets[sym] = s.Offset
			}
			t.Fatalf("%s: %v (page: served by %s, status %s via %s, %d received, %d missing, %d repeated, offsets %v)",
				msg, err, d.Served, d.Status, d.Via, d.Received, d.Missing, d.Repeated, offsets)
		}
	}
	poll(`window.quotesLive && quotesLive.status === "open" && quotesLive.via === "replica-a"`, 30*time.Second, "the page did not connect to A")
	start := diag()
	require.Equal(t, "replica-a", start.Served)

	t.Run("rows update within 2s", func(t *testing.T) {
		for _, sym := range []string{"ACME", "SOYL"} {
			st, ok := boardOf(t, b.base)
			require.True(t, ok)
			want := st.Symbols[indexOf(symbols, sym)].Pos.Offset + 1 // the next quote B stores
			require.Eventually(t, func() bool {
				st, ok := boardOf(t, b.base)
				return ok && st.Symbols[indexOf(symbols, sym)].Pos.Offset >= want
			}, 30*time.Second, 5*time.Millisecond, "B stored no new %s quote", sym)
			poll(fmt.Sprintf(`Number(document.getElementById("row-%s").dataset.offset) >= %d`, sym, want), 2*time.Second,
				"the "+sym+" row did not show B's new quote within 2s")
		}
		// The figures of both replicas and the viewer counts arrive too.
		poll(`document.querySelectorAll("#replicas li.live").length === 2`, 10*time.Second, "the replicas panel does not show 2 live replicas")
		poll(`Number(document.getElementById("kpi-viewers").textContent) >= 7`, 15*time.Second, "the viewer count (presence) did not arrive")
		poll(`document.getElementById("kpi-denied").textContent !== "0"`, 10*time.Second, "the rate-limit denials did not arrive")
		browsertest.Screenshot(t, ctx, "quotes-live")
	})

	t.Run("page resumes on B after A stops, nothing missing", func(t *testing.T) {
		a.stop(t)
		poll(`quotesLive.status === "open" && quotesLive.via === "replica-b"`, 30*time.Second, "the page did not resume on B")
		// Everything B publishes from now on, and everything published while
		// the page moved, reaches it: it catches up with B's board.
		st, ok := boardOf(t, b.base)
		require.True(t, ok)
		for i, sym := range symbols {
			poll(fmt.Sprintf(`quotesLive.symbols[%q].offset >= %d`, sym, st.Symbols[i].Pos.Offset), 20*time.Second, sym+" did not catch up on B")
		}
		poll(`document.querySelector('#replicas li[data-replica="replica-a"]').classList.contains("gone")`, 15*time.Second, "A is not shown as stopped")
		end := diag()
		require.Zero(t, end.Missing, "offsets missing")
		require.Zero(t, end.Repeated, "offsets repeated")
		require.Zero(t, end.Resyncs, "resyncs")
		require.Equal(t, "replica-a", end.Served)
		for _, sym := range symbols {
			s0, s1 := start.Symbols[sym], end.Symbols[sym]
			require.Equal(t, s0.Epoch, s1.Epoch, sym)
			got := len(s1.IDs)
			require.Equal(t, int(s1.Offset-s0.Offset)+len(s0.IDs), got, "%s: every offset once from %d to %d", sym, s0.Offset, s1.Offset)
			seen := map[string]bool{}
			for _, id := range s1.IDs {
				require.False(t, seen[id], "%s: quote %s shown twice", sym, id)
				seen[id] = true
			}
		}
		t.Logf("page: %d quotes from %s then %s, 0 missing, 0 repeated", end.Received, end.Served, end.Via)
		browsertest.Screenshot(t, ctx, "quotes-live-after-failover")
	})
	viewers.stop()
}

// boardOf reads a replica's /v1/board.
func boardOf(t *testing.T, base string) (boardState, bool) {
	t.Helper()
	code, body := get(t, base+"/v1/board", http.Header{"X-Api-Key": {"page-test-board"}})
	var st boardState
	return st, code == http.StatusOK && json.Unmarshal(body, &st) == nil && len(st.Symbols) == len(symbols)
}

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}

// startViewers connects a few Go clients to the replicas (presence counts
// them as viewers), and waits until they are subscribed.
func startViewers(t *testing.T, rs ...*replica) *liveCheck {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	lc := &liveCheck{cancel: cancel}
	t.Cleanup(lc.stop)
	for i := range 7 {
		r := rs[i%len(rs)]
		c := &liveclient.Client{Endpoints: []string{r.base}, Header: http.Header{"X-Api-Key": {fmt.Sprint("page-viewer-", i)}}}
		for j := range 1 + i%3 {
			c.Channels = append(c.Channels, quoteChannelPrefix+symbols[(i+j*3)%len(symbols)])
		}
		lc.clients = append(lc.clients, &liveWatcher{name: strings.Join(c.Channels, ","), client: c})
		lc.done.Go(func() { _ = c.Run(ctx) })
	}
	lc.waitReady(t)
	return lc
}
