package compress

import (
	"fmt"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Encoding is an HTTP content-coding token (RFC 9110 §8.4.1) that this
// package can produce and consume. Its value is the token itself, so it can be
// written straight into a Content-Encoding header.
type Encoding string

// The encodings this package supports.
const (
	// Zstd is Zstandard (RFC 8878), the "zstd" content-coding.
	Zstd Encoding = "zstd"
	// Brotli is Brotli (RFC 7932), the "br" content-coding.
	Brotli Encoding = "br"
	// Gzip is gzip (RFC 1952), the "gzip" content-coding ("x-gzip" is
	// accepted as an alias when negotiating).
	Gzip Encoding = "gzip"
	// Identity is no encoding at all. A Codec with Identity never compresses;
	// the middleware never lists it as a compressing encoding.
	Identity Encoding = "identity"
)

// String returns the content-coding token.
func (e Encoding) String() string { return string(e) }

// valid reports whether e is one of the compressing encodings.
func (e Encoding) valid() bool {
	switch e {
	case Zstd, Brotli, Gzip:
		return true
	}
	return false
}

// Level bounds and defaults per encoding. Levels are the native levels of each
// library: zstd uses zstd.EncoderLevel (1 fastest … 4 best), brotli 0…11,
// gzip -3 (stateless: least memory), -2 (Huffman only), -1 (default),
// 0 (store) … 9.
const (
	// DefaultZstdLevel is zstd.SpeedDefault (roughly zstd -3).
	DefaultZstdLevel = int(zstd.SpeedDefault)
	// DefaultBrotliLevel is a level fast enough for dynamic responses.
	DefaultBrotliLevel = 4
	// DefaultGzipLevel matches gzhttp's default (a good speed/size trade).
	DefaultGzipLevel = 5
)

// defaultLevel returns the default level for enc.
func defaultLevel(enc Encoding) int {
	switch enc {
	case Zstd:
		return DefaultZstdLevel
	case Brotli:
		return DefaultBrotliLevel
	default:
		return DefaultGzipLevel
	}
}

// checkLevel validates level for enc and returns an error naming both.
func checkLevel(enc Encoding, level int) error {
	var lo, hi int
	switch enc {
	case Zstd:
		lo, hi = int(zstd.SpeedFastest), int(zstd.SpeedBestCompression)
	case Brotli:
		lo, hi = brotli.BestSpeed, brotli.BestCompression
	case Gzip:
		lo, hi = gzip.StatelessCompression, gzip.BestCompression
	default:
		return fmt.Errorf("%w %q", ErrUnknownEncoding, string(enc))
	}
	if level < lo || level > hi {
		return fmt.Errorf("%w: %s level must be in [%d, %d], got %d", ErrBadLevel, enc, lo, hi, level)
	}
	return nil
}
