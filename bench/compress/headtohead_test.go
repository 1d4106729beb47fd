package compressbench

import (
	"net/http"
	"testing"
	"time"

	"github.com/klauspost/compress/gzhttp"

	"github.com/outrigger-dev/outrigger/compress"
)

// BenchmarkGzipHeadToHead serves the same gzip response through compress
// and through gzhttp alternately in one loop, timing each call, so both see
// the same machine load: on a shared, noisy machine this comparison is far
// more stable than two separate benchmarks. It reports ns/op of each and
// their ratio (outrigger / gzhttp, lower is better for outrigger).
func BenchmarkGzipHeadToHead(b *testing.B) {
	ours, err := compress.Middleware()
	if err != nil {
		b.Fatal(err)
	}
	theirs, err := gzhttp.NewWrapper()
	if err != nil {
		b.Fatal(err)
	}
	for _, sz := range sizes {
		body := realisticJSON(sz.n)
		b.Run("size="+sz.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(2 * len(body)))
			hs := [2]http.Handler{ours(jsonHandler(body)), theirs(jsonHandler(body))}
			var spent [2]time.Duration
			var out [2]int64
			w, req := newPair("gzip")
			i := 0
			for b.Loop() {
				for k := range 2 {
					k := (k + i) & 1 // alternate which goes first
					clear(w.h)
					w.n = 0
					start := time.Now()
					hs[k].ServeHTTP(w, req)
					spent[k] += time.Since(start)
					out[k] = w.n
				}
				i++
			}
			if i == 0 {
				return
			}
			o, t := float64(spent[0])/float64(i), float64(spent[1])/float64(i)
			b.ReportMetric(o, "outrigger-ns/op")
			b.ReportMetric(t, "gzhttp-ns/op")
			b.ReportMetric(o/t, "time-ratio")
			b.ReportMetric(float64(out[0])/float64(out[1]), "size-ratio")
		})
	}
}
