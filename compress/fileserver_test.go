package compress

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
)

func testFS(t *testing.T) (fstest.MapFS, []byte) {
	js := []byte(strings.Repeat("function hello() { return 'world'; }\n", 300))
	html := []byte("<!doctype html><title>x</title>" + strings.Repeat("<p>para</p>", 300))
	mt := modTime
	fsys := fstest.MapFS{
		"app.js":                {Data: js, ModTime: mt},
		"app.js.gz":             {Data: encodeWith(t, "gzip", js), ModTime: mt.Add(1)},
		"app.js.br":             {Data: encodeWith(t, "br", js), ModTime: mt.Add(2)},
		"app.js.zst":            {Data: encodeWith(t, "zstd", js), ModTime: mt.Add(3)},
		"style.css":             {Data: []byte(strings.Repeat("body{color:red}\n", 200)), ModTime: mt},
		"blob":                  {Data: html, ModTime: mt},
		"blob.gz":               {Data: encodeWith(t, "gzip", html), ModTime: mt},
		"dir/index.html":        {Data: html, ModTime: mt},
		"dir/index.html.br":     {Data: encodeWith(t, "br", html), ModTime: mt},
		"orphan.txt.gz":         {Data: encodeWith(t, "gzip", html), ModTime: mt},
		"nomtime/page.html":     {Data: html},
		"nomtime/page.html.zst": {Data: encodeWith(t, "zstd", html)},
	}
	return fsys, js
}

func TestFileServer(t *testing.T) {
	fsys, js := testFS(t)
	fs := FileServer(fsys)
	get := func(path string, hdr map[string]string) *http.Response {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		fs.ServeHTTP(rec, req)
		return rec.Result()
	}
	read := func(res *http.Response) []byte {
		var b bytes.Buffer
		b.ReadFrom(res.Body)
		return decodeBody(t, res.Header.Get("Content-Encoding"), b.Bytes())
	}

	t.Run("each encoding", func(t *testing.T) {
		tags := map[string]bool{}
		for _, tc := range []struct{ ae, want string }{
			{"zstd", "zstd"}, {"br", "br"}, {"gzip", "gzip"}, {"x-gzip", "gzip"},
			{"gzip, deflate, br, zstd", "zstd"}, {"gzip, br;q=0.9", "gzip"}, {"", ""}, {"identity", ""}, {"deflate", ""},
		} {
			res := get("/app.js", map[string]string{"Accept-Encoding": tc.ae})
			require.Equal(t, 200, res.StatusCode)
			require.Equal(t, tc.want, res.Header.Get("Content-Encoding"), "ae=%q", tc.ae)
			require.Equal(t, "text/javascript; charset=utf-8", res.Header.Get("Content-Type"))
			require.Equal(t, "Accept-Encoding", res.Header.Get("Vary"))
			require.Equal(t, js, read(res))
			etag := res.Header.Get("Etag")
			require.True(t, strings.HasPrefix(etag, `"`) && strings.HasSuffix(etag, `"`), "strong ETag %q", etag)
			tags[tc.want+" "+etag] = true
			if tc.want == "" {
				require.Equal(t, "bytes", res.Header.Get("Accept-Ranges"))
			} else {
				require.Empty(t, res.Header.Get("Accept-Ranges"))
			}
		}
		// One distinct ETag per representation.
		distinct := map[string]string{}
		for k := range tags {
			enc, tag, _ := strings.Cut(k, " ")
			if prev, ok := distinct[tag]; ok {
				require.Equal(t, prev, enc, "ETag %s shared by two encodings", tag)
			}
			distinct[tag] = enc
		}
		require.Len(t, distinct, 4)
	})

	t.Run("304 for each representation", func(t *testing.T) {
		for _, ae := range []string{"zstd", "br", "gzip", ""} {
			first := get("/app.js", map[string]string{"Accept-Encoding": ae})
			tag := first.Header.Get("Etag")
			res := get("/app.js", map[string]string{"Accept-Encoding": ae, "If-None-Match": tag})
			require.Equal(t, http.StatusNotModified, res.StatusCode, "ae=%q", ae)
			require.Equal(t, tag, res.Header.Get("Etag"))
			require.Equal(t, "Accept-Encoding", res.Header.Get("Vary"))
		}
	})

	t.Run("range only for identity", func(t *testing.T) {
		res := get("/app.js", map[string]string{"Range": "bytes=0-9"})
		require.Equal(t, http.StatusPartialContent, res.StatusCode)
		require.Equal(t, js[:10], read(res))
		res = get("/app.js", map[string]string{"Range": "bytes=0-9", "Accept-Encoding": "gzip"})
		require.Equal(t, http.StatusOK, res.StatusCode)
		require.Equal(t, "gzip", res.Header.Get("Content-Encoding"))
		require.Empty(t, res.Header.Get("Content-Range"))
		require.Equal(t, js, read(res))
	})

	t.Run("HEAD", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodHead, "/app.js", nil)
		req.Header.Set("Accept-Encoding", "br")
		rec := httptest.NewRecorder()
		fs.ServeHTTP(rec, req)
		require.Equal(t, "br", rec.Header().Get("Content-Encoding"))
		require.Equal(t, fmt.Sprint(len(fsys["app.js.br"].Data)), rec.Header().Get("Content-Length"))
		require.Zero(t, rec.Body.Len())
	})

	t.Run("no siblings: no Vary", func(t *testing.T) {
		res := get("/style.css", map[string]string{"Accept-Encoding": "gzip"})
		require.Empty(t, res.Header.Get("Content-Encoding"))
		require.Empty(t, res.Header.Get("Vary"))
		require.Equal(t, "text/css; charset=utf-8", res.Header.Get("Content-Type"))
		require.NotEmpty(t, res.Header.Get("Etag"))
	})

	t.Run("type sniffed from the original", func(t *testing.T) {
		res := get("/blob", map[string]string{"Accept-Encoding": "gzip"})
		require.Equal(t, "gzip", res.Header.Get("Content-Encoding"))
		require.Equal(t, "text/html; charset=utf-8", res.Header.Get("Content-Type"))
	})

	t.Run("index.html sibling", func(t *testing.T) {
		res := get("/dir/", map[string]string{"Accept-Encoding": "br"})
		require.Equal(t, 200, res.StatusCode)
		require.Equal(t, "br", res.Header.Get("Content-Encoding"))
		require.Equal(t, "text/html; charset=utf-8", res.Header.Get("Content-Type"))
		require.Equal(t, fsys["dir/index.html"].Data, read(res))
		res = get("/dir", nil)
		require.Equal(t, http.StatusMovedPermanently, res.StatusCode)
	})

	t.Run("sibling without original is not served for the original name", func(t *testing.T) {
		res := get("/orphan.txt", map[string]string{"Accept-Encoding": "gzip"})
		require.Equal(t, http.StatusNotFound, res.StatusCode)
		require.Empty(t, res.Header.Get("Content-Encoding"))
	})

	t.Run("no modtime: content hash ETag", func(t *testing.T) {
		a := get("/nomtime/page.html", map[string]string{"Accept-Encoding": "zstd"})
		b := get("/nomtime/page.html", nil)
		require.Equal(t, "zstd", a.Header.Get("Content-Encoding"))
		require.NotEmpty(t, a.Header.Get("Etag"))
		require.NotEqual(t, a.Header.Get("Etag"), b.Header.Get("Etag"))
		res := get("/nomtime/page.html", map[string]string{"Accept-Encoding": "zstd", "If-None-Match": a.Header.Get("Etag")})
		require.Equal(t, http.StatusNotModified, res.StatusCode)
	})

	t.Run("missing file", func(t *testing.T) {
		res := get("/nope.js", map[string]string{"Accept-Encoding": "gzip"})
		require.Equal(t, http.StatusNotFound, res.StatusCode)
		require.Empty(t, res.Header.Get("Content-Encoding"))
	})

	t.Run("If-Match mismatch on encoded file is 412 without Content-Encoding", func(t *testing.T) {
		res := get("/app.js", map[string]string{"Accept-Encoding": "gzip", "If-Match": `"nope"`})
		require.Equal(t, http.StatusPreconditionFailed, res.StatusCode)
		require.Empty(t, res.Header.Get("Content-Encoding"))
	})
}

