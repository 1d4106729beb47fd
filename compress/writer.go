package compress

import (
	"bufio"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Decision states of a responseWriter.
const (
	stateUndecided = iota // buffering until the response can be judged
	statePlain            // passing through unencoded
	stateCompress         // encoding into the compressor
	stateHijacked         // the connection was hijacked
)

// sniffLen is how much net/http looks at to detect a Content-Type.
const sniffLen = 512

// maxPooledBuf caps the buffer kept with a pooled responseWriter.
const maxPooledBuf = 64 << 10

// Shared header values, capacity-capped so that Add and append copy them.
var (
	ceZstd   = []string{"zstd"}
	ceBrotli = []string{"br"}
	ceGzip   = []string{"gzip"}
)

// responseWriter is the http.ResponseWriter handed to the wrapped handler.
// It is used by one handler goroutine at a time, like any ResponseWriter.
type responseWriter struct {
	w       http.ResponseWriter
	m       *middleware
	enc     Encoding // negotiated encoding; Identity: never compress, only add Vary
	etagEnc Encoding // encoding named by the client's If-None-Match tag
	head    bool     // HEAD request: decide headers as for GET, write no body
	state   int
	code    int  // status held back while undecided; 0 = none yet
	sent    bool // WriteHeader called on w for the final status
	buf     []byte
	in, out int64 // body bytes the handler wrote, and the compressor's output

	gz *gzip.Writer
	br *brotli.Writer
	zs *zstd.Encoder
}

var (
	_ http.ResponseWriter = (*responseWriter)(nil)
	_ http.Flusher        = (*responseWriter)(nil)
	_ http.Hijacker       = (*responseWriter)(nil)
)

func (rw *responseWriter) reset(w http.ResponseWriter, m *middleware, enc, etagEnc Encoding, head bool) {
	buf := rw.buf[:0]
	*rw = responseWriter{w: w, m: m, enc: enc, etagEnc: etagEnc, head: head, buf: buf}
}

// release drops references before the writer returns to the pool.
func (rw *responseWriter) release() {
	buf := rw.buf[:0]
	if cap(buf) > maxPooledBuf {
		buf = nil
	}
	*rw = responseWriter{buf: buf}
}

// Header implements http.ResponseWriter.
func (rw *responseWriter) Header() http.Header { return rw.w.Header() }

// Unwrap returns the underlying ResponseWriter, for http.ResponseController.
func (rw *responseWriter) Unwrap() http.ResponseWriter { return rw.w }

// WriteHeader implements http.ResponseWriter. Informational (1xx) statuses
// pass straight through; the final status is held back until the middleware
// knows whether it compresses.
func (rw *responseWriter) WriteHeader(code int) {
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		rw.w.WriteHeader(code)
		return
	}
	if rw.code != 0 || rw.state != stateUndecided {
		return // superfluous: net/http would ignore it too
	}
	rw.code = code
	rw.decideEarly()
}

// decideEarly decides whatever the status and headers alone can decide.
func (rw *responseWriter) decideEarly() {
	h := rw.w.Header()
	if !rw.eligible(h) {
		rw.startPlain(false)
		return
	}
	cl, clKnown := contentLength(h)
	if clKnown && (cl < int64(rw.m.c.minSize) || cl == 0) {
		rw.startPlain(false)
		return
	}
	if rw.enc == Identity {
		// Never buffer for a client that takes no encoding; the response
		// varies on Accept-Encoding if another client would get it encoded.
		rw.startPlain(true)
		return
	}
	_, hasCT := h["Content-Type"]
	if clKnown && hasCT {
		rw.startCompress()
		return
	}
	if isEventStream(h) {
		rw.startCompress()
	}
	// Otherwise buffer: to sniff the type, or to learn the size.
}

