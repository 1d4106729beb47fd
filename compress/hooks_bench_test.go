package compress_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/outrigger-dev/outrigger/compress"
)

// hookSink is a ResponseWriter that discards the body.
type hookSink struct{ h http.Header }

func (s *hookSink) Header() http.Header         { return s.h }
func (s *hookSink) WriteHeader(int)             {}
func (s *hookSink) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkHooks measures the hot path, one gzip-compressed 1 KiB JSON
// response through the middleware, with no hooks set (hooks=unset) and with
// OnResponse a no-op (hooks=noop). Compare hooks=unset with the same
// benchmark at a commit before hooks existed (BENCHMARKS.md, "Hooks
// overhead").
func BenchmarkHooks(b *testing.B) {
	body := bytes.Repeat([]byte(`{"symbol":"ACME","bid":101.25,"ask":101.5,"seq":12345},`), 1024/56+1)[:1024]
	for _, hc := range hookCases() {
		b.Run("hooks="+hc.name, func(b *testing.B) {
			mw, err := compress.Middleware(hc.opts...)
			if err != nil {
				b.Fatal(err)
			}
			h := mw(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write(body)
			}))
			req, _ := http.NewRequest(http.MethodGet, "/", nil)
			req.Header.Set("Accept-Encoding", "gzip")
			w := &hookSink{h: http.Header{}}
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				clear(w.h)
				h.ServeHTTP(w, req)
			}
		})
	}
}
