// Package compressbench compares the compress middleware with its peers:
// klauspost/compress gzhttp, CAFxX/httpcompression and NYTimes/gziphandler,
// all with their default options, on the same JSON responses in one run.
package compressbench

import (
	"bytes"
	stdgzip "compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/CAFxX/httpcompression"
	"github.com/NYTimes/gziphandler"
	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzhttp"
	"github.com/klauspost/compress/zstd"

	"github.com/outrigger-dev/outrigger/compress"
	"github.com/outrigger-dev/outrigger/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// impl is one middleware under test, with the encodings it offers.
type impl struct {
	name string
	encs []string
	wrap func(http.Handler) http.Handler
}

func impls(tb testing.TB) []impl {
	tb.Helper()
	ours, err := compress.Middleware()
	if err != nil {
		tb.Fatal(err)
	}
	gz, err := gzhttp.NewWrapper()
	if err != nil {
		tb.Fatal(err)
	}
	hc, err := httpcompression.DefaultAdapter()
	if err != nil {
		tb.Fatal(err)
	}
	return []impl{
		{"outrigger", []string{"gzip", "br", "zstd"}, ours},
		{"gzhttp", []string{"gzip", "zstd"}, func(h http.Handler) http.Handler { return gz(h) }},
		{"httpcompression", []string{"gzip", "br", "zstd"}, hc},
		{"gziphandler", []string{"gzip"}, gziphandler.GzipHandler},
	}
}

var sizes = []struct {
	name string
	n    int
}{{"1KiB", 1 << 10}, {"10KiB", 10 << 10}, {"100KiB", 100 << 10}}

var jsonType = []string{"application/json"}

// jsonHandler writes body as a JSON response. It sets the header slice
// directly, so its own cost is zero allocations and allocs/op is the
// middleware's.
func jsonHandler(body []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = jsonType
		w.Write(body)
	})
}

// sink is a reusable ResponseWriter that counts the bytes written.
type sink struct {
	h    http.Header
	code int
	n    int64
}

func (s *sink) Header() http.Header         { return s.h }
func (s *sink) WriteHeader(code int)        { s.code = code }
func (s *sink) Write(p []byte) (int, error) { s.n += int64(len(p)); return len(p), nil }
func (s *sink) Flush()                      {}

// BenchmarkMiddleware measures one compressed JSON response per op:
// ns/op, MB/s of uncompressed body, allocs/op of the middleware, and
// bytes-out (the compressed size).
func BenchmarkMiddleware(b *testing.B) {
	for _, sz := range sizes {
		body := realisticJSON(sz.n)
		for _, enc := range []string{"gzip", "br", "zstd"} {
			for _, im := range impls(b) {
				if !contains(im.encs, enc) {
					continue
				}
				h := im.wrap(jsonHandler(body))
				for _, mode := range []string{"seq", "par"} {
					b.Run(fmt.Sprintf("size=%s/enc=%s/impl=%s/mode=%s", sz.name, enc, im.name, mode), func(b *testing.B) {
						b.ReportAllocs()
						b.SetBytes(int64(len(body)))
						var out int64
						var ops int64
						if mode == "seq" {
							w, req := newPair(enc)
							for b.Loop() {
								clear(w.h)
								w.n = 0
								h.ServeHTTP(w, req)
							}
							out, ops = w.n, 1
						} else {
							ch := make(chan int64, 64)
							b.RunParallel(func(pb *testing.PB) {
								w, req := newPair(enc)
								for pb.Next() {
									clear(w.h)
									w.n = 0
									h.ServeHTTP(w, req)
								}
								ch <- w.n
							})
							close(ch)
							for n := range ch {
								if n > 0 {
									out, ops = out+n, ops+1
								}
							}
						}
						if ops > 0 {
							b.ReportMetric(float64(out)/float64(ops), "bytes-out")
						}
					})
				}
			}
		}
	}
}

func newPair(enc string) (*sink, *http.Request) {
	req := httptest.NewRequest(http.MethodGet, "/v1/customers", nil)
	req.Header.Set("Accept-Encoding", enc)
	return &sink{h: http.Header{}}, req
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestPeersCompress checks that every implementation really encodes the
// benchmark responses (10 KiB and up) with the requested encoding, and that
// the bodies decode to the original: the benchmark compares like with like.
func TestPeersCompress(t *testing.T) {
	for _, sz := range sizes[1:] {
		body := realisticJSON(sz.n)
		if !json.Valid(body) {
			t.Fatalf("size=%s: generated JSON is invalid", sz.name)
		}
		for _, im := range impls(t) {
			for _, enc := range im.encs {
				rec := httptest.NewRecorder()
				req := httptest.NewRequest(http.MethodGet, "/", nil)
				req.Header.Set("Accept-Encoding", enc)
				im.wrap(jsonHandler(body)).ServeHTTP(rec, req)
				if got := rec.Header().Get("Content-Encoding"); got != enc {
					t.Fatalf("impl=%s size=%s: got Content-Encoding %q, want %q", im.name, sz.name, got, enc)
				}
				var r io.Reader
				switch enc {
				case "gzip":
					zr, err := stdgzip.NewReader(bytes.NewReader(rec.Body.Bytes()))
					if err != nil {
						t.Fatal(err)
					}
					r = zr
				case "br":
					r = brotli.NewReader(bytes.NewReader(rec.Body.Bytes()))
				case "zstd":
					zr, err := zstd.NewReader(bytes.NewReader(rec.Body.Bytes()))
					if err != nil {
						t.Fatal(err)
					}
					defer zr.Close()
					r = zr
				}
				got, err := io.ReadAll(r)
				if err != nil || !bytes.Equal(got, body) {
					t.Fatalf("impl=%s enc=%s size=%s: body does not round trip: %v", im.name, enc, sz.name, err)
				}
			}
		}
	}
}
