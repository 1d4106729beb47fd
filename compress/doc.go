// Package compress provides HTTP compression middleware (zstd, brotli, gzip)
// and value codecs for cache entries and queue payloads.
//
// Status: planned; the API lands with its issue.
package compress
