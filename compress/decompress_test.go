package compress

import (
	"bytes"
	stdgzip "compress/gzip"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
)

func encodeWith(t testing.TB, enc string, in []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch enc {
	case "gzip", "x-gzip":
		w := stdgzip.NewWriter(&buf)
		w.Write(in)
		require.NoError(t, w.Close())
	case "zstd":
		w, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
		require.NoError(t, err)
		w.Write(in)
		require.NoError(t, w.Close())
	case "br":
		w := brotli.NewWriter(&buf)
		w.Write(in)
		require.NoError(t, w.Close())
	default:
		t.Fatalf("unknown encoding %q", enc)
	}
	return buf.Bytes()
}

// echoHandler answers 200 with the body it read, or 400 with the read error.
func echoHandler(t testing.TB) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ce := r.Header.Get("Content-Encoding"); ce != "" {
			t.Errorf("handler saw Content-Encoding %q", ce)
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "handler: "+err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Content-Length", r.Header.Get("Content-Length"))
		w.Write(b)
	})
}

func TestDecompressRequests(t *testing.T) {
	payload := testJSON(32 << 10)
	mw, err := DecompressRequests(1 << 20)
	require.NoError(t, err)
	h := mw(echoHandler(t))

	for _, tc := range []struct {
		name   string
		ce     []string
		body   []byte
		status int
		want   []byte
	}{
		{"plain", nil, payload, 200, payload},
		{"gzip", []string{"gzip"}, encodeWith(t, "gzip", payload), 200, payload},
		{"x-gzip", []string{"x-gzip"}, encodeWith(t, "gzip", payload), 200, payload},
		{"GZIP case", []string{"GZIP"}, encodeWith(t, "gzip", payload), 200, payload},
		{"zstd", []string{"zstd"}, encodeWith(t, "zstd", payload), 200, payload},
		{"br", []string{"br"}, encodeWith(t, "br", payload), 200, payload},
		{"identity", []string{"identity"}, payload, 200, payload},
		{"stacked gzip then br", []string{"gzip, br"}, encodeWith(t, "br", encodeWith(t, "gzip", payload)), 200, payload},
		{"stacked over two lines", []string{"zstd", "gzip"}, encodeWith(t, "gzip", encodeWith(t, "zstd", payload)), 200, payload},
		{"unknown coding 415", []string{"deflate"}, payload, 415, nil},
		{"unknown in stack 415", []string{"gzip, compress"}, payload, 415, nil},
		{"corrupt gzip header 400", []string{"gzip"}, []byte("not gzip at all"), 400, nil},
		{"corrupt zstd 400", []string{"zstd"}, []byte("not zstd at all, not at all"), 400, nil},
		{"corrupt br 400", []string{"br"}, []byte("not brotli \xff\xff\xff\xff at all"), 400, nil},
		{"truncated gzip 400", []string{"gzip"}, encodeWith(t, "gzip", payload)[:200], 400, nil},
		{"truncated zstd 400", []string{"zstd"}, encodeWith(t, "zstd", payload)[:200], 400, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(tc.body))
			for _, v := range tc.ce {
				req.Header.Add("Content-Encoding", v)
			}
			before := req.Header.Clone()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, tc.status, rec.Code, "body: %s", rec.Body.String())
			require.Equal(t, before, req.Header, "incoming request modified")
			if tc.status == 415 {
				require.Equal(t, acceptedRequestEncodings, rec.Header().Get("Accept-Encoding"))
			}
			if tc.want != nil {
				require.True(t, bytes.Equal(tc.want, rec.Body.Bytes()), "echoed body differs")
				if len(tc.ce) > 0 && tc.ce[0] != "identity" {
					require.Empty(t, rec.Header().Get("X-Content-Length"))
				}
			}
		})
	}
}

