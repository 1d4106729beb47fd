package compress

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// maxStackedCodings bounds how many codings a request body may stack.
const maxStackedCodings = 4

// acceptedRequestEncodings is sent with 415 answers (RFC 9110 §12.5.3,
// RFC 7694).
const acceptedRequestEncodings = "zstd, br, gzip"

// DecompressRequests returns middleware that decodes request bodies sent with
// Content-Encoding gzip (or x-gzip), zstd or br, stacked codings included. The
// handler sees the decoded body on a copy of the request, without
// Content-Encoding and Content-Length (ContentLength is -1); the incoming
// request is not modified.
//
// maxBytes bounds the decoded size, so a small compressed "zip bomb" cannot
// exhaust memory: past it, reads fail with an error matching ErrTooLarge and
// *http.MaxBytesError, and unless the handler already sent its status the
// response becomes 413 Request Entity Too Large. A malformed compressed body
// likewise fails reads with ErrCorrupt and becomes 400 Bad Request. A request
// with an unsupported coding gets 415 Unsupported Media Type with an
// Accept-Encoding header listing the supported ones, without calling the
// handler. maxBytes must be > 0.
func DecompressRequests(maxBytes int64) (func(http.Handler) http.Handler, error) {
	if maxBytes <= 0 {
		return nil, fmt.Errorf("%w: DecompressRequests maxBytes must be > 0, got %d", ErrBadOption, maxBytes)
	}
	d := &decompressor{max: maxBytes}
	d.zstd.New = func() any {
		dec, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(uint64(maxBytes)),
			zstd.WithDecoderMaxWindow(uint64(max(min(maxBytes, 8<<20), zstd.MinWindowSize))),
		)
		if err != nil {
			panic("compress: zstd decoder: " + err.Error()) // options are valid
		}
		return dec
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d.serve(w, r, next)
		})
	}, nil
}

type decompressor struct {
	max  int64
	zstd sync.Pool // *zstd.Decoder, streaming, concurrency 1
}

// errTooLarge is returned by reads past maxBytes: it matches ErrTooLarge and
// *http.MaxBytesError.
type errTooLarge struct{ mbe *http.MaxBytesError }

func (e errTooLarge) Error() string {
	return "compress: decoded request body exceeds " + strconv.FormatInt(e.mbe.Limit, 10) + " bytes"
}
func (e errTooLarge) Unwrap() []error { return []error{ErrTooLarge, e.mbe} }

func (d *decompressor) serve(w http.ResponseWriter, r *http.Request, next http.Handler) {
	ce := r.Header["Content-Encoding"]
	if len(ce) == 0 {
		next.ServeHTTP(w, r)
		return
	}
	var codings [maxStackedCodings]Encoding
	n := 0
	for _, line := range ce {
		for _, tok := range strings.Split(line, ",") {
			tok = trimOWS(tok)
			if tok == "" || equalFold(tok, "identity") {
				continue
			}
			i := encodingIndexToken(tok)
			if i < 0 || n == maxStackedCodings {
				w.Header().Set("Accept-Encoding", acceptedRequestEncodings)
				http.Error(w, fmt.Sprintf("unsupported Content-Encoding %q", tok), http.StatusUnsupportedMediaType)
				return
			}
			codings[n] = [...]Encoding{Zstd, Brotli, Gzip}[i]
			n++
		}
	}
	r2 := new(http.Request)
	*r2 = *r
	r2.Header = r.Header.Clone()
	delete(r2.Header, "Content-Encoding")
	delete(r2.Header, "Content-Length")
	if r.Body == nil || r.Body == http.NoBody || n == 0 {
		if n > 0 {
			r2.ContentLength = 0
		}
		next.ServeHTTP(w, r2)
		return
	}
	r2.ContentLength = -1

	dw := &decodeWriter{w: w}
	body := &decodedBody{orig: r.Body, d: d, dw: dw, remaining: d.max}
	body.raw = rawReader{r: r.Body}
	var src io.Reader = &body.raw
	var err error
	for i := n - 1; i >= 0 && err == nil; i-- { // the last coding applied is decoded first
		src, err = body.push(codings[i], src)
	}
	body.src = src
	defer body.release()
	if err != nil {
		body.fail(err)
		dw.finish()
		return
	}
	r2.Body = body
	next.ServeHTTP(dw, r2)
	dw.finish()
}

// decodedBody is the request body the handler reads: a chain of decoders
// under a limit.
type decodedBody struct {
	orig      io.ReadCloser
	raw       rawReader // the compressed body, remembering its own error
	src       io.Reader
	d         *decompressor
	dw        *decodeWriter
	remaining int64
	err       error

	gz  []*gzip.Reader
	zs  []*zstd.Decoder
	brs []*brotli.Reader
}

var (
	gzipReqPool   sync.Pool // *gzip.Reader
	brotliReqPool = sync.Pool{New: func() any { return brotli.NewReader(nil) }}
)

// push stacks a decoder for enc over src.
func (b *decodedBody) push(enc Encoding, src io.Reader) (io.Reader, error) {
	switch enc {
	case Gzip:
		zr, _ := gzipReqPool.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(src)
		} else {
			err = zr.Reset(src)
		}
		if err != nil {
			if zr != nil {
				gzipReqPool.Put(zr)
			}
			return nil, corrupt("gzip", err)
		}
		b.gz = append(b.gz, zr)
		return zr, nil
	case Zstd:
		zd := b.d.zstd.Get().(*zstd.Decoder)
		if err := zd.Reset(src); err != nil {
			b.d.zstd.Put(zd)
			return nil, corrupt("zstd", err)
		}
		b.zs = append(b.zs, zd)
		return zd, nil
	default:
		br := brotliReqPool.Get().(*brotli.Reader)
		if err := br.Reset(src); err != nil {
			brotliReqPool.Put(br)
			return nil, corrupt("br", err)
		}
		b.brs = append(b.brs, br)
		return br, nil
	}
}

