package compress

import (
	"fmt"
	"testing"
)

// BenchmarkCodec measures Encode and Decode of JSON values per encoding and
// size, reporting the encoded size as a fraction of the input.
func BenchmarkCodec(b *testing.B) {
	for _, size := range []int{256, 4 << 10, 64 << 10} {
		in := testJSON(size)[:size]
		for _, enc := range []Encoding{Zstd, Brotli, Gzip} {
			c := NewCodec(enc, 128)
			out, err := c.Encode(in)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("op=encode/enc=%s/size=%d", enc, size), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				for b.Loop() {
					if _, err := c.Encode(in); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(len(out))/float64(size), "ratio")
			})
			b.Run(fmt.Sprintf("op=decode/enc=%s/size=%d", enc, size), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				for b.Loop() {
					if _, err := c.Decode(out); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
