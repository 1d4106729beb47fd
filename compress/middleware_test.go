package compress

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var modTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// TestMiddlewareRules is the table of every rule of the middleware.
func TestMiddlewareRules(t *testing.T) {
	big := testJSON(8 << 10)
	small := testJSON(100)[:100]
	text := []byte(strings.Repeat("<p>hello, compressible world</p>\n", 200))
	pngBytes := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{0}, 4096)...)

	writeJSON := func(b []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(b)
		}
	}
	withType := func(ct string, b []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", ct)
			w.Write(b)
		}
	}
	serveContent := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Etag", `"v1"`)
		http.ServeContent(w, r, "data.json", modTime, bytes.NewReader(big))
	}

	type check func(t *testing.T, rec *http.Response, body []byte)
	for _, tc := range []struct {
		name   string
		opts   []Option
		h      http.HandlerFunc
		method string
		req    map[string]string
		status int
		enc    string // expected Content-Encoding
		body   []byte // expected decoded body (nil: skip)
		vary   bool   // expect Vary: Accept-Encoding exactly once
		checks []check
	}{
		{name: "gzip", h: writeJSON(big), req: map[string]string{"Accept-Encoding": "gzip"}, enc: "gzip", body: big, vary: true},
		{name: "x-gzip", h: writeJSON(big), req: map[string]string{"Accept-Encoding": "x-gzip"}, enc: "gzip", body: big, vary: true},
		{name: "br", h: writeJSON(big), req: map[string]string{"Accept-Encoding": "br"}, enc: "br", body: big, vary: true},
		{name: "zstd", h: writeJSON(big), req: map[string]string{"Accept-Encoding": "zstd"}, enc: "zstd", body: big, vary: true},
		{name: "browser prefers zstd", h: writeJSON(big), req: map[string]string{"Accept-Encoding": "gzip, deflate, br, zstd"}, enc: "zstd", body: big, vary: true},
		{name: "server order option", opts: []Option{Encodings(Gzip, Brotli)}, h: writeJSON(big), req: map[string]string{"Accept-Encoding": "zstd, br, gzip"}, enc: "gzip", body: big, vary: true},
		{name: "no accept-encoding: identity with vary", h: writeJSON(big), enc: "", body: big, vary: true},
		{name: "identity only", h: writeJSON(big), req: map[string]string{"Accept-Encoding": "identity"}, enc: "", body: big, vary: true},
		{name: "below MinSize", h: writeJSON(small), req: map[string]string{"Accept-Encoding": "gzip"}, enc: "", body: small},
		{name: "MinSize option lowers threshold", opts: []Option{MinSize(50)}, h: writeJSON(small), req: map[string]string{"Accept-Encoding": "gzip"}, enc: "gzip", body: small, vary: true},
		{name: "MinSize 0 compresses tiny", opts: []Option{MinSize(0)}, h: writeJSON([]byte("{}")), req: map[string]string{"Accept-Encoding": "gzip"}, enc: "gzip", body: []byte("{}"), vary: true},
		{name: "empty body", opts: []Option{MinSize(0)}, h: func(w http.ResponseWriter, r *http.Request) {}, req: map[string]string{"Accept-Encoding": "gzip"}, enc: "", body: []byte{}},
		{name: "many small writes add up", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			for i := 0; i < len(big); i += 7 {
				w.Write(big[i:min(i+7, len(big))])
			}
		}, req: map[string]string{"Accept-Encoding": "gzip"}, enc: "gzip", body: big, vary: true},
		{name: "small Content-Length decides without buffering", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", "100")
			w.Write(small)
		}, req: map[string]string{"Accept-Encoding": "gzip"}, enc: "", body: small, checks: []check{
			func(t *testing.T, res *http.Response, _ []byte) {
				assert.Equal(t, "100", res.Header.Get("Content-Length"))
			},
		}},
		{name: "large Content-Length removed", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", fmt.Sprint(len(big)))
			w.Write(big)
		}, req: map[string]string{"Accept-Encoding": "br"}, enc: "br", body: big, vary: true, checks: []check{
			func(t *testing.T, res *http.Response, body []byte) {
				assert.Empty(t, res.Header.Get("Content-Length"))
			},
		}},
		{name: "jpeg not compressed", h: withType("image/jpeg", text), req: map[string]string{"Accept-Encoding": "gzip"}, enc: "", body: text},
		{name: "png not compressed", h: withType("image/png", text), req: map[string]string{"Accept-Encoding": "gzip"}, enc: "", body: text},
		{name: "webp not compressed", h: withType("image/webp", text), req: map[string]string{"Accept-Encoding": "zstd"}, enc: "", body: text},
		{name: "avif not compressed", h: withType("image/avif", text), req: map[string]string{"Accept-Encoding": "br"}, enc: "", body: text},
		{name: "gif not compressed", h: withType("image/gif", text), req: map[string]string{"Accept-Encoding": "br"}, enc: "", body: text},
		{name: "woff2 not compressed", h: withType("font/woff2", text), req: map[string]string{"Accept-Encoding": "gzip"}, enc: "", body: text},
		{name: "video not compressed", h: withType("video/mp4", text), req: map[string]string{"Accept-Encoding": "gzip"}, enc: "", body: text},
		{name: "audio not compressed", h: withType("audio/ogg", text), req: map[string]string{"Accept-Encoding": "gzip"}, enc: "", body: text},
		{name: "zip not compressed", h: withType("application/zip", text), req: map[string]string{"Accept-Encoding": "gzip"}, enc: "", body: text},
		{name: "svg compressed", h: withType("image/svg+xml", text), req: map[string]string{"Accept-Encoding": "gzip"}, enc: "gzip", body: text, vary: true},
		{name: "type case insensitive", h: withType("IMAGE/JPEG; foo=bar", text), req: map[string]string{"Accept-Encoding": "gzip"}, enc: "", body: text},
		{name: "ContentTypes allow list", opts: []Option{ContentTypes("text/*")}, h: withType("application/json", text), req: map[string]string{"Accept-Encoding": "gzip"}, enc: "", body: text},
		{name: "ContentTypes allow match", opts: []Option{ContentTypes("text/*")}, h: withType("text/html; charset=utf-8", text), req: map[string]string{"Accept-Encoding": "gzip"}, enc: "gzip", body: text, vary: true},
		{name: "ContentTypes can allow a default-excluded type", opts: []Option{ContentTypes("image/png")}, h: withType("image/png", text), req: map[string]string{"Accept-Encoding": "gzip"}, enc: "gzip", body: text, vary: true},
		{name: "ExceptContentTypes", opts: []Option{ExceptContentTypes("application/json")}, h: writeJSON(big), req: map[string]string{"Accept-Encoding": "gzip"}, enc: "", body: big},
		{name: "ExceptContentTypes keeps defaults", opts: []Option{ExceptContentTypes("application/json")}, h: withType("image/png", text), req: map[string]string{"Accept-Encoding": "gzip"}, enc: "", body: text},
		{name: "sniffed text compressed with sniffed type", h: func(w http.ResponseWriter, r *http.Request) { w.Write(text) },
			req: map[string]string{"Accept-Encoding": "gzip"}, enc: "gzip", body: text, vary: true, checks: []check{
				func(t *testing.T, res *http.Response, _ []byte) {
					assert.Equal(t, "text/html; charset=utf-8", res.Header.Get("Content-Type"))
				},
			}},
		{name: "sniffed png not compressed", h: func(w http.ResponseWriter, r *http.Request) { w.Write(pngBytes) },
			req: map[string]string{"Accept-Encoding": "gzip"}, enc: "", body: pngBytes},
		{name: "existing Content-Encoding untouched", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "deflate")
			w.Header().Set("Content-Type", "text/plain")
			w.Write(big)
		}, req: map[string]string{"Accept-Encoding": "gzip"}, checks: []check{
			func(t *testing.T, res *http.Response, body []byte) {
				assert.Equal(t, "deflate", res.Header.Get("Content-Encoding"))
				assert.Equal(t, big, body)
			},
		}},
		{name: "204 untouched", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusNoContent)
		}, req: map[string]string{"Accept-Encoding": "gzip"}, status: 204, enc: "", body: []byte{}},
		{name: "404 page compressed", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusNotFound)
			w.Write(text)
		}, req: map[string]string{"Accept-Encoding": "gzip"}, status: 404, enc: "gzip", body: text, vary: true},
		{name: "no-transform", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "public, No-Transform, max-age=60")
			w.Header().Set("Content-Type", "text/plain")
			w.Write(big)
		}, req: map[string]string{"Accept-Encoding": "gzip"}, enc: "", body: big},
		{name: "Content-Range untouched", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Range", "bytes 0-99/200")
			w.WriteHeader(http.StatusPartialContent)
			w.Write(big[:100])
		}, req: map[string]string{"Accept-Encoding": "gzip"}, status: 206, enc: "", body: big[:100]},
		{name: "Range request gets identity 206", h: serveContent, req: map[string]string{"Accept-Encoding": "gzip", "Range": "bytes=0-2047"},
			status: 206, enc: "", body: big[:2048], checks: []check{
				func(t *testing.T, res *http.Response, _ []byte) {
					assert.Equal(t, "bytes", res.Header.Get("Accept-Ranges"))
					assert.Equal(t, `"v1"`, res.Header.Get("Etag"))
				},
			}},
		{name: "Accept-Ranges dropped and ETag suffixed when compressed", h: serveContent, req: map[string]string{"Accept-Encoding": "gzip"},
			enc: "gzip", body: big, vary: true, checks: []check{
				func(t *testing.T, res *http.Response, _ []byte) {
					assert.Empty(t, res.Header.Get("Accept-Ranges"))
					assert.Equal(t, `"v1-gzip"`, res.Header.Get("Etag"))
					assert.Empty(t, res.Header.Get("Content-Length"))
				},
			}},
		{name: "ETag suffix per encoding", h: serveContent, req: map[string]string{"Accept-Encoding": "zstd"}, enc: "zstd", body: big, vary: true, checks: []check{
			func(t *testing.T, res *http.Response, _ []byte) { assert.Equal(t, `"v1-zstd"`, res.Header.Get("Etag")) },
		}},
		{name: "WeakETags", opts: []Option{WeakETags(true)}, h: serveContent, req: map[string]string{"Accept-Encoding": "br"}, enc: "br", body: big, vary: true, checks: []check{
			func(t *testing.T, res *http.Response, _ []byte) { assert.Equal(t, `W/"v1"`, res.Header.Get("Etag")) },
		}},
		{name: "weak ETag left alone", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Etag", `W/"abc"`)
			w.Header().Set("Content-Type", "text/plain")
			w.Write(big)
		}, req: map[string]string{"Accept-Encoding": "gzip"}, enc: "gzip", body: big, vary: true, checks: []check{
			func(t *testing.T, res *http.Response, _ []byte) { assert.Equal(t, `W/"abc"`, res.Header.Get("Etag")) },
		}},
		{name: "malformed ETag dropped when compressed", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Etag", `abc`)
			w.Header().Set("Content-Type", "text/plain")
			w.Write(big)
		}, req: map[string]string{"Accept-Encoding": "gzip"}, enc: "gzip", body: big, vary: true, checks: []check{
			func(t *testing.T, res *http.Response, _ []byte) { assert.Empty(t, res.Header.Values("Etag")) },
		}},
		{name: "If-None-Match with suffixed tag gets 304 from ServeContent", h: serveContent,
			req: map[string]string{"Accept-Encoding": "gzip", "If-None-Match": `"v1-gzip"`}, status: 304, enc: "", body: []byte{}, vary: true, checks: []check{
				func(t *testing.T, res *http.Response, _ []byte) { assert.Equal(t, `"v1-gzip"`, res.Header.Get("Etag")) },
			}},
		{name: "If-None-Match list with zstd tag", h: serveContent,
			req: map[string]string{"Accept-Encoding": "zstd", "If-None-Match": `"other", "v1-zstd"`}, status: 304, enc: "", body: []byte{}, vary: true, checks: []check{
				func(t *testing.T, res *http.Response, _ []byte) { assert.Equal(t, `"v1-zstd"`, res.Header.Get("Etag")) },
			}},
		{name: "If-None-Match weak compressed tag gets 304", opts: []Option{WeakETags(true)}, h: serveContent,
			req: map[string]string{"Accept-Encoding": "gzip", "If-None-Match": `W/"v1"`}, status: 304, enc: "", body: []byte{}, vary: true, checks: []check{
				func(t *testing.T, res *http.Response, _ []byte) { assert.Equal(t, `W/"v1"`, res.Header.Get("Etag")) },
			}},
		{name: "If-None-Match identity tag still 304", h: serveContent,
			req: map[string]string{"Accept-Encoding": "gzip", "If-None-Match": `"v1"`}, status: 304, enc: "", body: []byte{}},
		{name: "If-None-Match mismatch gets 200", h: serveContent,
			req: map[string]string{"Accept-Encoding": "gzip", "If-None-Match": `"v0-gzip"`}, status: 200, enc: "gzip", body: big, vary: true},
		{name: "If-Match with suffixed tag passes", h: serveContent,
			req: map[string]string{"Accept-Encoding": "gzip", "If-Match": `"v1-gzip"`}, status: 200, enc: "gzip", body: big, vary: true},
		{name: "If-Match weak translated in weak mode", opts: []Option{WeakETags(true)}, h: serveContent,
			req: map[string]string{"Accept-Encoding": "gzip", "If-Match": `W/"v1"`}, status: 200, enc: "gzip", body: big, vary: true},
		{name: "If-Match mismatch 412", h: serveContent,
			req: map[string]string{"Accept-Encoding": "gzip", "If-Match": `"v0-gzip"`}, status: 412, enc: ""},
		{name: "Vary merged with handler's", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Vary", "Origin")
			writeJSON(big)(w, r)
		}, req: map[string]string{"Accept-Encoding": "gzip"}, enc: "gzip", body: big, vary: true, checks: []check{
			func(t *testing.T, res *http.Response, _ []byte) {
				assert.Equal(t, []string{"Origin", "Accept-Encoding"}, res.Header.Values("Vary"))
			},
		}},
		{name: "Vary not duplicated", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Vary", "origin, accept-encoding")
			writeJSON(big)(w, r)
		}, req: map[string]string{"Accept-Encoding": "gzip"}, enc: "gzip", body: big, checks: []check{
			func(t *testing.T, res *http.Response, _ []byte) {
				assert.Equal(t, []string{"origin, accept-encoding"}, res.Header.Values("Vary"))
			},
		}},
		{name: "Vary star kept", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Vary", "*")
			writeJSON(big)(w, r)
		}, req: map[string]string{"Accept-Encoding": "gzip"}, enc: "gzip", body: big, checks: []check{
			func(t *testing.T, res *http.Response, _ []byte) {
				assert.Equal(t, []string{"*"}, res.Header.Values("Vary"))
			},
		}},
		{name: "HEAD with Content-Length gets GET headers", method: http.MethodHead, h: serveContent,
			req: map[string]string{"Accept-Encoding": "gzip"}, enc: "gzip", body: []byte{}, vary: true, checks: []check{
				func(t *testing.T, res *http.Response, _ []byte) {
					assert.Equal(t, `"v1-gzip"`, res.Header.Get("Etag"))
					assert.Empty(t, res.Header.Get("Content-Length"))
					assert.Empty(t, res.Header.Get("Accept-Ranges"))
				},
			}},
		{name: "HEAD with written body gets GET headers", method: http.MethodHead, h: writeJSON(big),
			req: map[string]string{"Accept-Encoding": "br"}, enc: "br", body: []byte{}, vary: true},
		{name: "HEAD small", method: http.MethodHead, h: writeJSON(small),
			req: map[string]string{"Accept-Encoding": "br"}, enc: "", body: []byte{}},
		{name: "Flush before MinSize compresses the stream", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.Write([]byte("{\"a\":1}\n"))
			w.(http.Flusher).Flush()
			w.Write([]byte("{\"a\":2}\n"))
		}, req: map[string]string{"Accept-Encoding": "gzip"}, enc: "gzip", body: []byte("{\"a\":1}\n{\"a\":2}\n"), vary: true},
		{name: "event-stream compressed immediately", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			w.Write([]byte("data: x\n\n"))
		}, req: map[string]string{"Accept-Encoding": "zstd"}, enc: "zstd", body: []byte("data: x\n\n"), vary: true},
		{name: "BreachPadding gzip decodes", opts: []Option{BreachPadding(64)}, h: writeJSON(big), req: map[string]string{"Accept-Encoding": "gzip"}, enc: "gzip", body: big, vary: true},
		{name: "BreachPadding zstd decodes", opts: []Option{BreachPadding(64)}, h: writeJSON(big), req: map[string]string{"Accept-Encoding": "zstd"}, enc: "zstd", body: big, vary: true},
		{name: "BreachPadding disables brotli", opts: []Option{BreachPadding(64)}, h: writeJSON(big), req: map[string]string{"Accept-Encoding": "br, gzip;q=0.5"}, enc: "gzip", body: big, vary: true},
		{name: "levels", opts: []Option{Level(Gzip, 9), Level(Zstd, 4), Level(Brotli, 11)}, h: writeJSON(big), req: map[string]string{"Accept-Encoding": "br"}, enc: "br", body: big, vary: true},
		{name: "gzip stateless level streams", opts: []Option{Level(Gzip, -3)}, h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			for i := 0; i < len(big); i += 1000 {
				w.Write(big[i:min(i+1000, len(big))])
				w.(http.Flusher).Flush()
			}
		}, req: map[string]string{"Accept-Encoding": "gzip"}, enc: "gzip", body: big, vary: true},
		{name: "upper-case jpeg not compressed", h: withType("Image/JPEG", text), req: map[string]string{"Accept-Encoding": "gzip"}, enc: "", body: text},
		{name: "x-icon compressed", h: withType("image/x-icon", text), req: map[string]string{"Accept-Encoding": "gzip"}, enc: "gzip", body: text, vary: true},
		{name: "BrotliWindow", opts: []Option{BrotliWindow(1 << 10)}, h: writeJSON(testJSON(64 << 10)), req: map[string]string{"Accept-Encoding": "br"}, enc: "br", body: testJSON(64 << 10), vary: true},
		{name: "ZstdWindow", opts: []Option{ZstdWindow(1 << 10)}, h: writeJSON(testJSON(64 << 10)), req: map[string]string{"Accept-Encoding": "zstd"}, enc: "zstd", body: testJSON(64 << 10), vary: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := mustMiddleware(t, tc.opts...)(tc.h)
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			rec := serve(t, h, method, tc.req)
			res := rec.Result()
			want := tc.status
			if want == 0 {
				want = http.StatusOK
			}
			require.Equal(t, want, res.StatusCode)
			ce := res.Header.Get("Content-Encoding")
			if tc.checks == nil || tc.enc != "" || tc.body != nil {
				require.Equal(t, tc.enc, ce, "Content-Encoding")
			}
			raw := rec.Body.Bytes()
			var body []byte
			if tc.enc != "" && method != http.MethodHead {
				body = decodeBody(t, ce, raw)
				if len(body) >= 1024 {
					require.Less(t, len(raw), len(body), "compressed body not smaller")
				}
			} else {
				body = raw
			}
			if tc.body != nil {
				require.Equal(t, len(tc.body), len(body))
				require.True(t, bytes.Equal(tc.body, body), "decoded body differs")
			}
			n := 0
			for _, v := range res.Header.Values("Vary") {
				for _, f := range strings.Split(v, ",") {
					if strings.EqualFold(strings.TrimSpace(f), "Accept-Encoding") {
						n++
					}
				}
			}
			if tc.vary {
				require.Equal(t, 1, n, "Vary: Accept-Encoding count, Vary=%q", res.Header.Values("Vary"))
			} else if tc.checks == nil {
				require.Equal(t, 0, n, "unexpected Vary: %q", res.Header.Values("Vary"))
			}
			for _, c := range tc.checks {
				c(t, res, body)
			}
		})
	}
}

