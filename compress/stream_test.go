package compress

import (
	"bufio"
	stdgzip "compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
)

// TestSSEFlushesArriveCompressedInOrder streams Server-Sent Events through a
// real server. Each event is only sent after the client decoded the previous
// one, so the test fails if a flush does not push compressed bytes out.
func TestSSEFlushesArriveCompressedInOrder(t *testing.T) {
	for _, enc := range []string{"gzip", "br", "zstd"} {
		t.Run("enc="+enc, func(t *testing.T) {
			const events = 5
			ack := make(chan struct{})
			h := mustMiddleware(t)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				w.Header().Set("Cache-Control", "no-cache")
				rc := http.NewResponseController(w)
				for i := range events {
					fmt.Fprintf(w, "id: %d\ndata: event number %d\n\n", i, i)
					if err := rc.Flush(); err != nil {
						t.Errorf("Flush: %v", err)
						return
					}
					select {
					case <-ack:
					case <-r.Context().Done():
						return
					case <-time.After(30 * time.Second):
						t.Errorf("event %d: client never acknowledged: flush did not reach it", i)
						return
					}
				}
			}))
			srv := httptest.NewServer(h)
			defer srv.Close()

			req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
			require.NoError(t, err)
			req.Header.Set("Accept-Encoding", enc) // set explicitly: Transport does not decode
			res, err := srv.Client().Do(req)
			require.NoError(t, err)
			defer res.Body.Close()
			require.Equal(t, enc, res.Header.Get("Content-Encoding"))
			require.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
			lines := bufio.NewReader(decoderFor(t, enc, res.Body))
			for i := range events {
				var ev []string
				for {
					line, err := lines.ReadString('\n')
					require.NoError(t, err, "event %d", i)
					if line == "\n" {
						break
					}
					ev = append(ev, strings.TrimSuffix(line, "\n"))
				}
				require.Equal(t, []string{fmt.Sprintf("id: %d", i), fmt.Sprintf("data: event number %d", i)}, ev)
				ack <- struct{}{}
			}
			rest, err := io.ReadAll(lines)
			require.NoError(t, err)
			require.Empty(t, rest)
		})
	}
}

// TestHijackPassesThrough hijacks the connection from behind the middleware.
func TestHijackPassesThrough(t *testing.T) {
	h := mustMiddleware(t)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
		brw.Flush()
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	res, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, "hijacked", string(b))

	// The Hijacker interface directly, too.
	h2 := mustMiddleware(t)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		io.WriteString(conn, "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
		conn.Close()
	}))
	srv2 := httptest.NewServer(h2)
	defer srv2.Close()
	res2, err := srv2.Client().Get(srv2.URL)
	require.NoError(t, err)
	res2.Body.Close()
	require.Equal(t, http.StatusNoContent, res2.StatusCode)
}

// TestResponseControllerPassesThrough uses deadlines through Unwrap.
func TestResponseControllerPassesThrough(t *testing.T) {
	errs := make(chan error, 3)
	h := mustMiddleware(t)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		errs <- rc.SetWriteDeadline(time.Now().Add(time.Minute))
		errs <- rc.SetReadDeadline(time.Now().Add(time.Minute))
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte(strings.Repeat("x", 4096)))
		errs <- rc.Flush()
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	res, err := srv.Client().Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(decoderFor(t, res.Header.Get("Content-Encoding"), res.Body))
	res.Body.Close()
	require.Equal(t, 4096, len(b))
	for range 3 {
		require.NoError(t, <-errs)
	}
}

// TestInformationalPassesThrough sends 103 Early Hints before a compressed
// response.
func TestInformationalPassesThrough(t *testing.T) {
	h := mustMiddleware(t)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(strings.Repeat("<p>hello</p>", 500)))
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	var got []int
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, _ textproto.MIMEHeader) error {
		got = append(got, code)
		return nil
	}}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, srv.URL, nil)
	req.Header.Set("Accept-Encoding", "br")
	res, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, []int{http.StatusEarlyHints}, got)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "br", res.Header.Get("Content-Encoding"))
	b, err := io.ReadAll(decoderFor(t, "br", res.Body))
	require.NoError(t, err)
	require.Equal(t, 500*len("<p>hello</p>"), len(b))
}

// TestConcurrentRequests sends many simultaneous requests of every encoding
// and size through one middleware on a real server: pooled writers must
// never mix responses.
func TestConcurrentRequests(t *testing.T) {
	bodies := [][]byte{testJSON(100), testJSON(3000), testJSON(40 << 10)}
	h := mustMiddleware(t)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(r.URL.Query().Get("i")[0] - '0')
		w.Header().Set("Content-Type", "application/json")
		b := bodies[i]
		for len(b) > 0 { // several writes, with a flush in the middle for some
			n := min(len(b), 700)
			w.Write(b[:n])
			b = b[n:]
			if r.URL.Query().Get("flush") != "" && len(b) > 0 && len(b) < 1400 {
				w.(http.Flusher).Flush()
			}
		}
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	encs := []string{"gzip", "br", "zstd", "identity"}
	errs := make(chan error, 96)
	for k := range 96 {
		go func() {
			i, enc := k%3, encs[(k/3)%4]
			url := fmt.Sprintf("%s/?i=%d", srv.URL, i)
			if k%2 == 0 {
				url += "&flush=1"
			}
			req, _ := http.NewRequest(http.MethodGet, url, nil)
			req.Header.Set("Accept-Encoding", enc)
			res, err := srv.Client().Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer res.Body.Close()
			var r io.Reader = res.Body
			switch ce := res.Header.Get("Content-Encoding"); ce {
			case "gzip":
				if r, err = stdgzip.NewReader(res.Body); err != nil {
					errs <- err
					return
				}
			case "br":
				r = brotli.NewReader(res.Body)
			case "zstd":
				zr, err := zstd.NewReader(res.Body, zstd.WithDecoderConcurrency(1))
				if err != nil {
					errs <- err
					return
				}
				defer zr.Close()
				r = zr
			}
			got, err := io.ReadAll(r)
			if err == nil && string(got) != string(bodies[i]) {
				err = fmt.Errorf("request %d (enc=%s, i=%d): body differs: got %d bytes, want %d", k, enc, i, len(got), len(bodies[i]))
			}
			errs <- err
		}()
	}
	for range 96 {
		require.NoError(t, <-errs)
	}
}
