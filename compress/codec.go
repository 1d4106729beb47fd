package compress

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Codec wire format: every encoded value starts with one header byte naming
// how the rest is stored, so Decode needs no configuration and any Codec
// decodes values written by any other Codec (any encoding, any threshold).
// The byte values are a stable format: never renumber them.
const (
	hdrRaw    byte = 0x00 // payload stored as is
	hdrZstd   byte = 0x01 // payload is one or more zstd frames
	hdrBrotli byte = 0x02 // payload is a brotli stream
	hdrGzip   byte = 0x03 // payload is a gzip stream
)

// DefaultMaxDecodedSize is the default limit on the size of a value produced
// by Codec.Decode: a guard against decompression bombs in stored data.
const DefaultMaxDecodedSize = 64 << 20

// Codec compresses and decompresses byte values such as cache entries and
// queue payloads. Values shorter than the threshold, and values that do not
// shrink, are stored raw behind a one-byte header; larger ones are compressed
// with the codec's encoding. Decode reads values written by any Codec.
//
// A Codec is safe for concurrent use by multiple goroutines. Encoders and
// decoders are pooled and shared between codecs.
type Codec struct {
	enc       Encoding
	level     int
	threshold int
	maxSize   int
	err       error

	zenc *zstd.Encoder // shared, nil unless enc == Zstd
	zdec *zstd.Decoder // shared per maxSize
	bw   *sync.Pool    // *brotli.Writer at level, nil unless enc == Brotli
	gw   *sync.Pool    // *gzip.Writer at level, nil unless enc == Gzip
}

// CodecOption configures a Codec built with NewCodecErr.
type CodecOption func(*Codec) error

// CodecLevel sets the compression level (see Level for the ranges).
func CodecLevel(level int) CodecOption {
	return func(c *Codec) error {
		if err := checkLevel(c.enc, level); err != nil {
			return fmt.Errorf("compress: CodecLevel: %w", err)
		}
		c.level = level
		return nil
	}
}

// CodecMaxDecodedSize sets the largest value Decode produces; larger values
// fail with ErrTooLarge. The default is DefaultMaxDecodedSize.
func CodecMaxDecodedSize(n int) CodecOption {
	return func(c *Codec) error {
		if n < 1 {
			return fmt.Errorf("%w: CodecMaxDecodedSize must be >= 1, got %d", ErrBadOption, n)
		}
		c.maxSize = n
		return nil
	}
}

// NewCodec returns a Codec compressing values of at least threshold bytes
// with enc at its default level. A threshold <= 0 compresses every value
// (that shrinks); Identity never compresses.
//
// NewCodec does not fail: if enc is not a supported encoding, the returned
// Codec still decodes, but Encode returns the error, also available from Err.
// Use NewCodecErr to validate up front and set options.
func NewCodec(enc Encoding, threshold int) *Codec {
	c, err := NewCodecErr(enc, threshold)
	if err != nil {
		c = &Codec{enc: enc, threshold: threshold, maxSize: DefaultMaxDecodedSize, err: err}
		c.zdec = sharedZstdDecoder(c.maxSize)
	}
	return c
}

// NewCodecErr is NewCodec with options and validation: it returns an error
// naming the bad argument (unknown encoding, level out of range, bad limit).
func NewCodecErr(enc Encoding, threshold int, opts ...CodecOption) (*Codec, error) {
	if !enc.valid() && enc != Identity {
		return nil, fmt.Errorf("compress: NewCodec encoding: %w %q", ErrUnknownEncoding, string(enc))
	}
	c := &Codec{enc: enc, threshold: threshold, maxSize: DefaultMaxDecodedSize}
	if enc != Identity {
		c.level = defaultLevel(enc)
	}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(c); err != nil {
			return nil, err
		}
	}
	switch enc {
	case Zstd:
		c.zenc = sharedZstdEncoder(c.level)
	case Brotli:
		c.bw = brotliPool(c.level)
	case Gzip:
		c.gw = gzipPool(c.level)
	}
	c.zdec = sharedZstdDecoder(c.maxSize)
	return c, nil
}

// Err returns the configuration error of a Codec built by NewCodec, or nil.
func (c *Codec) Err() error { return c.err }

// Encoding returns the codec's encoding.
func (c *Codec) Encoding() Encoding { return c.enc }