// TestHeadMatchesGet checks HEAD gets exactly the headers GET gets.
func TestHeadMatchesGet(t *testing.T) {
	big := testJSON(8 << 10)
	handlers := map[string]http.HandlerFunc{
		"ServeContent": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Etag", `"v1"`)
			http.ServeContent(w, r, "data.json", modTime, bytes.NewReader(big))
		},
		"Content-Length": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", fmt.Sprint(len(big)))
			w.Write(big)
		},
		"writes body": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(big)
		},
		"small": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(big[:10])
		},
	}
	for name, h := range handlers {
		for _, ae := range []string{"", "gzip", "br", "zstd", "identity"} {
			t.Run(name+"/ae="+ae, func(t *testing.T) {
				mw := mustMiddleware(t)(h)
				get := serve(t, mw, http.MethodGet, map[string]string{"Accept-Encoding": ae}).Result()
				head := serve(t, mw, http.MethodHead, map[string]string{"Accept-Encoding": ae}).Result()
				require.Equal(t, get.StatusCode, head.StatusCode)
				g, hd := get.Header.Clone(), head.Header.Clone()
				if g.Get("Content-Encoding") == "" {
					// Identity GET responses get a Content-Length that a HEAD of a
					// handler without one cannot know (net/http behaves the same).
					g.Del("Content-Length")
					hd.Del("Content-Length")
				}
				require.Equal(t, g, hd)
			})
		}
	}
}

