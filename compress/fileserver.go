package compress

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
)

// precompressed lists the sibling extensions FileServer looks for, in server
// preference order.
var precompressed = [...]struct {
	enc Encoding
	ext string
}{{Zstd, ".zst"}, {Brotli, ".br"}, {Gzip, ".gz"}}

// FileServer returns a handler serving the files of fsys like
// http.FileServerFS, except that when a file "name" has pre-compressed
// siblings "name.zst", "name.br" or "name.gz" (built ahead of time, at the
// best compression levels) and the client accepts their encoding, the best
// one (per Negotiate, server order zstd, br, gzip) is served instead, with
// Content-Encoding and the Content-Type of the original.
//
// Every file gets a strong ETag derived from the served file's modification
// time and size (or a content hash when the file system has no times, as
// embed.FS), distinct for each encoding, so conditional requests answer 304.
// Files with siblings get Vary: Accept-Encoding. Range requests are honoured
// only for the identity representation: an encoded response is always the
// whole file, without Accept-Ranges. Directories, redirects and errors are
// handled by http.FileServerFS.
//
// Wrapping FileServer in Middleware compresses, on the fly, files that have
// no siblings; files served pre-compressed are left alone.
func FileServer(fsys fs.FS) http.Handler {
	return &fileServer{fsys: fsys, std: http.FileServerFS(fsys)}
}

type fileServer struct {
	fsys  fs.FS
	std   http.Handler
	etags sync.Map // etagKey -> string, for files without a modification time
}

type etagKey struct {
	name string
	size int64
}

// ServeHTTP implements http.Handler.
func (s *fileServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	upath := r.URL.Path
	if !strings.HasPrefix(upath, "/") {
		upath = "/" + upath
	}
	if strings.HasSuffix(upath, "/index.html") {
		s.std.ServeHTTP(w, r) // redirects to the directory
		return
	}
	name := strings.TrimPrefix(path.Clean(upath), "/")
	if name == "" {
		name = "."
	}
	info, err := fs.Stat(s.fsys, name)
	if err == nil && info.IsDir() {
		if !strings.HasSuffix(upath, "/") {
			s.std.ServeHTTP(w, r) // redirect to name/
			return
		}
		name = path.Join(name, "index.html")
		info, err = fs.Stat(s.fsys, name)
		if err != nil {
			s.std.ServeHTTP(w, r) // directory listing
			return
		}
	}
	if err != nil || !info.Mode().IsRegular() {
		s.std.ServeHTTP(w, r)
		return
	}

	// Which encodings exist as siblings?
	var avail [len(precompressed)]Encoding
	var infos [len(precompressed)]fs.FileInfo
	n := 0
	for _, p := range precompressed {
		si, err := fs.Stat(s.fsys, name+p.ext)
		if err == nil && si.Mode().IsRegular() {
			avail[n], infos[n] = p.enc, si
			n++
		}
	}
	h := w.Header()
	enc := Identity
	if n > 0 {
		addVary(h)
		if ae := r.Header["Accept-Encoding"]; len(ae) > 0 {
			enc = Negotiate(strings.Join(ae, ","), avail[:n]...)
		}
	}
	if enc == Identity {
		s.serveFile(w, r, name, name, info, "")
		return
	}
	var si fs.FileInfo
	ext := ""
	for i := range n {
		if avail[i] == enc {
			si = infos[i]
		}
	}
	for _, p := range precompressed {
		if p.enc == enc {
			ext = p.ext
		}
	}
	if _, ok := h["Content-Type"]; !ok {
		ct := mime.TypeByExtension(path.Ext(name))
		if ct == "" {
			ct = s.sniff(name)
		}
		h.Set("Content-Type", ct)
	}
	h.Set("Content-Encoding", string(enc))
	// Byte ranges of the encoded file are not offered: serve it whole.
	r2 := new(http.Request)
	*r2 = *r
	r2.Header = r.Header.Clone()
	delete(r2.Header, "Range")
	delete(r2.Header, "If-Range")
	s.serveFile(&encodedWriter{ResponseWriter: w, size: si.Size()}, r2, name, name+ext, si, ext)
}

