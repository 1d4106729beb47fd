package main

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the service's Prometheus metrics, on its own registry so that
// tests can run several services in one process.
type metrics struct {
	reg *prometheus.Registry

	requests        *prometheus.CounterVec   // by route and code
	latency         *prometheus.HistogramVec // by route
	quotesPublished prometheus.Counter
	quotesStored    prometheus.Counter
	quotesDuplicate prometheus.Counter
	batchSize       prometheus.Histogram
	limiter         *prometheus.CounterVec // by decision and source
	jobRuns         *prometheus.CounterVec // by job and outcome
	rollupRuns      prometheus.Counter
}

func newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"route"}),
		quotesPublished: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "quotes_published_total", Help: "Quotes from the feed published to the queue by this replica.",
		}),
		quotesStored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "quotes_stored_total", Help: "Quotes written to the database (new rows) by this replica.",
		}),
		quotesDuplicate: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "quotes_duplicate_total", Help: "Redelivered quotes the database already had.",
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "quotes_batch_size", Help: "Quotes per database write.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		limiter: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ratelimit_decisions_total", Help: "Rate limiter decisions by outcome and deciding path.",
		}, []string{"decision", "source"}),
		jobRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "job_runs_total", Help: "Scheduled job runs on this replica by job and outcome.",
		}, []string{"job", "outcome"}),
		rollupRuns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rollup_runs_total", Help: "Roll-up job runs on this replica.",
		}),
	}
	reg.MustRegister(m.requests, m.latency, m.quotesPublished, m.quotesStored, m.quotesDuplicate,
		m.batchSize, m.limiter, m.jobRuns, m.rollupRuns,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observe registers the metrics read from the service's parts when scraped:
// database statements, cache results per tier, queue depth by state.
func (m *metrics) observe(s *service) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "db_statements_total", Help: "SQL statements sent to the database.",
	}, func() float64 { return float64(s.db.statements.Load()) }))
	for result, read := range map[string]func() uint64{
		"hit_local": func() uint64 { return s.cache.Stats().LocalHits },
		"hit_redis": func() uint64 { return s.cache.Stats().RedisHits },
		"miss":      func() uint64 { return s.cache.Stats().Misses },
	} {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "cache_requests_total", Help: "Quote cache lookups by result (hit per tier, miss).",
			ConstLabels: prometheus.Labels{"result": result},
		}, func() float64 { return float64(read()) }))
	}
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "cache_loads_total", Help: "Database loads made by the quote cache.",
	}, func() float64 { return float64(s.cache.Stats().Loads) }))
	m.reg.MustRegister(&queueCollector{s: s, desc: prometheus.NewDesc("queue_messages",
		"Messages in the ingest queue by state.", []string{"state"}, nil)})
}

// queueCollector reads the queue's counts at scrape time.
type queueCollector struct {
	s    *service
	desc *prometheus.Desc
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	st, err := c.s.queue.Stats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for state, v := range map[string]int64{"ready": st.Ready, "in_flight": st.InFlight, "delayed": st.Delayed, "dead": st.Dead} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(v), state)
	}
}

// handler serves the metrics in the Prometheus text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// instrument counts and times requests to route.
func (m *metrics) instrument(route string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		m.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
		m.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

// statusWriter records the status code a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
