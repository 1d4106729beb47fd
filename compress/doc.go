// Package compress provides HTTP compression middleware (zstd, brotli, gzip),
// request decompression, a static file server for pre-compressed assets, and
// value codecs for cache entries and queue payloads.
//
// # Value codec
//
// A [Codec] turns a []byte into a self-describing encoded form: one header
// byte (raw, zstd, brotli or gzip) followed by the payload. Values shorter than
// the codec's threshold, and values that do not shrink, are stored raw, so
// small values cost one byte and no CPU. Decode needs no configuration: any
// Codec decodes values written by any other, whatever its encoding or
// threshold, so the encoding of a cache can change without a flush. Decode
// refuses values whose decoded size exceeds a limit ([DefaultMaxDecodedSize]
// unless set with [CodecMaxDecodedSize]), so a corrupted or hostile stored
// value cannot exhaust memory.
//
//	codec := compress.NewCodec(compress.Zstd, 1024)
//	stored, err := codec.Encode(value)
//	value, err = codec.Decode(stored)
//
// The header byte values are a stable format and will not be renumbered.
package compress