// TestRequestNotModified checks the incoming request is never modified.
func TestRequestNotModified(t *testing.T) {
	var seen http.Header
	h := mustMiddleware(t)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = r.Header.Clone()
		w.Header().Set("Etag", `"v1"`)
		http.ServeContent(w, r, "x.json", modTime, bytes.NewReader(testJSON(4096)))
	}))
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	req.Header.Set("If-None-Match", `"v1-gzip"`)
	req.Header.Set("If-Match", `"v1-gzip", "v2-br"`)
	before := req.Header.Clone()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, before, req.Header, "incoming request modified")
	require.Equal(t, `"v1"`, seen.Get("If-None-Match"), "handler saw untranslated If-None-Match")
	require.Equal(t, `"v1", "v2"`, seen.Get("If-Match"))
	require.Equal(t, http.StatusNotModified, rec.Code)
}

func TestMiddlewareOptionErrors(t *testing.T) {
	for _, tc := range []struct {
		opt  Option
		is   error
		want string
	}{
		{Encodings("lz4"), ErrUnknownEncoding, `Encodings: compress: unknown encoding "lz4"`},
		{Encodings(Identity), ErrUnknownEncoding, "identity"},
		{Encodings(), ErrBadOption, "Encodings"},
		{Encodings(Gzip, Gzip), ErrBadOption, "gzip listed twice"},
		{Level(Gzip, 10), ErrBadLevel, "gzip level must be in [-3, 9], got 10"},
		{Level(Brotli, -1), ErrBadLevel, "br level must be in [0, 11], got -1"},
		{Level(Zstd, 0), ErrBadLevel, "zstd level must be in [1, 4], got 0"},
		{Level("deflate", 1), ErrUnknownEncoding, "deflate"},
		{MinSize(-1), ErrBadOption, "MinSize must be >= 0, got -1"},
		{ContentTypes("not a type"), ErrBadOption, "ContentTypes"},
		{ContentTypes(), ErrBadOption, "ContentTypes"},
		{ExceptContentTypes("text"), ErrBadOption, "ExceptContentTypes"},
		{BreachPadding(-1), ErrBadOption, "BreachPadding"},
		{BreachPadding(1 << 20), ErrBadOption, "BreachPadding"},
		{ZstdWindow(3000), ErrBadOption, "ZstdWindow must be a power of two"},
		{ZstdWindow(16 << 20), ErrBadOption, "ZstdWindow"},
		{BrotliWindow(1000), ErrBadOption, "BrotliWindow must be a power of two"},
		{BrotliWindow(32 << 20), ErrBadOption, "BrotliWindow"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			mw, err := Middleware(tc.opt)
			require.Nil(t, mw)
			require.ErrorIs(t, err, tc.is)
			require.ErrorContains(t, err, tc.want)
		})
	}
	_, err := Middleware(nil, Encodings(Gzip))
	require.NoError(t, err)
}

