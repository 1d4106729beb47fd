package compress

import (
	"fmt"
	"mime"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// Option configures Middleware. Options are validated by Middleware, which
// returns an error naming the first bad one.
type Option func(*config) error

// Defaults used by Middleware without options.
const (
	// DefaultMinSize is the smallest response body compressed by default.
	// Smaller bodies fit a packet anyway and cost CPU for nothing.
	DefaultMinSize = 1024
	// DefaultZstdWindow is the default zstd window for responses: small, so
	// that thousands of concurrent responses do not cost 8 MiB each.
	DefaultZstdWindow = 128 << 10
	// DefaultBrotliWindow is the default brotli window for responses. The
	// brotli default (4 MiB) would cost ~10 MiB per in-flight response.
	DefaultBrotliWindow = 128 << 10
)

// config is the validated configuration of one Middleware. Read-only once
// built, so safe for concurrent use.
type config struct {
	encs       []Encoding
	levels     [numEncodings]int
	minSize    int
	allow      []mediaPattern // user allow list; nil means "all but the non-compressible defaults"
	deny       []mediaPattern // user deny list, always applied
	pad        int            // BREACH padding: up to pad random bytes, 0 = off
	padding    string         // filler sliced for padding
	zstdWindow int
	brWindow   int
	weakETags  bool
	stats      *Stats // nil: no counting
	hooks      Hooks
}

func defaultConfig() *config {
	c := &config{
		encs:       []Encoding{Zstd, Brotli, Gzip}, // the default preference order
		minSize:    DefaultMinSize,
		zstdWindow: DefaultZstdWindow,
		brWindow:   DefaultBrotliWindow,
	}
	for _, e := range c.encs {
		c.levels[e.index()] = defaultLevel(e)
	}
	return c
}

// Encodings sets the encodings the middleware may use, in server preference
// order (the order breaks ties between equally weighted client preferences).
// The default is Zstd, Brotli, Gzip. Identity, unknown and duplicate entries
// are errors.
func Encodings(encs ...Encoding) Option {
	return func(c *config) error {
		if len(encs) == 0 {
			return fmt.Errorf("%w: Encodings: at least one encoding is required", ErrBadOption)
		}
		var seen [numEncodings]bool
		for _, e := range encs {
			if !e.valid() {
				return fmt.Errorf("compress: Encodings: %w %q", ErrUnknownEncoding, string(e))
			}
			if seen[e.index()] {
				return fmt.Errorf("%w: Encodings: %s listed twice", ErrBadOption, e)
			}
			seen[e.index()] = true
		}
		c.encs = append([]Encoding(nil), encs...)
		return nil
	}
}

// Level sets the compression level of one encoding: zstd 1 (fastest) to 4
// (best), default 2; brotli 0 to 11, default 4; gzip -3 (stateless, least
// memory per response), -2 (Huffman only), -1 (library default), 0 (store) to
// 9, default 5.
func Level(enc Encoding, level int) Option {
	return func(c *config) error {
		if err := checkLevel(enc, level); err != nil {
			return fmt.Errorf("compress: Level: %w", err)
		}
		c.levels[enc.index()] = level
		return nil
	}
}

// MinSize sets the smallest body that is compressed (default 1024 bytes).
// The middleware decides from Content-Length when the handler sets it, and
// otherwise buffers up to MinSize bytes before deciding. 0 compresses every
// non-empty body.
func MinSize(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return fmt.Errorf("%w: MinSize must be >= 0, got %d", ErrBadOption, n)
		}
		c.minSize = n
		return nil
	}
}

// ContentTypes restricts compression to responses whose media type matches
// one of the patterns ("application/json", "text/*"). Parameters such as
// charset are ignored when matching. It replaces the default rule, which
// compresses every type except known non-compressible ones (images other than
// SVG, fonts in woff/woff2, audio, video, archives).
func ContentTypes(allow ...string) Option {
	return func(c *config) error {
		ps, err := parsePatterns("ContentTypes", allow)
		if err != nil {
			return err
		}
		if len(ps) == 0 {
			return fmt.Errorf("%w: ContentTypes: at least one media type is required", ErrBadOption)
		}
		c.allow = ps
		return nil
	}
}

// ExceptContentTypes never compresses responses whose media type matches one
// of the patterns, in addition to the built-in non-compressible types (or to
// the ContentTypes allow list).
func ExceptContentTypes(deny ...string) Option {
	return func(c *config) error {
		ps, err := parsePatterns("ExceptContentTypes", deny)
		if err != nil {
			return err
		}
		c.deny = append(c.deny, ps...)
		return nil
	}
}

// BreachPadding enables BREACH mitigation: every compressed response gets
// between 1 and max random bytes of padding that decoders ignore (a gzip
// header comment, a zstd skippable frame), so the compressed length no longer
// reveals how well secrets in the page compress against attacker input.
// Brotli has no padding mechanism in its Go encoder, so while padding is on
// Brotli is not negotiated. 0 (the default) disables padding; max is at most
// 65535.
func BreachPadding(max int) Option {
	return func(c *config) error {
		if max < 0 || max > 65535 {
			return fmt.Errorf("%w: BreachPadding must be in [0, 65535], got %d", ErrBadOption, max)
		}
		c.pad = max
		c.padding = strings.Repeat("Padding-", max/8+1)[:max]
		return nil
	}
}

