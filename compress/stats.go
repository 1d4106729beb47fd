package compress

import "sync/atomic"

// Stats counts what a Middleware did, for metrics. Pass it with WithStats;
// read it with Snapshot. The zero value is ready to use, and it is safe for
// concurrent use by multiple goroutines. Counting costs a few atomic
// additions per response and no allocation.
type Stats struct {
	compressed [numEncodings]atomic.Uint64
	identity   atomic.Uint64
	bytesIn    atomic.Uint64
	bytesOut   atomic.Uint64
}

// StatsSnapshot is a point-in-time copy of Stats.
type StatsSnapshot struct {
	// Compressed counts responses sent with each encoding.
	Compressed map[Encoding]uint64
	// Identity counts responses sent unencoded (too small, not
	// compressible, not accepted, ...). Hijacked connections are not counted.
	Identity uint64
	// BytesIn is the uncompressed size of the compressed responses' bodies.
	BytesIn uint64
	// BytesOut is their compressed size, padding included.
	BytesOut uint64
}

// Snapshot returns the current counters.
func (s *Stats) Snapshot() StatsSnapshot {
	snap := StatsSnapshot{
		Compressed: make(map[Encoding]uint64, numEncodings),
		Identity:   s.identity.Load(),
		BytesIn:    s.bytesIn.Load(),
		BytesOut:   s.bytesOut.Load(),
	}
	for _, e := range []Encoding{Zstd, Brotli, Gzip} {
		snap.Compressed[e] = s.compressed[e.index()].Load()
	}
	return snap
}

// WithStats makes the middleware count its decisions and bytes into s,
// which may be shared by several middlewares. A nil s disables counting.
func WithStats(s *Stats) Option {
	return func(c *config) error {
		c.stats = s
		return nil
	}
}

// countingWriter counts the bytes a compressor writes to the response.
type countingWriter struct {
	rw *responseWriter
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.rw.w.Write(p)
	c.rw.out += int64(n)
	return n, err
}
