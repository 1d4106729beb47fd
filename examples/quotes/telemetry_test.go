package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/outrigger-dev/outrigger/internal/redistest"
)

// TestTraceOneQuote follows one quote through the service as one trace:
// the feed's callback span, the queue's producer and consumer spans, the
// database write, the live stream's publish and the Hub's hand-out to the
// page board's subscription. On the in-process backends and on Redis
// (where the trace context crosses Redis in the queue message's headers
// and the broadcast message's).
func TestTraceOneQuote(t *testing.T) {
	for _, backend := range []string{"in-process", "redis"} {
		t.Run(backend, func(t *testing.T) {
			cfg := testConfig(t)
			var db *redistest.DB
			if backend == "redis" {
				db = redistest.New(t)
				cfg.redisAddr, cfg.keyPrefix = db.Addrs[0], db.Prefix
			}
			cfg.feedRate = 0 // the one quote comes from a burst of 1
			exp := tracetest.NewInMemoryExporter()
			cfg.spanExporter = exp
			base, _ := startInProcess(t, cfg)

			// The board subscribes to every symbol's channel at start:
			// wait for it, so that the Hub hands the quote out live.
			require.Eventually(t, func() bool {
				code, body := get(t, base+"/v1/board", nil)
				var st boardState
				if code != http.StatusOK || json.Unmarshal(body, &st) != nil || len(st.Symbols) != len(symbols) {
					return false
				}
				for _, s := range st.Symbols {
					if s.Pos.Epoch == "" {
						return false
					}
				}
				return true
			}, 20*time.Second, 20*time.Millisecond)
			post(t, base+"/admin/feed/burst?n=1")

			var feed, send, proc, insert, live, hand *tracetest.SpanStub
			require.Eventually(t, func() bool {
				spans := exp.GetSpans()
				feed, send, proc, insert = byName(spans, "feed callback"), byName(spans, "send ingest"), byName(spans, "process ingest"), byName(spans, "INSERT quotes")
				live, hand = byName(spans, "send quotes"), byName(spans, "process quotes")
				return feed != nil && send != nil && proc != nil && insert != nil && live != nil && hand != nil
			}, 20*time.Second, 20*time.Millisecond, "the spans of the quote")

			tid := feed.SpanContext.TraceID()
			for _, s := range []*tracetest.SpanStub{send, proc, insert, live, hand} {
				assert.Equal(t, tid, s.SpanContext.TraceID(), "%s is in the feed callback's trace", s.Name)
			}
			parent := func(child, of *tracetest.SpanStub) {
				t.Helper()
				assert.Equal(t, of.SpanContext.SpanID(), child.Parent.SpanID(), "the parent of %s is %s", child.Name, of.Name)
			}
			parent(send, feed)
			parent(proc, send)
			parent(insert, proc)
			parent(live, proc)
			parent(hand, live)
			assert.True(t, hasLink(proc, send), "process ingest links to send ingest")
			assert.True(t, hasLink(insert, proc), "the INSERT links to the quote's consumer span")
			assert.True(t, hasLink(hand, live), "the Hub's process span links to the live publish")
			assert.Equal(t, trace.SpanKindProducer, send.SpanKind)
			assert.Equal(t, trace.SpanKindConsumer, proc.SpanKind)
			assert.Equal(t, trace.SpanKindClient, insert.SpanKind)
			assert.Equal(t, trace.SpanKindProducer, live.SpanKind)
			assert.Equal(t, trace.SpanKindConsumer, hand.SpanKind)
			assert.Equal(t, "sqlite", attrOf(insert, "db.system.name"))
			assert.Equal(t, "quotes", attrOf(insert, "db.collection.name"))
			assert.Equal(t, quoteChannelPrefix+attrOf(feed, "quote.symbol"), attrOf(live, "messaging.destination.name"))
			if db != nil {
				// the quote really crossed Redis: the ingest queue's and the
				// live channel's keys are there under the test's prefix
				for _, pat := range []string{"*ingest*", "*" + quoteChannelPrefix + "*"} {
					keys, err := db.Client.Keys(context.Background(), db.Prefix+pat).Result()
					require.NoError(t, err)
					assert.NotEmpty(t, keys, "no Redis key %s%s", db.Prefix, pat)
				}
			}

			// The Outrigger packages' metrics are on /metrics, beside the
			// service's own.
			m := scrape(t, base)
			assert.Equal(t, 1.0, m["quotes_published_total"])
			assert.True(t, hasMetric(m, "messaging_client_sent_messages"), "the queue's and the live stream's messaging metrics")
			assert.True(t, hasMetric(m, "outrigger_broadcast_deliveries"), "broadcast metrics")
			assert.True(t, hasMetric(m, "outrigger_compress_responses"), "compress metrics")
		})
	}
}

func byName(spans tracetest.SpanStubs, name string) *tracetest.SpanStub {
	for i := range spans {
		if spans[i].Name == name {
			return &spans[i]
		}
	}
	return nil
}

func hasLink(s, to *tracetest.SpanStub) bool {
	for _, l := range s.Links {
		if l.SpanContext.SpanID() == to.SpanContext.SpanID() {
			return true
		}
	}
	return false
}

func attrOf(s *tracetest.SpanStub, key string) string {
	for _, kv := range s.Attributes {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}

func hasMetric(m map[string]float64, prefix string) bool {
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}
