package compress

import (
	"net/http"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMemoryPerResponse holds many responses in flight at once and checks
// what each costs: small windows keep zstd and brotli far below the 8–10 MiB
// their libraries' defaults cost per stream. Bounds are generous; the
// measured figures are logged.
func TestMemoryPerResponse(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector inflates allocations")
	}
	for _, tc := range []struct {
		name  string
		enc   string
		opts  []Option
		limit int64
	}{
		{"zstd default", "zstd", nil, 4 << 20},
		{"zstd level 1", "zstd", []Option{Level(Zstd, 1)}, 2 << 20},
		{"gzip default", "gzip", nil, 2 << 20},
		{"gzip stateless", "gzip", []Option{Level(Gzip, -3)}, 256 << 10},
		{"brotli default", "br", nil, 4 << 20},
	} {
		per := inflightMemory(t, tc.enc, tc.opts...)
		t.Logf("%s: %d KiB per in-flight response", tc.name, per>>10)
		require.Less(t, per, tc.limit, "%s: got %d KiB per in-flight response, want < %d KiB", tc.name, per>>10, tc.limit>>10)
	}
}

func inflightMemory(t *testing.T, enc string, opts ...Option) int64 {
	const inflight = 32
	body := testJSON(256 << 10)
	m := newMiddleware(mustConfig(t, opts...))
	var started, release sync.WaitGroup
	started.Add(inflight)
	release.Add(1)
	h := &handler{m: m, next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
		w.(http.Flusher).Flush()
		started.Done()
		release.Wait()
	})}
	runtime.GC()
	runtime.GC() // twice: empties sync.Pool victim caches of earlier cases
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var done sync.WaitGroup
	for range inflight {
		done.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, "/", nil)
			req.Header.Set("Accept-Encoding", enc)
			h.ServeHTTP(&discardWriter{h: http.Header{}}, req)
		})
	}
	started.Wait()
	runtime.GC()
	var during runtime.MemStats
	runtime.ReadMemStats(&during)
	release.Done()
	done.Wait()
	return (int64(during.HeapAlloc) - int64(before.HeapAlloc)) / inflight
}

func mustConfig(t *testing.T, opts ...Option) *config {
	t.Helper()
	c := defaultConfig()
	for _, o := range opts {
		require.NoError(t, o(c))
	}
	return c
}
