// Package cachebench compares Outrigger's cache with go-redis/cache v9 (with
// its local TinyLFU) on the same Redis: local hit, Redis hit, miss+load,
// a 16-replica stampede and invalidation latency. See RESULTS.md.
package cachebench
