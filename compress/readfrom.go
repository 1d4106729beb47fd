package compress

import (
	"io"
	"sync"
)

// copyBufPool holds the buffers ReadFrom copies through, so io.Copy into the
// middleware's writer (as http.ServeContent does) allocates nothing.
var copyBufPool = sync.Pool{New: func() any {
	b := make([]byte, 32<<10)
	return &b
}}

// ReadFrom implements io.ReaderFrom. Once the response is known to go out
// unencoded it hands src to the underlying writer's ReadFrom, which keeps
// net/http's sendfile path for files; otherwise it copies through a pooled
// buffer into the compressor.
func (rw *responseWriter) ReadFrom(src io.Reader) (int64, error) {
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	var total int64
	for {
		if rw.state == statePlain {
			if rf, ok := rw.w.(io.ReaderFrom); ok {
				n, err := rf.ReadFrom(src)
				rw.in += n
				return total + n, err
			}
		}
		// Until decided, read small chunks so a plain response switches to
		// the underlying ReadFrom early.
		chunk := buf
		if rw.state == stateUndecided {
			chunk = buf[:min(len(buf), max(rw.m.c.minSize, sniffLen))]
		}
		n, err := src.Read(chunk)
		if n > 0 {
			m, werr := rw.Write(chunk[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}
