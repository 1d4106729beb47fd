package compress

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
)

// testJSON returns deterministic, realistic-looking JSON of about n bytes.
func testJSON(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	b.WriteString(`{"items":[`)
	for i := 0; b.Len() < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"user-%d","email":"user%d@example.com","score":%.3f,"active":%t,"tags":["a%d","b%d"]}`,
			i, r.IntN(100000), r.IntN(100000), r.Float64()*100, r.IntN(2) == 0, r.IntN(50), r.IntN(50))
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

func randomBytes(n int) []byte {
	r := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestCodecRoundTrip(t *testing.T) {
	inputs := map[string][]byte{
		"nil":      nil,
		"empty":    {},
		"one":      {'x'},
		"small":    []byte("hello, world"),
		"json1k":   testJSON(1 << 10),
		"json256k": testJSON(256 << 10),
		"random":   randomBytes(64 << 10),
		"zeros":    make([]byte, 256<<10),
	}
	for _, enc := range []Encoding{Zstd, Brotli, Gzip, Identity} {
		for _, threshold := range []int{0, 64, 1 << 30} {
			c := NewCodec(enc, threshold)
			require.NoError(t, c.Err())
			for name, in := range inputs {
				t.Run(fmt.Sprintf("enc=%s/threshold=%d/in=%s", enc, threshold, name), func(t *testing.T) {
					orig := bytes.Clone(in)
					out, err := c.Encode(in)
					require.NoError(t, err)
					require.Equal(t, orig, in, "Encode modified its input")
					require.NotEmpty(t, out)
					wantRaw := len(in) < threshold || enc == Identity || len(in) == 0 || name == "random"
					compressible := strings.HasPrefix(name, "json") || name == "zeros"
					switch {
					case wantRaw:
						require.Equal(t, hdrRaw, out[0], "got header 0x%02x, want raw", out[0])
						require.Len(t, out, len(in)+1)
					case compressible:
						require.NotEqual(t, hdrRaw, out[0], "compressible input stored raw")
						require.Less(t, len(out), len(in))
					default: // tiny: whichever is smaller
						require.LessOrEqual(t, len(out), len(in)+1)
					}
					// Any codec decodes it.
					for _, other := range []Encoding{Zstd, Brotli, Gzip, Identity} {
						got, err := NewCodec(other, 7).Decode(out)
						require.NoError(t, err)
						require.Equal(t, len(in), len(got))
						require.True(t, bytes.Equal(in, got))
					}
				})
			}
		}
	}
}

// TestCodecStandardDecoders checks the payload after the header byte is a
// plain stream of the named format, readable by the reference decoders.
func TestCodecStandardDecoders(t *testing.T) {
	in := testJSON(32 << 10)
	for _, tc := range []struct {
		enc    Encoding
		header byte
		decode func([]byte) ([]byte, error)
	}{
		{Zstd, hdrZstd, func(b []byte) ([]byte, error) {
			d, err := zstd.NewReader(nil)
			if err != nil {
				return nil, err
			}
			defer d.Close()
			return d.DecodeAll(b, nil)
		}},
		{Brotli, hdrBrotli, func(b []byte) ([]byte, error) {
			var out bytes.Buffer
			_, err := out.ReadFrom(brotli.NewReader(bytes.NewReader(b)))
			return out.Bytes(), err
		}},
		{Gzip, hdrGzip, func(b []byte) ([]byte, error) {
			r, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				return nil, err
			}
			var out bytes.Buffer
			_, err = out.ReadFrom(r)
			return out.Bytes(), err
		}},
	} {
		t.Run("enc="+string(tc.enc), func(t *testing.T) {
			out, err := NewCodec(tc.enc, 0).Encode(in)
			require.NoError(t, err)
			require.Equal(t, tc.header, out[0])
			got, err := tc.decode(out[1:])
			require.NoError(t, err)
			require.True(t, bytes.Equal(in, got))
		})
	}
}

func TestCodecLevels(t *testing.T) {
	in := testJSON(64 << 10)
	for _, tc := range []struct {
		enc    Encoding
		levels []int
	}{
		{Zstd, []int{1, 2, 3, 4}},
		{Brotli, []int{0, 1, 5, 11}},
		{Gzip, []int{-3, -2, -1, 0, 1, 5, 9}},
	} {
		for _, lvl := range tc.levels {
			c, err := NewCodecErr(tc.enc, 0, CodecLevel(lvl))
			require.NoError(t, err)
			out, err := c.Encode(in)
			require.NoError(t, err)
			got, err := c.Decode(out)
			require.NoError(t, err)
			require.True(t, bytes.Equal(in, got), "enc=%s level=%d", tc.enc, lvl)
		}
	}
}

func TestCodecErrors(t *testing.T) {
	c := NewCodec("lz4", 10)
	require.ErrorIs(t, c.Err(), ErrUnknownEncoding)
	require.ErrorContains(t, c.Err(), `"lz4"`)
	_, err := c.Encode([]byte("x"))
	require.ErrorIs(t, err, ErrUnknownEncoding)
	// Still decodes.
	good, err := NewCodec(Gzip, 0).Encode(testJSON(4096))
	require.NoError(t, err)
	_, err = c.Decode(good)
	require.NoError(t, err)

	_, err = NewCodecErr(Zstd, 0, CodecLevel(9))
	require.ErrorIs(t, err, ErrBadLevel)
	require.ErrorContains(t, err, "zstd level must be in [1, 4], got 9")
	_, err = NewCodecErr(Brotli, 0, CodecLevel(12))
	require.ErrorIs(t, err, ErrBadLevel)
	_, err = NewCodecErr(Gzip, 0, CodecLevel(-4))
	require.ErrorIs(t, err, ErrBadLevel)
	_, err = NewCodecErr(Gzip, 0, CodecMaxDecodedSize(0))
	require.ErrorIs(t, err, ErrBadOption)
	require.ErrorContains(t, err, "CodecMaxDecodedSize")

	d := NewCodec(Zstd, 0)
	for _, bad := range [][]byte{nil, {}, {0x7f, 1, 2}, {hdrZstd}, {hdrZstd, 1, 2, 3}, {hdrGzip, 0x1f}, {hdrBrotli, 0xff, 0xff, 0xff}} {
		_, err := d.Decode(bad)
		require.ErrorIs(t, err, ErrCorrupt, "input %x", bad)
	}
}

func TestCodecDecodeBombs(t *testing.T) {
	big := make([]byte, 8<<20) // 8 MiB of zeros compresses to a few KiB
	for _, enc := range []Encoding{Zstd, Brotli, Gzip} {
		t.Run("enc="+string(enc), func(t *testing.T) {
			w, err := NewCodecErr(enc, 0)
			require.NoError(t, err)
			bomb, err := w.Encode(big)
			require.NoError(t, err)
			require.Less(t, len(bomb), 64<<10)

			small, err := NewCodecErr(enc, 0, CodecMaxDecodedSize(1<<20))
			require.NoError(t, err)
			_, err = small.Decode(bomb)
			require.ErrorIs(t, err, ErrTooLarge)

			exact, err := NewCodecErr(enc, 0, CodecMaxDecodedSize(len(big)))
			require.NoError(t, err)
			got, err := exact.Decode(bomb)
			require.NoError(t, err)
			require.Len(t, got, len(big))
		})
	}
	small, err := NewCodecErr(Zstd, 0, CodecMaxDecodedSize(10))
	require.NoError(t, err)
	_, err = small.Decode(append([]byte{hdrRaw}, make([]byte, 11)...))
	require.ErrorIs(t, err, ErrTooLarge)
}

func TestCodecConcurrent(t *testing.T) {
	in := testJSON(16 << 10)
	var wg sync.WaitGroup
	for _, enc := range []Encoding{Zstd, Brotli, Gzip} {
		c := NewCodec(enc, 128)
		for range 4 {
			wg.Go(func() {
				for range 20 {
					out, err := c.Encode(in)
					if err != nil {
						t.Error(err)
						return
					}
					got, err := c.Decode(out)
					if err != nil || !bytes.Equal(got, in) {
						t.Errorf("enc=%s: round trip failed: %v", enc, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
}

func FuzzCodecDecode(f *testing.F) {
	for _, enc := range []Encoding{Zstd, Brotli, Gzip, Identity} {
		out, err := NewCodec(enc, 0).Encode(testJSON(300))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(out)
	}
	f.Add([]byte{})
	f.Add([]byte{hdrZstd, 0x28, 0xb5, 0x2f, 0xfd})
	c, err := NewCodecErr(Zstd, 0, CodecMaxDecodedSize(1<<20))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := c.Decode(in)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("got error %v, want ErrCorrupt or ErrTooLarge", err)
			}
			return
		}
		if len(out) > 1<<20 {
			t.Fatalf("got %d bytes, want <= limit", len(out))
		}
		// What decodes re-encodes and round trips.
		again, err := c.Encode(out)
		if err != nil {
			t.Fatal(err)
		}
		back, err := c.Decode(again)
		if err != nil || !bytes.Equal(back, out) {
			t.Fatalf("re-encode round trip failed: %v", err)
		}
	})
}
