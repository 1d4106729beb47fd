package compress

import (
	"io"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Shared, lazily built encoders and decoders. zstd encoders and decoders are
// safe for concurrent EncodeAll/DecodeAll and are shared per configuration;
// brotli and gzip writers are pooled per level.

var (
	zstdEncMu sync.Mutex
	zstdEncs  = map[int]*zstd.Encoder{} // by level; guarded by zstdEncMu

	zstdDecMu sync.Mutex
	zstdDecs  = map[int]*zstd.Decoder{} // by max decoded size; guarded by zstdDecMu

	brotliPoolMu sync.Mutex
	brotliPools  = map[int]*sync.Pool{} // by level; guarded by brotliPoolMu

	gzipPoolMu sync.Mutex
	gzipPools  = map[int]*sync.Pool{} // by level; guarded by gzipPoolMu

	brotliReaderPool = sync.Pool{New: func() any { return brotli.NewReader(nil) }}
	gzipReaderPool   sync.Pool // *gzip.Reader; New cannot build one without input
)

// sharedZstdEncoder returns the shared EncodeAll encoder for level.
func sharedZstdEncoder(level int) *zstd.Encoder {
	zstdEncMu.Lock()
	defer zstdEncMu.Unlock()
	if e, ok := zstdEncs[level]; ok {
		return e
	}
	// EncodeAll never starts goroutines; concurrency bounds the number of
	// encoder states kept (one per simultaneous EncodeAll).
	e, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstd.EncoderLevel(level)),
		zstd.WithEncoderConcurrency(0),
		zstd.WithLowerEncoderMem(true),
	)
	if err != nil {
		panic("compress: zstd encoder: " + err.Error()) // options are validated
	}
	zstdEncs[level] = e
	return e
}

// sharedZstdDecoder returns the shared DecodeAll decoder that refuses output
// beyond max bytes.
func sharedZstdDecoder(max int) *zstd.Decoder {
	zstdDecMu.Lock()
	defer zstdDecMu.Unlock()
	if d, ok := zstdDecs[max]; ok {
		return d
	}
	d, err := zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0),
		zstd.WithDecoderMaxMemory(uint64(max)),
		zstd.WithDecoderLowmem(true),
	)
	if err != nil {
		panic("compress: zstd decoder: " + err.Error()) // options are validated
	}
	zstdDecs[max] = d
	return d
}

func brotliPool(level int) *sync.Pool {
	brotliPoolMu.Lock()
	defer brotliPoolMu.Unlock()
	if p, ok := brotliPools[level]; ok {
		return p
	}
	p := &sync.Pool{New: func() any { return brotli.NewWriterLevel(nil, level) }}
	brotliPools[level] = p
	return p
}

func gzipPool(level int) *sync.Pool {
	gzipPoolMu.Lock()
	defer gzipPoolMu.Unlock()
	if p, ok := gzipPools[level]; ok {
		return p
	}
	p := &sync.Pool{New: func() any {
		w, err := gzip.NewWriterLevel(io.Discard, level)
		if err != nil {
			panic("compress: gzip writer: " + err.Error()) // level is validated
		}
		return w
	}}
	gzipPools[level] = p
	return p
}