// TestPanickingHandler checks a panic leaves no half-written response and
// does not poison the pools.
func TestPanickingHandler(t *testing.T) {
	big := testJSON(8 << 10)
	boom := errors.New("boom")
	h := mustMiddleware(t)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(big)
		if r.URL.Query().Get("panic") != "" {
			panic(boom)
		}
	}))
	for range 3 {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/?panic=1", nil)
		req.Header.Set("Accept-Encoding", "gzip")
		func() {
			defer func() { require.Equal(t, boom, recover()) }()
			h.ServeHTTP(rec, req)
		}()
		rec2 := serve(t, h, http.MethodGet, map[string]string{"Accept-Encoding": "gzip"})
		require.Equal(t, big, decodeBody(t, "gzip", rec2.Body.Bytes()))
	}
}

func TestBreachPaddingVariesLength(t *testing.T) {
	big := testJSON(8 << 10)
	for _, enc := range []string{"gzip", "zstd"} {
		h := mustMiddleware(t, BreachPadding(200))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(big)
		}))
		sizes := map[int]bool{}
		for range 20 {
			rec := serve(t, h, http.MethodGet, map[string]string{"Accept-Encoding": enc})
			require.Equal(t, enc, rec.Header().Get("Content-Encoding"))
			require.Equal(t, big, decodeBody(t, enc, rec.Body.Bytes()))
			sizes[rec.Body.Len()] = true
		}
		require.Greater(t, len(sizes), 5, "enc=%s: got %d distinct sizes in 20 responses, want padding to vary them", enc, len(sizes))
	}
}

func TestGzipAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop entries on purpose")
	}
	body := testJSON(10 << 10)
	for _, tc := range []struct {
		name string
		opts []Option
	}{{"defaults", nil}, {"stats", []Option{WithStats(new(Stats))}},
		{"hooks", []Option{WithHooks(Hooks{OnResponse: func(Encoding, int64, int64) {}})}}} {
		h := mustMiddleware(t, tc.opts...)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Type"] = jsonType
			w.Write(body)
		}))
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("Accept-Encoding", "gzip, deflate")
		w := &discardWriter{h: http.Header{}}
		h.ServeHTTP(w, req) // warm the pools
		allocs := testing.AllocsPerRun(200, func() {
			clear(w.h)
			h.ServeHTTP(w, req)
		})
		// sync.Pool may drop its contents at a GC during the run; anything
		// below one allocation per request is the steady state.
		require.Less(t, allocs, 1.0, "%s: got %v allocs per request, want 0", tc.name, allocs)
	}
}

var jsonType = []string{"application/json"}

// discardWriter is a minimal ResponseWriter reused across requests.
type discardWriter struct {
	h    http.Header
	code int
	n    int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }
func (d *discardWriter) Write(p []byte) (int, error) { d.n += len(p); return len(p), nil }

func TestStats(t *testing.T) {
	var st Stats
	big := testJSON(8 << 10)
	h := mustMiddleware(t, WithStats(&st))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("small") != "" {
			w.Write(big[:10])
			return
		}
		w.Write(big)
	}))
	var out uint64
	for _, ae := range []string{"gzip", "br", "zstd", "zstd", ""} {
		rec := serve(t, h, http.MethodGet, map[string]string{"Accept-Encoding": ae})
		if ae != "" {
			out += uint64(rec.Body.Len())
		}
	}
	req := httptest.NewRequest(http.MethodGet, "/?small=1", nil)
	req.Header.Set("Accept-Encoding", "gzip")
	h.ServeHTTP(httptest.NewRecorder(), req)

	snap := st.Snapshot()
	require.Equal(t, map[Encoding]uint64{Gzip: 1, Brotli: 1, Zstd: 2}, snap.Compressed)
	require.EqualValues(t, 2, snap.Identity)
	require.EqualValues(t, 4*len(big), snap.BytesIn)
	require.Equal(t, out, snap.BytesOut)
}

