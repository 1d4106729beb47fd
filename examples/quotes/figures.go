package main

import (
	"context"
	"encoding/json"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// replicaFigures is the JSON a replica publishes each second on
// "replicas": what the page shows about the service at work.
type replicaFigures struct {
	Replica string    `json:"replica"`
	At      time.Time `json:"at"`
	// Stopping is set in the last message of a replica shutting down.
	Stopping bool `json:"stopping,omitempty"`
	// FeedRate is the quotes per second this replica's feed callback
	// handed to the queue, StoredRate those it stored; Stored counts the
	// quotes it stored since it started.
	FeedRate   float64 `json:"feed_per_s"`
	StoredRate float64 `json:"stored_per_s"`
	Stored     float64 `json:"stored"`
	// Denied counts the requests the shared rate limit refused here.
	Denied float64 `json:"denied"`
	// Queue is the ingest queue's depth (ready, in flight and delayed), the
	// same for every replica.
	Queue float64 `json:"queue"`
	// Connections are the live WebSocket and SSE clients of this replica,
	// DeliveredRate the messages per second it hands them.
	Connections   int     `json:"connections"`
	DeliveredRate float64 `json:"delivered_per_s"`
	// CPU is the process's CPU use in cores, RSS its resident memory.
	CPU float64 `json:"cpu"`
	RSS float64 `json:"rss_bytes"`
}

// publishFigures publishes this replica's figures on "replicas" every
// second until close, and a last message saying it stops.
func (l *live) publishFigures() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var prev sample
	for {
		cur := l.sample()
		f := cur.figures(prev, l.s.cfg.replica)
		prev = cur
		select {
		case <-l.ctx.Done():
			f.Stopping = true
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			l.publishFigure(ctx, f)
			cancel()
			return
		default:
		}
		ctx, cancel := context.WithTimeout(l.ctx, time.Second)
		l.publishFigure(ctx, f)
		cancel()
		select {
		case <-t.C:
		case <-l.ctx.Done():
		}
	}
}

func (l *live) publishFigure(ctx context.Context, f replicaFigures) {
	data, err := json.Marshal(f)
	if err != nil {
		return
	}
	if _, err := l.hub.Publish(ctx, replicasChannel, data); err != nil && l.ctx.Err() == nil {
		l.s.log.Debug("live: publish figures", "err", err)
	}
}

// sample is a reading of the counters figures are computed from.
type sample struct {
	at                       time.Time
	fed, stored, denied, cpu float64
	queue, rss               float64
	delivered                uint64
	connections              int
}

// sample reads the replica's Prometheus registry and Hub counters.
func (l *live) sample() sample {
	s := sample{at: time.Now()}
	families, _ := l.s.metrics.reg.Gather() // a failing collector (the queue's) leaves its family out
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			v := metricValue(m)
			switch mf.GetName() {
			case "quotes_published_total":
				s.fed += v
			case "quotes_stored_total":
				s.stored += v
			case "ratelimit_decisions_total":
				if labelValue(m, "decision") == "denied" {
					s.denied += v
				}
			case "queue_messages":
				if labelValue(m, "state") != "dead" {
					s.queue += v
				}
			case "process_cpu_seconds_total":
				s.cpu += v
			case "process_resident_memory_bytes":
				s.rss += v
			}
		}
	}
	st := l.hub.Stats()
	s.delivered, s.connections = st.Delivered, st.Connections
	return s
}

func (s sample) figures(prev sample, replica string) replicaFigures {
	f := replicaFigures{Replica: replica, At: s.at.UTC(), Stored: s.stored, Denied: s.denied, Queue: s.queue,
		Connections: s.connections, RSS: s.rss}
	if secs := s.at.Sub(prev.at).Seconds(); !prev.at.IsZero() && secs > 0 {
		f.FeedRate = (s.fed - prev.fed) / secs
		f.StoredRate = (s.stored - prev.stored) / secs
		f.CPU = (s.cpu - prev.cpu) / secs
		f.DeliveredRate = float64(s.delivered-prev.delivered) / secs
	}
	return f
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
