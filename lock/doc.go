// Package lock is a distributed lock with fencing tokens, auto-refresh,
// lost-lock signalling and Redlock quorum, on Redis or in-process.
//
// Status: planned; the API lands with its issue.
package lock
