// Package ratelimit provides GCRA and window rate limiters that decide in one
// Redis round trip, in-process limiters, and HTTP middleware.
//
// Status: planned; the API lands with its issue.
package ratelimit
