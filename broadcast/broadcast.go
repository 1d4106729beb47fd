package broadcast

import (
	"encoding/json"
	"errors"
	"strconv"
	"unicode/utf8"
)

// Errors returned by the package. Match them with errors.Is.
var (
	// ErrInvalidArgument: a bad channel name, data that is not one JSON
	// value, a message over WithMaxMessageSize, a bad option.
	ErrInvalidArgument = errors.New("broadcast: invalid argument")
	// ErrResync: the history no longer covers what the subscriber missed
	// (it overflowed or expired, or the channel's epoch changed). The
	// subscriber must reload its state; the subscription carries on with
	// the messages that follow.
	ErrResync = errors.New("broadcast: resync needed")
	// ErrForbidden: Authorize refused the action.
	ErrForbidden = errors.New("broadcast: forbidden")
	// ErrClosed: the Hub or the Subscription is closed.
	ErrClosed = errors.New("broadcast: closed")
	// ErrSlowSubscriber: the subscription's buffer filled up and the policy
	// is Disconnect; the subscription is closed.
	ErrSlowSubscriber = errors.New("broadcast: subscriber too slow")
)

// Limits on names.
const (
	// MaxChannelLen is the longest channel name, in bytes.
	MaxChannelLen = 255
)

// Position is a place in a channel's stream: the epoch of its history and
// the offset of a message in it. Offsets start at 1 and grow by one per
// message; the epoch changes when the history is lost (a Redis restarted
// empty, expired keys), so an old position is never mistaken for a new one.
// The zero Position means "no position".
type Position struct {
	Epoch  string
	Offset uint64
}

// IsZero reports whether p is the zero Position.
func (p Position) IsZero() bool { return p.Epoch == "" && p.Offset == 0 }

// String returns "epoch:offset".
func (p Position) String() string { return p.Epoch + ":" + strconv.FormatUint(p.Offset, 10) }

// Kind says what a Message is.
type Kind int

// Kinds of Message.
const (
	// Publication is a message published with Hub.Publish.
	Publication Kind = iota + 1
	// Join: Member started a subscription with AsMember (PresenceEvents only).
	Join
	// Leave: Member's subscription ended, or its Hub died (PresenceEvents only).
	Leave
)

// String returns "publication", "join" or "leave".
func (k Kind) String() string {
	switch k {
	case Publication:
		return "publication"
	case Join:
		return "join"
	case Leave:
		return "leave"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Message is what a Subscription delivers. For a Publication, Data is the
// JSON value published and Position its place in the channel, and Headers
// what the publisher's Hooks.OnPublish added (trace context; nil when
// none); for Join and Leave, Member says who (Position is zero).
type Message struct {
	Kind     Kind
	Channel  string
	Data     []byte
	Position Position
	Member   Member
	Headers  map[string]string
}

// Member is a participant of a channel's presence. ClientID identifies one
// connection or subscription (unique per Hub); UserID the person or service
// behind it; Node the Hub that holds it (set by the Hub); Info is any JSON
// the application attaches (at most WithMaxMessageSize bytes).
type Member struct {
	ClientID string          `json:"client"`
	UserID   string          `json:"user,omitempty"`
	Node     string          `json:"node,omitempty"`
	Info     json.RawMessage `json:"info,omitempty"`
}

// Action is what a connection asks to do on a channel, for Authorize.
type Action int

// Actions checked by Authorize.
const (
	// ActionSubscribe: receive the channel's messages.
	ActionSubscribe Action = iota + 1
	// ActionPublish: publish on the channel from the connection. Denied
	// unless Authorize allows it.
	ActionPublish
	// ActionPresence: list the channel's members.
	ActionPresence
)

// String returns "subscribe", "publish" or "presence".
func (a Action) String() string {
	switch a {
	case ActionSubscribe:
		return "subscribe"
	case ActionPublish:
		return "publish"
	case ActionPresence:
		return "presence"
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// Stats are a Hub's counters since it was created.
type Stats struct {
	// Connections is the number of open WebSocket and SSE connections.
	Connections int
	// Subscriptions is the number of open subscriptions (Go and
	// connections), Channels the number of channels with at least one.
	Subscriptions, Channels int
	// Published counts successful Publish calls on this Hub.
	Published uint64
	// Delivered counts messages handed to subscribers (one per subscriber).
	Delivered uint64
	// Recovered counts subscriptions whose Since position was honoured.
	Recovered uint64
	// Resyncs counts ErrResync / resync frames sent to subscribers.
	Resyncs uint64
	// SlowDisconnects counts subscriptions and connections closed because
	// their buffer was full (policy Disconnect).
	SlowDisconnects uint64
	// GapRecoveries counts the times the Hub missed live messages (a
	// pub/sub reconnect, an offset gap) and read them from the history.
	GapRecoveries uint64
	// PubSubReconnects counts pub/sub connections re-established.
	PubSubReconnects uint64
}

// checkChannel validates a channel name.
func checkChannel(ch string) error {
	if len(ch) == 0 || len(ch) > MaxChannelLen {
		return invalidf("channel name must be 1..%d bytes, got %d", MaxChannelLen, len(ch))
	}
	for i := 0; i < len(ch); i++ {
		if ch[i] < 0x20 || ch[i] == 0x7f {
			return invalidf("channel name must not contain control characters, got %q", ch)
		}
	}
	if !utf8.ValidString(ch) {
		return invalidf("channel name must be valid UTF-8, got %q", ch)
	}
	return nil
}

func invalidf(format string, args ...any) error {
	return errorf(ErrInvalidArgument, format, args...)
}
