// Package browsertest drives Debian's headless Chromium from Go tests
// (through chromedp) so that pages and browser clients are tested as a
// person would use them: New starts a fresh browser for a test, Screenshot
// saves what it shows.
//
// Chromium is found at $OUTRIGGER_CHROMIUM, /usr/bin/chromium or
// /usr/bin/chromium-browser (install it with apt-get install -y chromium).
// Without one the test is skipped, or fails when CI or
// OUTRIGGER_REQUIRE_REDIS is set: CI never skips silently.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// EnvScreenshotDir, when set, names a directory where Screenshot also
// writes its PNGs (CI can keep them as artifacts).
const EnvScreenshotDir = "OUTRIGGER_SCREENSHOT_DIR"

// ChromiumPath returns the Chromium binary to use, or "" when there is none.
func ChromiumPath() string {
	if p := os.Getenv("OUTRIGGER_CHROMIUM"); p != "" {
		return p
	}
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	return ""
}

func required() bool {
	for _, v := range []string{os.Getenv("CI"), os.Getenv("OUTRIGGER_REQUIRE_REDIS")} {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "", "0", "false", "no", "off":
		default:
			return true
		}
	}
	return false
}

// New starts a headless Chromium with a fresh profile and returns a
// chromedp context for one tab, valid until the test ends (or timeout
// passes). The browser is stopped and its profile removed when the test
// ends.
func New(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	path := ChromiumPath()
	if path == "" {
		if required() {
			t.Fatal("browsertest: no Chromium (apt-get install -y chromium); CI requires it")
		}
		t.Skip("browsertest: no Chromium (apt-get install -y chromium)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1024, 768),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(func() {
		cancelTimeout()
		cancelTab()
		cancelAlloc()
	})
	// Start the browser now, so that a browser that cannot start fails here.
	if err := chromedp.Do(ctx); err != nil {
		if required() {
			t.Fatalf("browsertest: Chromium %s did not start: %v", path, err)
		}
		t.Skipf("browsertest: Chromium %s did not start: %v", path, err)
	}
	return ctx
}

// Screenshot saves a PNG of the whole page as <name>.png in the test's
// temporary directory and, when OUTRIGGER_SCREENSHOT_DIR is set, there too.
// It returns the first path.
func Screenshot(t testing.TB, ctx context.Context, name string) string {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("browsertest: screenshot: %v", err)
	}
	path := filepath.Join(t.TempDir(), name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	if dir := os.Getenv(EnvScreenshotDir); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("browsertest: screenshot %s", path)
	return path
}