// TestDecompressBomb sends a tiny body that decodes to 8 MiB.
func TestDecompressBomb(t *testing.T) {
	bombIn := make([]byte, 8<<20)
	for _, enc := range []string{"gzip", "zstd", "br"} {
		t.Run("enc="+enc, func(t *testing.T) {
			bomb := encodeWith(t, enc, bombIn)
			require.Less(t, len(bomb), 1<<20)
			var handlerErr error
			mw, err := DecompressRequests(1 << 20)
			require.NoError(t, err)
			h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, handlerErr = io.Copy(io.Discard, r.Body)
				// A careless handler that answers 200 anyway.
				w.Write([]byte("ok"))
			}))
			req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(bomb))
			req.Header.Set("Content-Encoding", enc)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			require.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
			require.ErrorIs(t, handlerErr, ErrTooLarge)
			var mbe *http.MaxBytesError
			require.True(t, errors.As(handlerErr, &mbe))
			require.EqualValues(t, 1<<20, mbe.Limit)
		})
	}
}

func TestDecompressExactLimit(t *testing.T) {
	payload := testJSON(10000)
	for _, limit := range []int64{int64(len(payload)), int64(len(payload)) - 1} {
		mw, err := DecompressRequests(limit)
		require.NoError(t, err)
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(encodeWith(t, "gzip", payload)))
		req.Header.Set("Content-Encoding", "gzip")
		rec := httptest.NewRecorder()
		mw(echoHandler(t)).ServeHTTP(rec, req)
		if limit == int64(len(payload)) {
			require.Equal(t, 200, rec.Code)
		} else {
			require.Equal(t, 413, rec.Code)
		}
	}
}

func TestDecompressRequestsErrors(t *testing.T) {
	for _, n := range []int64{0, -1} {
		mw, err := DecompressRequests(n)
		require.Nil(t, mw)
		require.ErrorIs(t, err, ErrBadOption)
		require.ErrorContains(t, err, "maxBytes must be > 0")
	}
}

// TestDecompressHandlerAlreadyResponded: once the handler's status is out,
// the middleware does not interfere.
func TestDecompressHandlerAlreadyResponded(t *testing.T) {
	mw, err := DecompressRequests(100)
	require.NoError(t, err)
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		_, err := io.ReadAll(r.Body)
		require.ErrorIs(t, err, ErrTooLarge)
	}))
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(encodeWith(t, "zstd", make([]byte, 1000))))
	req.Header.Set("Content-Encoding", "zstd")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	require.Equal(t, http.StatusAccepted, rec.Code)
}

func FuzzDecompressRequest(f *testing.F) {
	payload := []byte(strings.Repeat("fuzz me ", 100))
	for _, enc := range []string{"gzip", "zstd", "br"} {
		var buf bytes.Buffer
		switch enc {
		case "gzip":
			w := stdgzip.NewWriter(&buf)
			w.Write(payload)
			w.Close()
		case "zstd":
			w, _ := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
			w.Write(payload)
			w.Close()
		case "br":
			w := brotli.NewWriter(&buf)
			w.Write(payload)
			w.Close()
		}
		f.Add(enc, buf.Bytes())
	}
	f.Add("gzip, br", []byte{0x1f, 0x8b})
	f.Add("identity", []byte("plain"))
	mw, err := DecompressRequests(4096)
	if err != nil {
		f.Fatal(err)
	}
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			if !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrCorrupt) {
				t := "unexpected body error: " + err.Error()
				http.Error(w, t, http.StatusTeapot)
			}
			return
		}
		if len(b) > 4096 {
			http.Error(w, "limit not enforced", http.StatusTeapot)
			return
		}
		w.Write(b)
	}))
	f.Fuzz(func(t *testing.T, ce string, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		req.Header.Set("Content-Encoding", ce)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case 200, 400, 413, 415:
		default:
			t.Fatalf("Content-Encoding %q: got status %d: %s", ce, rec.Code, rec.Body.String())
		}
	})
}