// eligible reports whether the response could be compressed, judging from
// the status and headers (not the size). An absent Content-Type counts as
// eligible; it is sniffed before compressing.
func (rw *responseWriter) eligible(h http.Header) bool {
	code := rw.code
	if code == 0 {
		code = http.StatusOK
	}
	switch {
	case code < 200, code == http.StatusNoContent, code == http.StatusNotModified,
		code == http.StatusPartialContent, code == http.StatusSwitchingProtocols:
		return false
	}
	if hasValue(h["Content-Encoding"]) || hasValue(h["Content-Range"]) || noTransform(h) {
		return false
	}
	if ct, ok := h["Content-Type"]; ok && len(ct) > 0 && !rw.m.c.compressibleType(ct[0]) {
		return false
	}
	return true
}

// Write implements http.ResponseWriter.
func (rw *responseWriter) Write(p []byte) (int, error) {
	switch rw.state {
	case stateCompress:
		return rw.writeCompressed(p)
	case statePlain:
		n, err := rw.w.Write(p)
		rw.in += int64(n)
		return n, err
	case stateHijacked:
		return 0, http.ErrHijacked
	}
	if rw.code == 0 {
		rw.code = http.StatusOK
		rw.decideEarly()
		if rw.state != stateUndecided {
			return rw.Write(p)
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	limit := rw.m.c.minSize
	if _, hasCT := rw.w.Header()["Content-Type"]; !hasCT {
		limit = max(limit, sniffLen)
	}
	if len(rw.buf)+len(p) < limit {
		rw.buf = append(rw.buf, p...)
		return len(p), nil
	}
	// Enough to decide: fill the buffer to the limit and judge.
	n := min(len(p), max(limit-len(rw.buf), 1))
	rw.buf = append(rw.buf, p[:n]...)
	rw.decideFromBuffer(true)
	if n == len(p) {
		return len(p), nil
	}
	m, err := rw.Write(p[n:])
	return n + m, err
}

// decideFromBuffer decides once the buffer reached its limit or the handler
// flushed (full is true: the body is big enough, or a stream), or when the
// response ended (full is false: the buffer is the whole body).
func (rw *responseWriter) decideFromBuffer(full bool) {
	h := rw.w.Header()
	_, hasCT := h["Content-Type"]
	if !hasCT && len(rw.buf) > 0 {
		ct := http.DetectContentType(rw.buf)
		h["Content-Type"] = []string{ct}
		hasCT = true
		if !rw.m.c.compressibleType(ct) {
			rw.startPlain(false)
			return
		}
	}
	cl, clKnown := contentLength(h)
	switch {
	case rw.head && clKnown && cl >= int64(rw.m.c.minSize):
		// HEAD: Content-Length tells what GET would send.
	case len(rw.buf) == 0 && (!full || !hasCT):
		rw.startPlain(false)
		return
	case !full && len(rw.buf) < rw.m.c.minSize:
		rw.startPlain(false)
		return
	}
	rw.startCompress()
}

// startPlain commits to an unencoded response: writes the held status and
// the buffered bytes. vary says whether the response could have been
// compressed for another client, so it varies on Accept-Encoding.
func (rw *responseWriter) startPlain(vary bool) {
	h := rw.w.Header()
	if vary {
		addVary(h)
	}
	if rw.code == http.StatusNotModified && (rw.etagEnc != Identity || (rw.enc != Identity && rw.m.c.weakETags)) {
		rw.fixNotModified(h)
	}
	rw.state = statePlain
	rw.writeHeader()
	if len(rw.buf) > 0 {
		buf := rw.buf
		rw.buf = rw.buf[:0]
		if !rw.head {
			n, _ := rw.w.Write(buf) // the handler sees errors on its next Write
			rw.in += int64(n)
		}
	}
}

// fixNotModified gives a 304 the validators the client's cached, compressed
// representation carries.
func (rw *responseWriter) fixNotModified(h http.Header) {
	if rw.etagEnc == Identity && !rw.m.c.weakETags {
		return
	}
	enc := rw.etagEnc
	if enc == Identity {
		enc = rw.enc
	}
	if tag := h["Etag"]; len(tag) > 0 {
		if t, ok := compressedETag(tag[0], enc, rw.m.c.weakETags); ok {
			h["Etag"] = []string{t}
		}
	}
	addVary(h)
}

func (rw *responseWriter) writeHeader() {
	if rw.sent {
		return
	}
	rw.sent = true
	if rw.code != 0 {
		rw.w.WriteHeader(rw.code)
	}
}

// startCompress commits to an encoded response: rewrites the headers, writes
// the status and feeds the buffer to a pooled compressor.
func (rw *responseWriter) startCompress() {
	h := rw.w.Header()
	switch rw.enc {
	case Zstd:
		h["Content-Encoding"] = ceZstd[:1:1]
	case Brotli:
		h["Content-Encoding"] = ceBrotli[:1:1]
	default:
		h["Content-Encoding"] = ceGzip[:1:1]
	}
	addVary(h)
	delete(h, "Content-Length")
	delete(h, "Accept-Ranges")
	if tag := h["Etag"]; len(tag) > 0 {
		if t, ok := compressedETag(tag[0], rw.enc, rw.m.c.weakETags); !ok {
			delete(h, "Etag")
		} else if t != tag[0] {
			h["Etag"] = []string{t}
		}
	}
	rw.state = stateCompress
	rw.writeHeader()
	if rw.head {
		rw.buf = rw.buf[:0]
		return
	}
	var dst io.Writer = rw.w
	if rw.m.c.counting() {
		dst = countingWriter{rw} // a pointer-shaped value: no allocation
	}
	switch rw.enc {
	case Zstd:
		rw.zs = rw.m.zs.Get().(*zstd.Encoder)
		rw.zs.Reset(dst)
	case Brotli:
		rw.br = rw.m.br.Get().(*brotli.Writer)
		rw.br.Reset(dst)
	default:
		rw.gz = rw.m.gz.Get().(*gzip.Writer)
		rw.gz.Reset(dst)
		if pad := rw.m.c.pad; pad > 0 {
			rw.gz.Comment = rw.m.c.padding[:1+rand.IntN(pad)]
		}
	}
	if len(rw.buf) > 0 {
		buf := rw.buf
		rw.buf = rw.buf[:0]
		rw.writeCompressed(buf) //nolint:errcheck // the handler sees errors on its next Write
	}
}

func (rw *responseWriter) writeCompressed(p []byte) (int, error) {
	if !rw.head {
		rw.in += int64(len(p))
	}
	switch {
	case rw.gz != nil:
		return rw.gz.Write(p)
	case rw.zs != nil:
		return rw.zs.Write(p)
	case rw.br != nil:
		return rw.br.Write(p)
	}
	return len(p), nil // HEAD: net/http discards the body anyway
}

// Flush implements http.Flusher: it decides if still undecided (a flushed
// response is a stream, so it is compressed if otherwise eligible whatever
// its size so far), flushes the compressor, then the underlying writer.
func (rw *responseWriter) Flush() { _ = rw.FlushError() }

// FlushError is Flush returning the error; http.ResponseController uses it.
func (rw *responseWriter) FlushError() error {
	switch rw.state {
	case stateHijacked:
		return http.ErrHijacked
	case stateUndecided:
		if rw.code == 0 {
			rw.code = http.StatusOK
			rw.decideEarly()
		}
		if rw.state == stateUndecided {
			rw.decideFromBuffer(true)
		}
	}
	var err error
	switch {
	case rw.gz != nil:
		err = rw.gz.Flush()
	case rw.zs != nil:
		err = rw.zs.Flush()
	case rw.br != nil:
		err = rw.br.Flush()
	}
	if err != nil {
		return err
	}
	return http.NewResponseController(rw.w).Flush()
}

// Hijack implements http.Hijacker by hijacking the underlying connection
// (following Unwrap). Buffered bytes are discarded.
func (rw *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(rw.w).Hijack()
	if err == nil {
		rw.abort()
		rw.state = stateHijacked
	}
	return conn, brw, err
}

// finish completes the response after the handler returned.
func (rw *responseWriter) finish() {
	switch rw.state {
	case stateHijacked:
		return
	case stateUndecided:
		if rw.code == 0 {
			rw.code = http.StatusOK
			rw.decideEarly()
		}
		if rw.state == stateUndecided {
			rw.decideFromBuffer(false)
		}
	}
	if rw.m.c.counting() {
		defer rw.count()
	}
	switch {
	case rw.gz != nil:
		rw.gz.Close() //nolint:errcheck // nobody left to tell
		rw.gz.Reset(nil)
		rw.gz.Comment = ""
		rw.m.gz.Put(rw.gz)
		rw.gz = nil
	case rw.zs != nil:
		rw.zs.Close() //nolint:errcheck // nobody left to tell
		if pad := rw.m.c.pad; pad > 0 {
			rw.writeSkippableFrame(1 + rand.IntN(pad))
		}
		rw.zs.Reset(nil)
		rw.m.zs.Put(rw.zs)
		rw.zs = nil
	case rw.br != nil:
		rw.br.Close() //nolint:errcheck // nobody left to tell
		rw.br.Reset(nil)
		rw.m.br.Put(rw.br)
		rw.br = nil
	}
}

// count adds this response to s.
func (rw *responseWriter) count() {
	enc, in, out := Identity, rw.in, rw.in
	if rw.state == stateCompress {
		enc, out = rw.enc, rw.out
	}
	if h := rw.m.c.hooks.OnResponse; h != nil {
		h(enc, in, out)
	}
	s := rw.m.c.stats
	if s == nil {
		return
	}
	if enc == Identity {
		s.identity.Add(1)
		return
	}
	s.compressed[enc.index()].Add(1)
	s.bytesIn.Add(uint64(in))
	s.bytesOut.Add(uint64(out))
}

// writeSkippableFrame writes a zstd skippable frame (RFC 8878 §3.1.2) of n
// padding bytes, which decoders ignore.
func (rw *responseWriter) writeSkippableFrame(n int) {
	var hdr [8]byte
	binary.LittleEndian.PutUint32(hdr[:4], 0x184D2A50)
	binary.LittleEndian.PutUint32(hdr[4:], uint32(n))
	rw.w.Write(hdr[:])                       //nolint:errcheck // best effort
	io.WriteString(rw.w, rw.m.c.padding[:n]) //nolint:errcheck // best effort
	rw.out += int64(len(hdr) + n)
}

// abort releases compressors without writing anything (handler panicked or
// the connection was hijacked).
func (rw *responseWriter) abort() {
	if rw.gz != nil {
		rw.gz.Reset(io.Discard)
		rw.gz.Comment = ""
		rw.m.gz.Put(rw.gz)
		rw.gz = nil
	}
	if rw.zs != nil {
		rw.zs.Reset(nil)
		rw.m.zs.Put(rw.zs)
		rw.zs = nil
	}
	if rw.br != nil {
		rw.br.Reset(nil)
		rw.m.br.Put(rw.br)
		rw.br = nil
	}
	rw.buf = rw.buf[:0]
}

// contentLength returns the Content-Length the handler set, if valid.
func contentLength(h http.Header) (int64, bool) {
	v := h["Content-Length"]
	if len(v) == 0 || v[0] == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(trimOWS(v[0]), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

func hasValue(v []string) bool {
	for _, s := range v {
		if trimOWS(s) != "" {
			return true
		}
	}
	return false
}

// noTransform reports whether Cache-Control carries no-transform.
func noTransform(h http.Header) bool {
	for _, v := range h["Cache-Control"] {
		for v != "" {
			var d string
			if i := indexByte(v, ','); i >= 0 {
				d, v = v[:i], v[i+1:]
			} else {
				d, v = v, ""
			}
			if equalFold(trimOWS(d), "no-transform") {
				return true
			}
		}
	}
	return false
}

// isEventStream reports a Server-Sent Events response.
func isEventStream(h http.Header) bool {
	ct := h["Content-Type"]
	return len(ct) > 0 && equalFold(mediaType(ct[0]), "text/event-stream")
}
