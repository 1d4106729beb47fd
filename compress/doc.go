// Package compress provides HTTP response compression (zstd, brotli, gzip),
// request decompression, a static file server for pre-compressed assets, and
// value codecs for cache entries and queue payloads.
//
// # Response compression
//
// [Middleware] negotiates the encoding per RFC 9110 §12.5.3 ([Negotiate]) and
// compresses only when it helps and is safe: not below [MinSize], not for
// already-compressed media types, responses with a Content-Encoding or
// Content-Range, 1xx/204/206/304 responses, or Cache-Control: no-transform.
// It keeps HTTP semantics intact: Vary: Accept-Encoding merged with the
// handler's, a distinct ETag per encoding with If-None-Match/If-Match
// translated back (on a copy of the request) so http.ServeContent still
// answers 304, no Content-Length or Accept-Ranges on encoded bodies, HEAD
// answered with the headers of GET. Flush flushes the compressor, so
// Server-Sent Events stream; Hijack and http.ResponseController pass through.
// zstd and brotli use 128 KiB windows and single-threaded encoders, so an
// in-flight response costs about 2 MiB (zstd level 2, brotli 4; gzip 5 about
// 1 MiB) instead of the 8–10 MiB of those libraries' defaults. Encoders are
// pooled per level, and a response allocates nothing in the steady state.
// [BreachPadding] adds random padding against BREACH; [WithStats] counts.
//
//	mw, err := compress.Middleware() // zstd, br, gzip; MinSize 1 KiB
//	if err != nil { ... }
//	http.ListenAndServe(":8080", mw(mux))
//
// # Request decompression
//
// [DecompressRequests] decodes gzip, zstd and br request bodies with a limit
// on the decoded size: a zip bomb gets 413, an unknown coding 415.
//
// # Pre-compressed static files
//
// [FileServer] serves name.zst, name.br or name.gz in place of name when the
// client accepts it, with the original's Content-Type, a strong per-encoding
// ETag and Vary; Range requests are served from the identity file only.
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
//
// # What it does not do
//
// A HEAD request whose handler neither sets Content-Length nor writes the
// body cannot be judged by size and gets identity headers. Brotli is not
// negotiated while BreachPadding is on. Header values the middleware sets
// (Content-Encoding, Vary) may share backing arrays between responses: treat
// header slices as read-only, as net/http does.
package compress
