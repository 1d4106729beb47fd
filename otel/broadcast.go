package otel

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/outrigger-dev/outrigger/broadcast"
)

const (
	attrDestTemplate = attribute.Key("messaging.destination.template")
	attrSubscribers  = attribute.Key("outrigger.broadcast.subscribers")
)

// WithChannelTemplate sets how InstrumentBroadcast names a channel in span
// names and metric attributes (messaging.destination.template), which must
// have few values. The default keeps the channel up to its first ':'
// ("quotes:ACME" is "quotes"; a channel without ':' is itself). Spans also
// carry the full name in messaging.destination.name.
func WithChannelTemplate(f func(channel string) string) Option {
	return func(c *config) {
		if f != nil {
			c.chanTemplate = f
		}
	}
}

func defaultChannelTemplate(ch string) string {
	t, _, _ := strings.Cut(ch, ":")
	return t
}

// InstrumentBroadcast returns broadcast.Hooks that trace every message from
// its publisher to every Hub that hands it out, and record metrics, after
// the OpenTelemetry semantic conventions for messaging:
//
//   - Publish: a PRODUCER span "send <template>" (child of the caller's
//     span), whose trace context the propagator (WithPropagator) writes
//     into the message's headers; they travel with the message through
//     Redis to every Hub (not to browsers).
//   - Fan-out: on each Hub with subscribers of the channel, a CONSUMER span
//     "process <template>" (operation name deliver) per message, child of
//     the publisher's span and linked to it, lasting the hand-out to the
//     Hub's subscribers (attribute outrigger.broadcast.subscribers).
//   - A Go subscriber joins the trace with [BroadcastContext].
//
// Metrics, by messaging.destination.template (see WithChannelTemplate):
//
//	messaging.client.sent.messages        {message}      error.type on failure
//	messaging.client.operation.duration   s              publish calls
//	messaging.client.consumed.messages    {message}      messages a Hub handed out
//	messaging.process.duration            s              the hand-out to a Hub's subscribers
//	outrigger.broadcast.deliveries        {message}      kind (publication, join, leave), one per subscriber
//	outrigger.broadcast.recoveries        {subscription} Since positions honoured
//	outrigger.broadcast.recovered.messages {message}     messages they got from the history
//	outrigger.broadcast.resyncs           {resync}       reason (since, gap, slow)
//	outrigger.broadcast.gaps              {gap}          live messages missed and read from the history
//	outrigger.broadcast.slow_disconnects  {subscriber}   subscribers closed for falling behind
//	outrigger.broadcast.members           {member}       this Hub's presence members (up-down)
func InstrumentBroadcast(opts ...Option) (broadcast.Hooks, error) {
	cfg := newConfig(opts)
	m := cfg.meter()
	tr := cfg.tracer()
	prop := cfg.prop
	tmpl := cfg.chanTemplate
	sent, err0 := m.Int64Counter("messaging.client.sent.messages", metric.WithUnit("{message}"), metric.WithDescription("Messages published."))
	opDur, err1 := m.Float64Histogram("messaging.client.operation.duration", metric.WithUnit("s"), metric.WithDescription("Duration of publish calls."))
	consumed, err2 := m.Int64Counter("messaging.client.consumed.messages", metric.WithUnit("{message}"), metric.WithDescription("Messages a Hub handed out to its subscribers."))
	procDur, err3 := m.Float64Histogram("messaging.process.duration", metric.WithUnit("s"), metric.WithDescription("Duration of the hand-out of a message to a Hub's subscribers."))
	deliveries, err4 := m.Int64Counter("outrigger.broadcast.deliveries", metric.WithUnit("{message}"), metric.WithDescription("Messages handed to subscribers, one per subscriber."))
	recoveries, err5 := m.Int64Counter("outrigger.broadcast.recoveries", metric.WithUnit("{subscription}"), metric.WithDescription("Subscriptions whose Since position was honoured."))
	recovered, err6 := m.Int64Counter("outrigger.broadcast.recovered.messages", metric.WithUnit("{message}"), metric.WithDescription("Messages recovered subscriptions got from the history."))
	resyncs, err7 := m.Int64Counter("outrigger.broadcast.resyncs", metric.WithUnit("{resync}"), metric.WithDescription("Subscribers told to resync."))
	gaps, err8 := m.Int64Counter("outrigger.broadcast.gaps", metric.WithUnit("{gap}"), metric.WithDescription("Live messages missed and read from the history."))
	slow, err9 := m.Int64Counter("outrigger.broadcast.slow_disconnects", metric.WithUnit("{subscriber}"), metric.WithDescription("Subscribers closed for falling behind."))
	members, err10 := m.Int64UpDownCounter("outrigger.broadcast.members", metric.WithUnit("{member}"), metric.WithDescription("Presence members held by this Hub."))
	if err := errors.Join(err0, err1, err2, err3, err4, err5, err6, err7, err8, err9, err10); err != nil {
		return broadcast.Hooks{}, err
	}
	sys := attrSystem.String(System)
	var sets sync.Map // template -> *channelSets
	setsFor := func(ch string) *channelSets {
		t := tmpl(ch)
		if s, ok := sets.Load(t); ok {
			return s.(*channelSets)
		}
		s, _ := sets.LoadOrStore(t, newChannelSets(sys, t))
		return s.(*channelSets)
	}
	bg := context.Background()
	return broadcast.Hooks{
		OnPublish: func(ctx context.Context, ch string, headers map[string]string) context.Context {
			s := setsFor(ch)
			ctx, span := tr.Start(ctx, s.sendName, s.sendStart...)
			if span.IsRecording() {
				span.SetAttributes(attrDest.String(ch))
			}
			if span.SpanContext().IsValid() { // sampled or not, the consumers follow the decision
				prop.Inject(ctx, propagation.MapCarrier(headers))
			}
			return ctx
		},
		OnPublished: func(ctx context.Context, ch string, size int, pos broadcast.Position, d time.Duration, err error) {
			s := setsFor(ch)
			span := trace.SpanFromContext(ctx)
			if span.IsRecording() {
				span.SetAttributes(attrBodySize.Int(size))
			}
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
				e := metric.WithAttributes(sys, attrDestTemplate.String(s.template), attrOpName.String("publish"), attrErrorType.String(errorType(err, broadcastErrs)))
				sent.Add(bg, 1, e)
				opDur.Record(bg, d.Seconds(), e)
			} else {
				if span.IsRecording() {
					span.SetAttributes(attrMessageID.String(pos.String()))
				}
				sent.Add(bg, 1, s.publishAdd...)
				opDur.Record(bg, d.Seconds(), s.publishRec...)
			}
			span.End()
		},
		OnReceive: func(ch string, pos broadcast.Position, headers map[string]string, n int, d time.Duration) {
			s := setsFor(ch)
			consumed.Add(bg, 1, s.add...)
			procDur.Record(bg, d.Seconds(), s.deliverRec...)
			end := time.Now()
			ctx := bg
			var sc trace.SpanContext
			if len(headers) > 0 {
				sc = trace.SpanContextFromContext(prop.Extract(bg, propagation.MapCarrier(headers)))
				if sc.IsValid() {
					ctx = trace.ContextWithRemoteSpanContext(ctx, sc) // one trace from the publisher
				}
			}
			// The span starts with its parent, kind, static attributes and
			// start time only; what else it carries is added when it
			// records, so that with tracing off little is built.
			_, span := tr.Start(ctx, s.procName, s.procStart[0], s.procStart[1], trace.WithTimestamp(end.Add(-d)))
			if span.IsRecording() {
				if sc.IsValid() {
					span.AddLink(trace.Link{SpanContext: sc})
				}
				span.SetAttributes(attrDest.String(ch), attrMessageID.String(pos.String()), attrSubscribers.Int(n))
				span.End(trace.WithTimestamp(end))
				return
			}
			span.End()
		},
		OnDeliver: func(ch string, k broadcast.Kind, _ broadcast.Position) {
			s := setsFor(ch)
			if k >= broadcast.Publication && k <= broadcast.Leave {
				deliveries.Add(bg, 1, s.kinds[k]...)
			}
		},
		OnRecover: func(ch string, n int) {
			s := setsFor(ch)
			recoveries.Add(bg, 1, s.add...)
			recovered.Add(bg, int64(n), s.add...)
		},
		OnResync: func(ch string, r broadcast.ResyncReason) {
			s := setsFor(ch)
			if r >= broadcast.ResyncSince && r <= broadcast.ResyncSlow {
				resyncs.Add(bg, 1, s.reasons[r]...)
				return
			}
			resyncs.Add(bg, 1, metric.WithAttributes(sys, attrDestTemplate.String(s.template), attribute.String("reason", r.String())))
		},
		OnGap:            func(ch string) { gaps.Add(bg, 1, setsFor(ch).add...) },
		OnSlowDisconnect: func(ch string) { slow.Add(bg, 1, setsFor(ch).add...) },
		OnJoin:           func(ch string, _ broadcast.Member) { members.Add(bg, 1, setsFor(ch).add...) },
		OnLeave:          func(ch string, _ broadcast.Member) { members.Add(bg, -1, setsFor(ch).add...) },
	}, nil
}

