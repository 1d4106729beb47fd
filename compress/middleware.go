package compress

import (
	"fmt"
	"math/bits"
	"net/http"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Middleware returns HTTP middleware that compresses response bodies with the
// best encoding the client accepts (see Negotiate). Without options it
// offers zstd, brotli and gzip in that order, compresses bodies of at least
// DefaultMinSize bytes except already-compressed media types, and uses 128
// KiB zstd and brotli windows. It returns an error naming the first invalid
// option.
//
// A response is sent unencoded when it is smaller than MinSize (known from
// Content-Length or by buffering up to MinSize bytes), when its type is not
// compressible, when the handler already set Content-Encoding or
// Content-Range, for 1xx, 204, 206 and 304 responses, and when the handler set
// Cache-Control: no-transform. A HEAD request gets the headers a GET would
// (decided from Content-Length or from the body the handler writes, which
// net/http discards). A compressed response gets Vary: Accept-Encoding
// (merged with the handler's Vary), a distinct ETag (see WeakETags), no
// Content-Length and no Accept-Ranges; If-None-Match and If-Match are
// translated back on a copy of the request, so http.ServeContent still answers
// 304. The incoming *http.Request is never modified.
//
// The wrapped ResponseWriter implements http.Flusher (flushing the
// compressor, so Server-Sent Events and other streams arrive promptly; a
// text/event-stream response is never held back for MinSize), http.Hijacker,
// and Unwrap for http.ResponseController. Writers and encoders are pooled per
// level; a gzip response costs no allocation in the steady state.
//
// The middleware and the handlers it returns are safe for concurrent use.
func Middleware(opts ...Option) (func(http.Handler) http.Handler, error) {
	c := defaultConfig()
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(c); err != nil {
			return nil, err
		}
	}
	m := newMiddleware(c)
	return func(next http.Handler) http.Handler {
		return &handler{m: m, next: next}
	}, nil
}

// middleware holds a validated config and its writer pools.
type middleware struct {
	c      *config
	offers []Encoding // c.encs, minus brotli when padding is on
	gz     *sync.Pool // *gzip.Writer at the gzip level
	br     *sync.Pool // *brotli.Writer at the brotli level
	zs     *sync.Pool // *zstd.Encoder, concurrency 1, small window
}

func newMiddleware(c *config) *middleware {
	m := &middleware{c: c}
	for _, e := range c.encs {
		if e == Brotli && c.pad > 0 {
			continue
		}
		m.offers = append(m.offers, e)
	}
	gzLevel, brLevel, zsLevel, window := c.levels[Gzip.index()], c.levels[Brotli.index()], c.levels[Zstd.index()], c.zstdWindow
	m.gz = &sync.Pool{New: func() any {
		w, _ := gzip.NewWriterLevel(nil, gzLevel) // level validated
		return w
	}}
	lgwin := bits.Len(uint(c.brWindow)) - 1
	m.br = &sync.Pool{New: func() any {
		return brotli.NewWriterOptions(nil, brotli.WriterOptions{Quality: brLevel, LGWin: lgwin})
	}}
	m.zs = &sync.Pool{New: func() any {
		w, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.EncoderLevel(zsLevel)),
			zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(window),
			zstd.WithLowerEncoderMem(true),
		)
		if err != nil {
			panic(fmt.Sprintf("compress: zstd encoder: %v", err)) // options validated
		}
		return w
	}}
	return m
}

// handler is the http.Handler returned by the middleware.
type handler struct {
	m    *middleware
	next http.Handler
}

var rwPool = sync.Pool{New: func() any { return new(responseWriter) }}

// ServeHTTP implements http.Handler.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m := h.m
	enc := Identity
	if ae := r.Header["Accept-Encoding"]; len(ae) > 0 {
		if len(ae) == 1 {
			enc = Negotiate(ae[0], m.offers...)
		} else {
			enc = negotiateLines(ae, m.offers)
		}
	}
	r, etagEnc := translateRequest(r, m.c.weakETags)

	rw := rwPool.Get().(*responseWriter)
	rw.reset(w, m, enc, etagEnc, r.Method == http.MethodHead)
	finished := false
	defer func() {
		if finished {
			rw.finish()
		} else {
			rw.abort() // the handler panicked: release resources, write nothing
		}
		rw.release()
		rwPool.Put(rw)
	}()
	h.next.ServeHTTP(rw, r)
	finished = true
}

// negotiateLines negotiates over several Accept-Encoding field lines, which
// are equivalent to one comma-joined line.
func negotiateLines(lines []string, offers []Encoding) Encoding {
	n := 0
	for _, l := range lines {
		n += len(l) + 1
	}
	buf := make([]byte, 0, n)
	for i, l := range lines {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, l...)
	}
	return Negotiate(string(buf), offers...)
}
