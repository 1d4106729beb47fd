package compress

import (
	"bytes"
	stdgzip "compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
)

// decoderFor returns a reader decoding body per Content-Encoding, using the
// reference decoders: the standard library's gzip, klauspost's zstd and
// andybalholm's brotli.
func decoderFor(t testing.TB, ce string, body io.Reader) io.Reader {
	t.Helper()
	switch ce {
	case "", "identity":
		return body
	case "gzip":
		r, err := stdgzip.NewReader(body)
		require.NoError(t, err)
		return r
	case "zstd":
		r, err := zstd.NewReader(body, zstd.WithDecoderConcurrency(1))
		require.NoError(t, err)
		t.Cleanup(r.Close)
		return r
	case "br":
		return brotli.NewReader(body)
	}
	t.Fatalf("unexpected Content-Encoding %q", ce)
	return nil
}

// decodeBody decodes a whole response body per its Content-Encoding.
func decodeBody(t testing.TB, ce string, body []byte) []byte {
	t.Helper()
	out, err := io.ReadAll(decoderFor(t, ce, bytes.NewReader(body)))
	require.NoError(t, err)
	return out
}

// serve runs h on a request built from method, target and header lines.
func serve(t testing.TB, h http.Handler, method string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, "/file.txt", nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func mustMiddleware(t testing.TB, opts ...Option) func(http.Handler) http.Handler {
	t.Helper()
	mw, err := Middleware(opts...)
	require.NoError(t, err)
	return mw
}
