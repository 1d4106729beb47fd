package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) {
	// A replica for the end-to-end tests: the test binary re-executed with
	// the service's configuration in the environment.
	if os.Getenv("QUOTES_REPLICA") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// startInProcess runs the service with cfg in this process until the test
// ends and returns its base URL and a function that stops it.
func startInProcess(t *testing.T, cfg config) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, quietLogger(), ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("service did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("service did not start within 30s")
	}
	var stopped bool
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return fmt.Errorf("service did not stop within 30s")
		}
	}
	t.Cleanup(func() { _ = stop() })
	return "http://" + addr, stop
}

func testConfig(t *testing.T) config {
	cfg, err := parseConfig(nil)
	require.NoError(t, err)
	cfg.addr = "127.0.0.1:0"
	cfg.redisAddr = ""
	cfg.dbURL = filepath.Join(t.TempDir(), "quotes.db")
	return cfg
}

// TestEmbeddedDefault runs the service as `go run ./examples/quotes` does:
// in-process backends and an SQLite file.
func TestEmbeddedDefault(t *testing.T) {
	cfg := testConfig(t)
	cfg.feedRate = 500
	cfg.apiLimit = 1000
	base, stop := startInProcess(t, cfg)

	var q apiQuote
	require.Eventually(t, func() bool {
		code, body := get(t, base+"/v1/quotes/acme", nil)
		return code == http.StatusOK && json.Unmarshal(body, &q) == nil
	}, 20*time.Second, 20*time.Millisecond)
	require.Equal(t, "ACME", q.Symbol)
	require.Positive(t, q.Price)

	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", "/v1/quotes/NOPE", http.StatusNotFound},
		{"GET", "/v1/quotes/BAD1", http.StatusBadRequest},
		{"GET", "/v1/quotes/ACME/bars", http.StatusOK},
		{"GET", "/v1/quotes/ACME/bars?from=yesterday", http.StatusBadRequest},
		{"GET", "/v1/quotes/ACME/bars?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", http.StatusBadRequest},
		{"GET", "/v1/quotes/ACME/bars?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z", http.StatusBadRequest},
		{"GET", "/healthz", http.StatusOK},
		{"GET", "/readyz", http.StatusOK},
		{"GET", "/metrics", http.StatusOK},
		{"GET", "/admin/jobs/rollup/history", http.StatusOK},
		{"GET", "/admin/jobs/nope/history", http.StatusNotFound},
		{"POST", "/admin/feed/burst?n=0", http.StatusBadRequest},
		{"POST", "/admin/rebuild-bars", http.StatusOK},
	} {
		req, err := http.NewRequest(tc.method, base+tc.path, nil)
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, tc.want, resp.StatusCode, "%s %s", tc.method, tc.path)
	}

	// Responses are compressed for clients that accept it.
	req, _ := http.NewRequest("GET", base+"/metrics", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultTransport.RoundTrip(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, "gzip", resp.Header.Get("Content-Encoding"))

	// A burst is absorbed and, after a graceful stop, every published quote
	// is stored.
	post(t, base+"/admin/feed/burst?n=3000")
	require.Eventually(t, func() bool {
		m := scrape(t, base)
		return m["quotes_published_total"] >= 3000
	}, 30*time.Second, 50*time.Millisecond)
	published := scrape(t, base)["quotes_published_total"]
	require.NoError(t, stop())
	db, err := openDatabase(context.Background(), cfg.dbURL)
	require.NoError(t, err)
	defer db.close()
	rows, distinct, err := db.countQuotes(context.Background())
	require.NoError(t, err)
	require.Equal(t, rows, distinct)
	require.GreaterOrEqual(t, float64(rows), published, "published %v quotes, stored %d", published, rows)
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{args: nil},
		{args: []string{"-feed-rate", "-1"}, wantErr: "-feed-rate"},
		{args: []string{"-feed-count", "-5"}, wantErr: "-feed-count"},
		{args: []string{"-api-limit", "0"}, wantErr: "-api-limit"},
		{args: []string{"-retention", "0s"}, wantErr: "-retention"},
		{args: []string{"-log-level", "loud"}, wantErr: "-log-level"},
		{args: []string{"extra"}, wantErr: "unexpected argument"},
	}
	for _, tc := range tests {
		_, err := parseConfig(tc.args)
		if tc.wantErr == "" {
			require.NoError(t, err)
		} else {
			require.ErrorContains(t, err, tc.wantErr)
		}
	}
}

func get(t testing.TB, url string, hdr http.Header) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

func post(t testing.TB, url string) {
	t.Helper()
	resp, err := http.Post(url, "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Less(t, resp.StatusCode, 300, "POST %s: %s", url, resp.Status)
}

// scrape reads the plain samples of a replica's /metrics, keyed by name and
// labels as printed (`name{k="v"}`).
func scrape(t testing.TB, base string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}
