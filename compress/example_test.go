package compress_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing/fstest"

	"github.com/outrigger-dev/outrigger/compress"
)

func ExampleMiddleware() {
	mw, err := compress.Middleware(
		compress.Encodings(compress.Zstd, compress.Brotli, compress.Gzip),
		compress.Level(compress.Gzip, 6),
		compress.MinSize(512),
		compress.ExceptContentTypes("application/x-custom-packed"),
	)
	if err != nil {
		log.Fatal(err)
	}
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"items":[`+strings.Repeat(`{"id":1,"ok":true},`, 100)+`{}]}`)
	})
	srv := httptest.NewServer(mw(api))
	defer srv.Close()

	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer res.Body.Close()
	zr, err := gzip.NewReader(res.Body)
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(zr)
	fmt.Println(res.Header.Get("Content-Encoding"), res.Header.Get("Vary"), len(body))
	// Output: gzip Accept-Encoding 1914
}

func ExampleNegotiate() {
	offers := []compress.Encoding{compress.Zstd, compress.Brotli, compress.Gzip}
	fmt.Println(compress.Negotiate("gzip, deflate, br, zstd", offers...))
	fmt.Println(compress.Negotiate("gzip;q=1, br;q=0.5", offers...))
	fmt.Println(compress.Negotiate("*, zstd;q=0", offers...))
	fmt.Println(compress.Negotiate("deflate", offers...))
	// Output:
	// zstd
	// gzip
	// br
	// identity
}

func ExampleDecompressRequests() {
	dec, err := compress.DecompressRequests(10 << 20) // at most 10 MiB decoded
	if err != nil {
		log.Fatal(err)
	}
	h := dec(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return // the middleware answers 413 or 400
		}
		fmt.Fprintf(w, "got %d bytes", len(b))
	}))

	var body bytes.Buffer
	zw := gzip.NewWriter(&body)
	zw.Write(bytes.Repeat([]byte("a"), 100000))
	zw.Close()
	req := httptest.NewRequest(http.MethodPost, "/upload", &body)
	req.Header.Set("Content-Encoding", "gzip")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	fmt.Println(rec.Code, rec.Body.String())
	// Output: 200 got 100000 bytes
}

func ExampleFileServer() {
	js := strings.Repeat("console.log('hi');\n", 100)
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write([]byte(js))
	zw.Close()
	// In production: os.DirFS("static") or an embed.FS holding app.js and
	// the app.js.gz / app.js.br / app.js.zst built next to it.
	static := fstest.MapFS{
		"app.js":    {Data: []byte(js)},
		"app.js.gz": {Data: gz.Bytes()},
	}
	fs := compress.FileServer(static)

	req := httptest.NewRequest(http.MethodGet, "/app.js", nil)
	req.Header.Set("Accept-Encoding", "gzip, br")
	rec := httptest.NewRecorder()
	fs.ServeHTTP(rec, req)
	fmt.Println(rec.Header().Get("Content-Encoding"), rec.Header().Get("Content-Type"), rec.Header().Get("Vary"))
	// Output: gzip text/javascript; charset=utf-8 Accept-Encoding
}