// serveFile serves the file named file (the original, or a sibling) under
// the original's name, with a strong ETag.
func (s *fileServer) serveFile(w http.ResponseWriter, r *http.Request, name, file string, info fs.FileInfo, ext string) {
	f, err := s.fsys.Open(file)
	if err != nil {
		s.std.ServeHTTP(w, r)
		return
	}
	defer f.Close()
	rs, ok := f.(io.ReadSeeker)
	if !ok {
		b, err := io.ReadAll(f)
		if err != nil {
			http.Error(w, "500 Internal Server Error", http.StatusInternalServerError)
			return
		}
		rs = bytes.NewReader(b)
	}
	h := w.Header()
	if _, ok := h["Etag"]; !ok {
		tag, err := s.etag(file, info, rs)
		if err == nil {
			h.Set("Etag", `"`+tag+ext+`"`)
		}
	}
	http.ServeContent(w, r, path.Base(name), info.ModTime(), rs)
}

// etag returns the opaque part of a strong ETag for a file.
func (s *fileServer) etag(file string, info fs.FileInfo, rs io.ReadSeeker) (string, error) {
	if mt := info.ModTime(); !mt.IsZero() && mt.Unix() > 0 {
		return strconv.FormatInt(mt.UnixNano(), 36) + "-" + strconv.FormatInt(info.Size(), 36), nil
	}
	key := etagKey{file, info.Size()}
	if v, ok := s.etags.Load(key); ok {
		return v.(string), nil
	}
	hash := sha256.New()
	if _, err := io.Copy(hash, rs); err != nil {
		return "", err
	}
	if _, err := rs.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	tag := hex.EncodeToString(hash.Sum(nil)[:12])
	s.etags.Store(key, tag)
	return tag, nil
}

// sniff detects the Content-Type of the original file from its first bytes.
func (s *fileServer) sniff(name string) string {
	f, err := s.fsys.Open(name)
	if err != nil {
		return "application/octet-stream"
	}
	defer f.Close()
	var buf [sniffLen]byte
	n, err := io.ReadFull(f, buf[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "application/octet-stream"
	}
	return http.DetectContentType(buf[:n])
}

// encodedWriter serves a pre-compressed file: it drops Accept-Ranges, sets
// the Content-Length http.ServeContent leaves out when Content-Encoding is
// set, and drops Content-Encoding from error responses (which are not
// encoded).
type encodedWriter struct {
	http.ResponseWriter
	size  int64
	wrote bool
}

func (e *encodedWriter) WriteHeader(code int) {
	if !e.wrote {
		e.wrote = true
		h := e.Header()
		delete(h, "Accept-Ranges")
		if code >= 300 && code != http.StatusNotModified {
			delete(h, "Content-Encoding")
		}
		if code == http.StatusOK {
			h.Set("Content-Length", strconv.FormatInt(e.size, 10))
		}
	}
	e.ResponseWriter.WriteHeader(code)
}

func (e *encodedWriter) Write(p []byte) (int, error) {
	if !e.wrote {
		e.WriteHeader(http.StatusOK)
	}
	return e.ResponseWriter.Write(p)
}

// Unwrap returns the underlying ResponseWriter.
func (e *encodedWriter) Unwrap() http.ResponseWriter { return e.ResponseWriter }

// ReadFrom implements io.ReaderFrom, keeping net/http's sendfile path for
// pre-compressed files.
func (e *encodedWriter) ReadFrom(src io.Reader) (int64, error) {
	if !e.wrote {
		e.WriteHeader(http.StatusOK)
	}
	if rf, ok := e.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{e.ResponseWriter}, src)
}
