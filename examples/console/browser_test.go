package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/console"
	"github.com/outrigger-dev/outrigger/examples/internal/browsertest"
	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/queue"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// TestConsoleInBrowser opens the console in headless Chromium, as an
// operator would at 3 a.m.: the overview shows the orders queue with dead
// letters (a payment gateway outage, really run through the queue), the
// queue page lists them, a click on "Replay all" (and OK in the
// confirmation) replays them, and the queue drains (the gateway is back).
// Every page is saved as a 1280×800 screenshot.
func TestConsoleInBrowser(t *testing.T) {
	db := redistest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := newScene(ctx, db.Client, db.Prefix, sceneOptions{})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	// The gateway was down while these orders came in.
	s.Broken.Store(true)
	for i := range 25 {
		_, err := s.orders.Publish(ctx, fmt.Appendf(nil, `{"order":%d,"sku":"SKU-%03d","qty":1}`, 9000+i, i))
		require.NoError(t, err)
	}
	qi, err := queue.NewInspector(db.Client, queue.WithPrefix(db.Prefix))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		q, err := qi.Queue(ctx, "orders")
		return err == nil && q.Dead == 25 && q.Ready == 0 && q.InFlight == 0
	}, time.Minute, 10*time.Millisecond, "the outage's orders did not all die")
	s.Broken.Store(false) // the gateway is back

	cfg, err := s.config()
	require.NoError(t, err)
	cfg.Refresh = 500 * time.Millisecond
	srv := serve(t, cfg)
	base := srv.URL + "/admin/console/"

	b := newBrowser(t, 2*time.Minute)
	acceptDialogs(b)
	require.NoError(t, chromedp.Do(b,
		chromedp.Navigate(base),
		chromedp.WaitVisible(chromedp.CSS(`a[href="./queues/orders"]`)),
	))
	waitText(t, b, "table.grid", "orders")
	screenshot(t, b, "console-overview")

	require.NoError(t, chromedp.Do(b,
		clickLive(`a[href="./queues/orders"]`),
		chromedp.WaitVisible(chromedp.ID("replay-all")),
	))
	waitText(t, b, "table.messages", "payment gateway timeout")
	screenshot(t, b, "console-queue-dead")

	// Filter by error, then replay everything that matches.
	require.NoError(t, chromedp.Do(b,
		chromedp.SendKeys(chromedp.ID("error-filter"), "gateway"),
		chromedp.Submit(chromedp.ID("error-filter")),
	))
	waitText(t, b, "#replay-all", "Replay all matching")
	require.NoError(t, chromedp.Do(b, clickLive("#replay-all")))
	waitText(t, b, "p.flash", "requeued 25 dead letters")
	// The queue drains: the page refreshes itself until nothing is dead,
	// ready or in flight.
	require.NoError(t, chromedp.Do(b, chromedp.Poll[chromedp.Void](`(() => {
		const big = [...document.querySelectorAll('.card .big')].map(e => e.textContent.trim());
		return big.length >= 4 && big[0] === '0' && big[1] === '0' && big[3] === '0';
	})()`, chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(time.Minute))))
	q, err := qi.Queue(ctx, "orders")
	require.NoError(t, err)
	require.Zero(t, q.Dead)
	require.Zero(t, q.Ready+q.InFlight)
	screenshot(t, b, "console-queue-drained")

	for _, p := range []struct{ path, sel, text, name string }{
		{"jobs", "table.grid", "sync-fx-rates", "console-schedules"},
		{"jobs/sync-fx-rates", "table.grid", "503", "console-job"},
		{"locks", "table.grid", "billing:invoice-run", "console-locks"},
		{"limits?limiter=api&key=user%3A42", ".result", "Remaining now", "console-limits"},
		{"caches?cache=quotes&key=quote%3AACME", ".result", "fresh", "console-caches"},
		{"channels?channel=quotes%3AACME", "table.grid", "quotes:ACME", "console-channels"},
		{"audit", "table.grid", "requeue", "console-audit"},
	} {
		require.NoError(t, chromedp.Do(b, chromedp.Navigate(base+p.path)), p.path)
		waitText(t, b, p.sel, p.text)
		screenshot(t, b, p.name)
	}
}