// TestHooks: OnResponse reports each response's encoding and sizes, for
// compressed, small, refused and plain ReadFrom responses.
func TestHooks(t *testing.T) {
	type call struct {
		enc     Encoding
		in, out int64
	}
	var got []call
	big := testJSON(8 << 10)
	h := mustMiddleware(t, WithHooks(Hooks{OnResponse: func(enc Encoding, in, out int64) {
		got = append(got, call{enc, in, out})
	}}))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("kind") {
		case "small":
			w.Header().Set("Content-Type", "application/json")
			w.Write(big[:10])
		case "png":
			w.Header().Set("Content-Type", "image/png")
			io.Copy(w, struct{ io.Reader }{bytes.NewReader(big)})
		default:
			w.Header().Set("Content-Type", "application/json")
			w.Write(big)
		}
	}))
	for _, tc := range []struct {
		ae, kind string
		want     Encoding
		plain    int
	}{{"gzip", "", Gzip, 0}, {"br", "", Brotli, 0}, {"zstd", "", Zstd, 0}, {"", "", Identity, len(big)},
		{"gzip", "small", Identity, 10}, {"gzip", "png", Identity, len(big)}} {
		got = nil
		req := httptest.NewRequest(http.MethodGet, "/?kind="+tc.kind, nil)
		req.Header.Set("Accept-Encoding", tc.ae)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		require.Len(t, got, 1, "%s %s: hook calls", tc.ae, tc.kind)
		c := got[0]
		require.Equal(t, tc.want, c.enc, "%s %s: encoding", tc.ae, tc.kind)
		require.EqualValues(t, rec.Body.Len(), c.out, "%s %s: bytes out", tc.ae, tc.kind)
		if tc.want == Identity {
			require.EqualValues(t, tc.plain, c.in, "%s %s: bytes in", tc.ae, tc.kind)
		} else {
			require.EqualValues(t, len(big), c.in, "%s %s: bytes in", tc.ae, tc.kind)
			require.Less(t, c.out, c.in, "compressed")
		}
	}
}

