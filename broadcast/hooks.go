package broadcast

import (
	"context"
	"strconv"
	"time"
)

// Hooks are optional callbacks for metrics and tracing, set with
// [WithHooks] on either backend (New, NewLocal). Each is called
// synchronously, some with a channel's lock held, so it must be fast and
// must not block, panic or call the Hub; a nil field costs nothing (no
// allocation). The module github.com/outrigger-dev/outrigger/otel turns them
// into OpenTelemetry spans and metrics and carries W3C trace context in the
// messages' headers.
type Hooks struct {
	// OnPublish is called before each Publish that passed validation, with
	// the caller's ctx, the channel and the message's headers: an empty
	// map, never nil, which it may add to (trace context). The headers
	// travel with the message (through Redis's publish script, the history
	// and the pub/sub frames) to every Hub, whose OnReceive gets them and
	// whose Subscriptions return them in Message.Headers; they are not sent
	// to browsers. The context it returns is the one OnPublished gets.
	OnPublish func(ctx context.Context, channel string, headers map[string]string) context.Context
	// OnPublished is called after each such Publish, with the data's size
	// in bytes, the position (zero on error), how long the backend took and
	// the error.
	OnPublished func(ctx context.Context, channel string, size int, pos Position, d time.Duration, err error)
	// OnReceive is called once per publication this Hub hands out to its
	// subscribers of channel (live, or read from the history after a gap),
	// after it did: with the publisher's headers, the number of subscribers
	// it went to and how long that took. What a Since subscription reads
	// from the history is reported by OnRecover instead.
	OnReceive func(channel string, pos Position, headers map[string]string, subscribers int, d time.Duration)
	// OnDeliver is called for each message handed to one subscriber (a
	// Subscription, a WebSocket or SSE connection's subscription): what
	// Stats.Delivered counts. kind is Publication, Join or Leave.
	OnDeliver func(channel string, kind Kind, pos Position)
	// OnRecover is called when a subscription's Since position was
	// honoured (Stats.Recovered), with the number of messages it got back
	// from the history.
	OnRecover func(channel string, messages int)
	// OnResync is called each time a subscriber is told to resync
	// (Stats.Resyncs), with why.
	OnResync func(channel string, reason ResyncReason)
	// OnGap is called when the Hub missed live messages of channel (a
	// pub/sub reconnect, an offset gap) and reads them from the history
	// (Stats.GapRecoveries).
	OnGap func(channel string)
	// OnSlowDisconnect is called when a subscriber is closed because its
	// buffer was full under the Disconnect policy (Stats.SlowDisconnects),
	// with the channel whose message did not fit.
	OnSlowDisconnect func(channel string)
	// OnJoin and OnLeave are called when a member of this Hub (AsMember,
	// Identify) joins or leaves channel's presence, Close included.
	OnJoin, OnLeave func(channel string, m Member)
}

// ResyncReason says why a subscriber was told to resync.
type ResyncReason int

// Reasons for a resync.
const (
	// ResyncSince: the history did not cover the subscriber's Since
	// position (it overflowed or expired, or the epoch changed).
	ResyncSince ResyncReason = iota + 1
	// ResyncGap: the Hub missed live messages the history no longer held.
	ResyncGap
	// ResyncSlow: the subscriber fell behind under the Resync policy.
	ResyncSlow
)

// String returns "since", "gap" or "slow".
func (r ResyncReason) String() string {
	switch r {
	case ResyncSince:
		return "since"
	case ResyncGap:
		return "gap"
	case ResyncSlow:
		return "slow"
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// WithHooks sets callbacks for metrics and tracing (see [Hooks]).
func WithHooks(h Hooks) Option { return func(c *config) { c.hooks = h } }

// resynced counts a resync of one subscriber and runs OnResync.
func (h *Hub) resynced(channel string, r ResyncReason) {
	h.stats.resyncs.Add(1)
	if f := h.cfg.hooks.OnResync; f != nil {
		f(channel, r)
	}
}

// slowDisconnected counts a slow subscriber closed and runs
// OnSlowDisconnect.
func (h *Hub) slowDisconnected(channel string) {
	h.stats.slow.Add(1)
	if f := h.cfg.hooks.OnSlowDisconnect; f != nil {
		f(channel)
	}
}
