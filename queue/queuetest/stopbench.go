package queuetest

import (
	"testing"
	"time"

	"github.com/outrigger-dev/outrigger/queue"
)

// BenchStop runs MeasureStop b.N times on q in the state sc (handlers of
// 20 ms) and reports the stop time beyond
// the running handlers: ns/op and stop-ms/op are its mean, p50-ms, p99-ms
// and max-ms its distribution. The time spent bringing the consumer to its
// steady state is not counted.
func BenchStop(b *testing.B, q queue.Queue, sc StopCase, opts ...queue.ConsumeOption) {
	b.Helper()
	ss := make([]StopSample, 0, b.N)
	for b.Loop() {
		ss = append(ss, MeasureStop(b, q, sc, 20*time.Millisecond, opts...))
	}
	var sum time.Duration
	for _, s := range ss {
		sum += s.Overhead
	}
	mean := sum / time.Duration(len(ss))
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(float64(mean), "ns/op")
	b.ReportMetric(ms(mean), "stop-ms/op")
	b.ReportMetric(ms(StopPercentile(ss, 50)), "p50-ms")
	b.ReportMetric(ms(StopPercentile(ss, 99)), "p99-ms")
	b.ReportMetric(ms(StopPercentile(ss, 100)), "max-ms")
}