// TestReadFrom checks io.Copy into the middleware (as http.ServeContent
// does) for compressed and plain responses, and that a plain response is
// handed to the underlying ReaderFrom.
func TestReadFrom(t *testing.T) {
	big := testJSON(100 << 10)
	for _, tc := range []struct {
		ae, ct, enc string
	}{{"gzip", "application/json", "gzip"}, {"zstd", "image/png", ""}, {"", "application/json", ""}} {
		h := mustMiddleware(t)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", tc.ct)
			n, err := io.Copy(w, struct{ io.Reader }{bytes.NewReader(big)})
			require.NoError(t, err)
			require.EqualValues(t, len(big), n)
		}))
		rf := &readerFromRecorder{ResponseRecorder: httptest.NewRecorder()}
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("Accept-Encoding", tc.ae)
		h.ServeHTTP(rf, req)
		require.Equal(t, tc.enc, rf.Header().Get("Content-Encoding"))
		require.Equal(t, big, decodeBody(t, tc.enc, rf.Body.Bytes()))
		require.Equal(t, tc.enc == "", rf.readFrom, "underlying ReadFrom used: got %v", rf.readFrom)
	}
}

type readerFromRecorder struct {
	*httptest.ResponseRecorder
	readFrom bool
}

func (r *readerFromRecorder) ReadFrom(src io.Reader) (int64, error) {
	r.readFrom = true
	return io.Copy(struct{ io.Writer }{r.ResponseRecorder}, src)
}