// Encode returns the encoded form of src: a header byte followed by src
// itself or its compressed form. It never modifies src and the result never
// aliases it.
func (c *Codec) Encode(src []byte) ([]byte, error) {
	if c.err != nil {
		return nil, c.err
	}
	if len(src) < c.threshold || c.enc == Identity || len(src) == 0 {
		return raw(src), nil
	}
	var out []byte
	switch c.enc {
	case Zstd:
		dst := make([]byte, 1, 1+len(src)/2+64)
		dst[0] = hdrZstd
		out = c.zenc.EncodeAll(src, dst)
	case Brotli:
		buf := bytes.NewBuffer(make([]byte, 0, 1+len(src)/2+64))
		buf.WriteByte(hdrBrotli)
		w := c.bw.Get().(*brotli.Writer)
		w.Reset(buf)
		_, err := w.Write(src)
		if err == nil {
			err = w.Close()
		}
		w.Reset(nil)
		c.bw.Put(w)
		if err != nil {
			return nil, fmt.Errorf("compress: brotli encode: %w", err)
		}
		out = buf.Bytes()
	case Gzip:
		buf := bytes.NewBuffer(make([]byte, 0, 1+len(src)/2+64))
		buf.WriteByte(hdrGzip)
		w := c.gw.Get().(*gzip.Writer)
		w.Reset(buf)
		_, err := w.Write(src)
		if err == nil {
			err = w.Close()
		}
		w.Reset(io.Discard)
		c.gw.Put(w)
		if err != nil {
			return nil, fmt.Errorf("compress: gzip encode: %w", err)
		}
		out = buf.Bytes()
	}
	if len(out) >= len(src)+1 {
		return raw(src), nil // incompressible: do not pay to decode it later
	}
	return out, nil
}

func raw(src []byte) []byte {
	out := make([]byte, 1+len(src))
	out[0] = hdrRaw
	copy(out[1:], src)
	return out
}

// Decode returns the value encoded in src by any Codec. For values stored
// raw the result aliases src (no copy); otherwise it is a new slice. Decode
// fails with ErrCorrupt for input that is not an encoded value and with
// ErrTooLarge when the value would exceed the maximum decoded size.
func (c *Codec) Decode(src []byte) ([]byte, error) {
	if len(src) == 0 {
		return nil, fmt.Errorf("%w: empty input", ErrCorrupt)
	}
	max := c.maxSize
	if max <= 0 {
		max = DefaultMaxDecodedSize
	}
	body := src[1:]
	if src[0] != hdrRaw && len(body) == 0 {
		return nil, fmt.Errorf("%w: empty payload", ErrCorrupt)
	}
	switch src[0] {
	case hdrRaw:
		if len(body) > max {
			return nil, ErrTooLarge
		}
		return body, nil
	case hdrZstd:
		dec := c.zdec
		if dec == nil {
			dec = sharedZstdDecoder(max)
		}
		out, err := dec.DecodeAll(body, nil)
		if err != nil {
			if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
				return nil, ErrTooLarge
			}
			return nil, fmt.Errorf("%w: zstd: %v", ErrCorrupt, err)
		}
		if len(out) > max {
			return nil, ErrTooLarge
		}
		return out, nil
	case hdrBrotli:
		r := brotliReaderPool.Get().(*brotli.Reader)
		defer brotliReaderPool.Put(r)
		if err := r.Reset(bytes.NewReader(body)); err != nil {
			return nil, fmt.Errorf("%w: brotli: %v", ErrCorrupt, err)
		}
		return readLimited(r, max, len(body), "brotli")
	case hdrGzip:
		r, _ := gzipReaderPool.Get().(*gzip.Reader)
		var err error
		if r == nil {
			r, err = gzip.NewReader(bytes.NewReader(body))
		} else {
			err = r.Reset(bytes.NewReader(body))
		}
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrCorrupt, err)
		}
		defer gzipReaderPool.Put(r)
		return readLimited(r, max, len(body), "gzip")
	default:
		return nil, fmt.Errorf("%w: unknown header byte 0x%02x", ErrCorrupt, src[0])
	}
}

// readLimited reads r to the end, failing with ErrTooLarge past max bytes.
func readLimited(r io.Reader, max, hint int, name string) ([]byte, error) {
	size := hint * 4
	if size < 512 {
		size = 512
	}
	if size > max+1 {
		size = max + 1
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	n, err := buf.ReadFrom(io.LimitReader(r, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
	}
	if n > int64(max) {
		return nil, ErrTooLarge
	}
	return buf.Bytes(), nil
}