func corrupt(name string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %s request body: truncated", ErrCorrupt, name)
	}
	if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		return err
	}
	return fmt.Errorf("%w: %s request body: %v", ErrCorrupt, name, err)
}

// Read implements io.Reader, enforcing the decoded-size limit.
func (b *decodedBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if int64(len(p)) > b.remaining+1 {
		p = p[:b.remaining+1]
	}
	n, err := b.src.Read(p)
	if int64(n) > b.remaining {
		n = int(b.remaining)
		b.remaining = 0
		return n, b.fail(errTooLarge{&http.MaxBytesError{Limit: b.d.max}})
	}
	b.remaining -= int64(n)
	if err != nil && err != io.EOF {
		return n, b.fail(err)
	}
	return n, err
}

// fail records a body error and arranges the matching error response:
// 413 past the limit (ours or an outer http.MaxBytesReader's), 400 for a
// malformed encoding. Transport errors of the raw body are passed through for
// the handler to judge.
func (b *decodedBody) fail(err error) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, ErrTooLarge), errors.Is(err, zstd.ErrWindowSizeExceeded), errors.Is(err, zstd.ErrDecoderSizeExceeded):
		if !errors.Is(err, ErrTooLarge) {
			err = errTooLarge{&http.MaxBytesError{Limit: b.d.max}}
		}
		b.dw.fail(http.StatusRequestEntityTooLarge, "request body too large")
	case errors.As(err, &mbe):
		b.dw.fail(http.StatusRequestEntityTooLarge, "request body too large")
	case b.raw.err != nil && errors.Is(err, b.raw.err) && b.raw.err != io.EOF:
		// transport error: the handler decides
	default:
		if !errors.Is(err, ErrCorrupt) {
			err = fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		b.dw.fail(http.StatusBadRequest, "malformed compressed request body")
	}
	b.err = err
	return err
}

// rawReader reads the compressed body and remembers its error, to tell
// transport errors from decoding errors.
type rawReader struct {
	r   io.Reader
	err error
}

func (r *rawReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && r.err == nil {
		r.err = err
	}
	return n, err
}

// Close implements io.Closer by closing the raw body.
func (b *decodedBody) Close() error { return b.orig.Close() }

// release returns the decoders to their pools.
func (b *decodedBody) release() {
	for _, zr := range b.gz {
		gzipReqPool.Put(zr)
	}
	for _, zd := range b.zs {
		zd.Reset(nil) //nolint:errcheck // nil input only marks it idle
		b.d.zstd.Put(zd)
	}
	for _, br := range b.brs {
		br.Reset(nil) //nolint:errcheck // drops the reference
		brotliReqPool.Put(br)
	}
	b.gz, b.zs, b.brs, b.src = nil, nil, nil, nil
}

// decodeWriter replaces the handler's response with an error status when
// the request body failed to decode, as long as nothing was sent yet.
type decodeWriter struct {
	w       http.ResponseWriter
	sent    bool // the handler's status went out
	failed  int  // error status to send instead, 0 = none
	msg     string
	errSent bool
}

func (dw *decodeWriter) fail(code int, msg string) {
	if dw.failed == 0 {
		dw.failed, dw.msg = code, msg
	}
}

// sendError writes the error response once, if the handler's status did not
// go out yet. It reports whether the handler's output must be discarded.
func (dw *decodeWriter) sendError() bool {
	if dw.failed == 0 || dw.sent {
		return false
	}
	if !dw.errSent {
		dw.errSent = true
		h := dw.w.Header()
		for _, k := range []string{"Content-Encoding", "Content-Length", "Etag", "Last-Modified", "Content-Range"} {
			delete(h, k)
		}
		h.Set("Connection", "close")
		http.Error(dw.w, dw.msg, dw.failed)
	}
	return true
}

func (dw *decodeWriter) Header() http.Header { return dw.w.Header() }

func (dw *decodeWriter) WriteHeader(code int) {
	if dw.sendError() {
		return
	}
	if code >= 200 {
		dw.sent = true
	}
	dw.w.WriteHeader(code)
}

func (dw *decodeWriter) Write(p []byte) (int, error) {
	if dw.sendError() {
		return len(p), nil
	}
	dw.sent = true
	return dw.w.Write(p)
}

// Flush implements http.Flusher.
func (dw *decodeWriter) Flush() { _ = dw.FlushError() }

// FlushError flushes the underlying writer, via http.ResponseController.
func (dw *decodeWriter) FlushError() error {
	if !dw.sendError() {
		dw.sent = true
	}
	return http.NewResponseController(dw.w).Flush()
}

// Hijack implements http.Hijacker through http.ResponseController.
func (dw *decodeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	dw.sent = true
	return http.NewResponseController(dw.w).Hijack()
}

// Unwrap returns the underlying ResponseWriter.
func (dw *decodeWriter) Unwrap() http.ResponseWriter { return dw.w }

// finish sends the error response if the handler wrote nothing.
func (dw *decodeWriter) finish() { dw.sendError() }