// channelSets are the attribute sets of one channel template, built once.
type channelSets struct {
	template   string
	sendName   string // "send <template>"
	procName   string // "process <template>"
	sendStart  []trace.SpanStartOption
	procStart  [2]trace.SpanStartOption
	add        []metric.AddOption
	publishAdd []metric.AddOption
	publishRec []metric.RecordOption
	deliverRec []metric.RecordOption
	kinds      [broadcast.Leave + 1][]metric.AddOption
	reasons    [broadcast.ResyncSlow + 1][]metric.AddOption
}

func newChannelSets(sys attribute.KeyValue, t string) *channelSets {
	dt := attrDestTemplate.String(t)
	s := &channelSets{
		template: t,
		sendName: "send " + t,
		procName: "process " + t,
		sendStart: []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(sys, dt, attrOpType.String("send"), attrOpName.String("publish"))},
		procStart: [2]trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithAttributes(sys, dt, attrOpType.String("process"), attrOpName.String("deliver"))},
		add:        addOpts(sys, dt),
		publishAdd: addOpts(sys, dt, attrOpName.String("publish")),
		publishRec: recOpts(sys, dt, attrOpName.String("publish")),
		deliverRec: recOpts(sys, dt, attrOpName.String("deliver")),
	}
	for _, k := range []broadcast.Kind{broadcast.Publication, broadcast.Join, broadcast.Leave} {
		s.kinds[k] = addOpts(sys, dt, attribute.String("kind", k.String()))
	}
	for _, r := range []broadcast.ResyncReason{broadcast.ResyncSince, broadcast.ResyncGap, broadcast.ResyncSlow} {
		s.reasons[r] = addOpts(sys, dt, attribute.String("reason", r.String()))
	}
	return s
}

// broadcastErrs are broadcast's sentinel errors named in error.type.
var broadcastErrs = []namedErr{{broadcast.ErrClosed, "closed"}}

// BroadcastContext returns ctx carrying the trace context the publisher's
// InstrumentBroadcast hooks put in m's headers, as the remote parent: a span
// started from it joins the publisher's trace (add
// trace.WithLinks(trace.LinkFromContext(ctx)) to link it as well). Without
// trace context in m it returns ctx. opts may set the propagator
// (WithPropagator; default the global one). Baggage in the headers comes
// along.
func BroadcastContext(ctx context.Context, m broadcast.Message, opts ...Option) context.Context {
	if len(m.Headers) == 0 {
		return ctx
	}
	cfg := newConfig(opts)
	return cfg.prop.Extract(ctx, propagation.MapCarrier(m.Headers))
}
