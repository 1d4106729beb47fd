package cache

import (
	"sync"

	"github.com/outrigger-dev/outrigger/compress"
)

// defaultCompressor is the Compressor used when WithCompression is not
// given: zstd (the compress package's value Codec), applied to encoded
// values of at least DefaultCompressionThreshold bytes.
var defaultCompressor = sync.OnceValue(func() Compressor {
	return compress.NewCodec(compress.Zstd, 0)
})

var _ Compressor = (*compress.Codec)(nil)