// TestScreenshots saves screenshots of a console that is already running
// (go run ./examples/console), when OUTRIGGER_CONSOLE_URL names it, into
// OUTRIGGER_SCREENSHOT_DIR: the charts then show minutes of real traffic.
func TestScreenshots(t *testing.T) {
	base := os.Getenv("OUTRIGGER_CONSOLE_URL")
	if base == "" {
		t.Skip("OUTRIGGER_CONSOLE_URL is not set")
	}
	b := newBrowser(t, 2*time.Minute)
	for _, p := range []struct{ path, sel, name string }{
		{"", "table.grid", "overview"},
		{"queues/orders?state=dead", "nav.tabs", "queue-dead"},
		{"queues/emails?state=ready", "nav.tabs", "queue-ready"},
		{"jobs", "table.grid", "schedules"},
		{"jobs/sync-fx-rates", "table.grid", "job"},
		{"locks", "table.grid", "locks"},
		{"limits?limiter=api&key=user%3A77", ".result", "limits"},
		{"caches?cache=quotes&key=quote%3AACME", ".result", "caches"},
		{"channels?channel=quotes%3AACME", "main", "channels"},
		{"audit", "main", "audit"},
	} {
		require.NoError(t, chromedp.Do(b, chromedp.Navigate(base+p.path), chromedp.WaitVisible(chromedp.CSS(p.sel))), p.path)
		screenshot(t, b, "live-"+p.name)
	}
}

// serve mounts the console at /admin/console/ on a test server.
func serve(t *testing.T, cfg console.Config) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/admin/console/", http.StripPrefix("/admin/console", console.Handler(cfg)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// waitText waits until the element sel contains text. The page may
// navigate meanwhile (a form posted, a redirect): the poll starts again on
// the new page, until a minute has passed.
func waitText(t *testing.T, b context.Context, sel, text string) {
	t.Helper()
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.textContent.includes(%q); })()`, sel, text)
	deadline := time.Now().Add(time.Minute)
	var err error
	for time.Now().Before(deadline) {
		err = chromedp.Do(b, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingInterval(50*time.Millisecond),
			chromedp.WithPollingTimeout(time.Until(deadline))))
		if err == nil || b.Err() != nil {
			break
		}
	}
	if err != nil {
		html, _ := chromedp.Run(b, chromedp.OuterHTML(chromedp.CSS("main")))
		t.Fatalf("waiting for %q in %s: %v\n%s", text, sel, err, html)
	}
}

// acceptDialogs answers OK to every confirmation the page asks, until
// the browser's context ends.
func acceptDialogs(b context.Context) {
	opening := chromedp.Events(b, page.JavascriptDialogOpening)
	go func() {
		for _, err := range opening {
			if err != nil {
				return
			}
			// answered from another goroutine than the one receiving events
			go func() {
				_ = chromedp.Do(b, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
					_, err := cdp.Call(ctx, t, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
					return err
				}))
			}()
		}
	}()
}

// newBrowser starts a headless Chromium (examples/internal/browsertest)
// with a 1280×800 viewport.
func newBrowser(t *testing.T, timeout time.Duration) context.Context {
	t.Helper()
	b := browsertest.New(t, timeout)
	require.NoError(t, chromedp.Do(b, chromedp.EmulateViewport(1280, 800)))
	return b
}

// screenshot saves the 1280×800 viewport (what a person sees first, where
// browsertest.Screenshot takes the whole page) as <name>.png in the test's
// temporary directory and, when OUTRIGGER_SCREENSHOT_DIR is set, there too.
func screenshot(t *testing.T, b context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(b, chromedp.CaptureScreenshot())
	require.NoError(t, err)
	dirs := []string{t.TempDir()}
	if d := os.Getenv(browsertest.EnvScreenshotDir); d != "" {
		require.NoError(t, os.MkdirAll(d, 0o755))
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		require.NoError(t, os.WriteFile(filepath.Join(d, name+".png"), png, 0o644))
	}
	t.Logf("screenshot %s", filepath.Join(dirs[len(dirs)-1], name+".png"))
}

// clickLive clicks the element sel matches, looked up at the moment of the
// click: the console's live refresh replaces the page's nodes every
// Refresh, so a node chromedp resolved a moment earlier may be gone by the
// time it clicks ("Could not find node with given id").
func clickLive(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](fmt.Sprintf(`(() => {
		const e = document.querySelector(%q);
		if (!e || !e.offsetParent) return false;
		e.click();
		return true;
	})()`, sel), chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second))
}