// ZstdWindow sets the zstd window size for responses: a power of two from
// 1 KiB to 8 MiB (default 128 KiB). Larger windows compress large bodies a
// little better and cost that much memory per concurrent response, on the
// server and on the client. The level's match tables come on top: measured
// per in-flight response with the default window, about 0.8 MiB at level 1,
// 2 MiB at level 2 (the default) and 5 MiB at level 3.
func ZstdWindow(n int) Option {
	return func(c *config) error {
		if n < zstd.MinWindowSize || n > 8<<20 || n&(n-1) != 0 {
			return fmt.Errorf("%w: ZstdWindow must be a power of two in [%d, %d], got %d", ErrBadOption, zstd.MinWindowSize, 8<<20, n)
		}
		c.zstdWindow = n
		return nil
	}
}

// BrotliWindow sets the brotli window for responses: a power of two from
// 1 KiB to 16 MiB (default 128 KiB). Memory per in-flight brotli response is
// roughly the window plus 1–2 MiB of level-dependent tables.
func BrotliWindow(n int) Option {
	return func(c *config) error {
		if n < 1<<10 || n > 16<<20 || n&(n-1) != 0 {
			return fmt.Errorf("%w: BrotliWindow must be a power of two in [%d, %d], got %d", ErrBadOption, 1<<10, 16<<20, n)
		}
		c.brWindow = n
		return nil
	}
}

// WeakETags chooses how the ETag of a compressed response is made distinct
// from the uncompressed one. By default a strong ETag gets a suffix naming
// the encoding ("abc" becomes "abc-gzip"), which stays strong and differs per
// encoding; with WeakETags(true) it is weakened instead (W/"abc"). Either
// way, If-None-Match and If-Match are translated back before the handler sees
// them so handlers such as http.ServeContent still answer 304 and 412
// correctly. Weak ETags from the handler are left alone.
func WeakETags(weak bool) Option {
	return func(c *config) error {
		c.weakETags = weak
		return nil
	}
}

// mediaPattern is a lower-case media type "type/subtype", where subtype may
// be "*" (and type may be "*" with subtype "*").
type mediaPattern struct {
	typ, sub string
}

func parsePatterns(opt string, in []string) ([]mediaPattern, error) {
	out := make([]mediaPattern, 0, len(in))
	for _, s := range in {
		mt, _, err := mime.ParseMediaType(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: invalid media type %q: %v", ErrBadOption, opt, s, err)
		}
		typ, sub, ok := strings.Cut(mt, "/")
		if !ok || typ == "" || sub == "" || (typ == "*" && sub != "*") {
			return nil, fmt.Errorf("%w: %s: invalid media type %q: want type/subtype", ErrBadOption, opt, s)
		}
		out = append(out, mediaPattern{typ, sub})
	}
	return out, nil
}

// nonCompressible lists media types that are already compressed.
var nonCompressible = []mediaPattern{
	{"image", "jpeg"}, {"image", "jpg"}, {"image", "pjpeg"}, {"image", "png"}, {"image", "apng"},
	{"image", "gif"}, {"image", "webp"}, {"image", "avif"}, {"image", "heic"}, {"image", "heif"},
	{"image", "jxl"}, {"image", "jp2"},
	{"font", "woff"}, {"font", "woff2"}, {"application", "font-woff"}, {"application", "font-woff2"},
	{"video", "*"}, {"audio", "*"},
	{"application", "zip"}, {"application", "gzip"}, {"application", "x-gzip"},
	{"application", "zstd"}, {"application", "x-zstd"}, {"application", "x-brotli"},
	{"application", "x-bzip"}, {"application", "x-bzip2"}, {"application", "x-xz"},
	{"application", "x-lzip"}, {"application", "x-lzma"}, {"application", "x-compress"},
	{"application", "x-7z-compressed"}, {"application", "x-rar-compressed"}, {"application", "vnd.rar"},
	{"application", "java-archive"}, {"application", "epub+zip"},
	{"application", "vnd.android.package-archive"}, {"application", "x-apple-diskimage"},
	{"multipart", "byteranges"},
}

// mediaType returns the media type of a Content-Type value, trimmed, without
// parameters (not lower-cased: comparisons are case-insensitive).
func mediaType(ct string) string {
	if i := indexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return trimOWS(ct)
}

func (p mediaPattern) match(mt string) bool {
	i := indexByte(mt, '/')
	if i < 0 {
		return false
	}
	typ, sub := mt[:i], mt[i+1:]
	if p.typ != "*" && !equalFold(p.typ, typ) {
		return false
	}
	return p.sub == "*" || equalFold(p.sub, sub)
}

func matchAny(ps []mediaPattern, mt string) bool {
	for _, p := range ps {
		if p.match(mt) {
			return true
		}
	}
	return false
}

// nonCompressibleSet indexes the exact (lower-case) entries of
// nonCompressible for the common, already lower-case header values.
var nonCompressibleSet = func() map[string]bool {
	m := make(map[string]bool, len(nonCompressible))
	for _, p := range nonCompressible {
		if p.sub != "*" {
			m[p.typ+"/"+p.sub] = true
		}
	}
	return m
}()

// defaultNonCompressible reports whether media type mt is one of the
// built-in non-compressible types.
func defaultNonCompressible(mt string) bool {
	i := indexByte(mt, '/')
	if i < 0 {
		return false
	}
	switch typ := mt[:i]; {
	case equalFold(typ, "text"):
		return false
	case equalFold(typ, "video"), equalFold(typ, "audio"):
		return true
	}
	if isLower(mt) {
		return nonCompressibleSet[mt]
	}
	return matchAny(nonCompressible, mt)
}

func isLower(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return false
		}
	}
	return true
}

// compressibleType reports whether a response of Content-Type ct may be
// compressed under c.
func (c *config) compressibleType(ct string) bool {
	mt := mediaType(ct)
	if len(c.deny) > 0 && matchAny(c.deny, mt) {
		return false
	}
	if c.allow != nil {
		return matchAny(c.allow, mt)
	}
	return !defaultNonCompressible(mt)
}