// TestFileServerDirFS serves from the OS file system, behind Middleware,
// which compresses on the fly the files that have no sibling.
func TestFileServerDirFS(t *testing.T) {
	dir := t.TempDir()
	js := []byte(strings.Repeat("let x = 1;\n", 500))
	css := []byte(strings.Repeat("a{b:c}\n", 500))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.js"), js, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.js.br"), encodeWith(t, "br", js), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "b.css"), css, 0o644))
	h := mustMiddleware(t)(FileServer(os.DirFS(dir)))

	rec := serveURL(t, h, "/a.js", "br, gzip")
	require.Equal(t, "br", rec.Header().Get("Content-Encoding"))
	require.Equal(t, []string{"Accept-Encoding"}, rec.Header().Values("Vary"))
	require.Equal(t, js, decodeBody(t, "br", rec.Body.Bytes()))
	require.Equal(t, fmt.Sprint(rec.Body.Len()), rec.Header().Get("Content-Length"), "pre-compressed length kept")

	rec = serveURL(t, h, "/a.js", "gzip")
	require.Equal(t, "gzip", rec.Header().Get("Content-Encoding"), "compressed on the fly when no gzip sibling")
	require.Equal(t, js, decodeBody(t, "gzip", rec.Body.Bytes()))

	rec = serveURL(t, h, "/b.css", "zstd")
	require.Equal(t, "zstd", rec.Header().Get("Content-Encoding"))
	require.Equal(t, css, decodeBody(t, "zstd", rec.Body.Bytes()))
	tag := rec.Header().Get("Etag")
	require.True(t, strings.HasSuffix(tag, `-zstd"`), "got ETag %s", tag)
	req := httptest.NewRequest(http.MethodGet, "/b.css", nil)
	req.Header.Set("Accept-Encoding", "zstd")
	req.Header.Set("If-None-Match", tag)
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, req)
	require.Equal(t, http.StatusNotModified, rr.Code)
}

func serveURL(t *testing.T, h http.Handler, path, ae string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Header.Set("Accept-Encoding", ae)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}
