package broadcast

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// SlowPolicy is what a Hub does with a subscriber whose buffer is full.
type SlowPolicy int

const (
	// Disconnect closes the slow subscriber: a WebSocket gets close code
	// 1013 (try again later), an SSE stream ends, a Subscription's Next
	// returns ErrSlowSubscriber. The default.
	Disconnect SlowPolicy = iota + 1
	// Resync drops the buffered messages and tells the subscriber to reload
	// its state: a WebSocket gets a resync frame per channel (and must
	// subscribe again), an SSE stream a resync event, a Subscription's Next
	// returns ErrResync and then carries on with newer messages.
	Resync
)

// String returns "disconnect" or "resync".
func (p SlowPolicy) String() string {
	switch p {
	case Disconnect:
		return "disconnect"
	case Resync:
		return "resync"
	}
	return fmt.Sprintf("SlowPolicy(%d)", int(p))
}

// Defaults of the options.
const (
	DefaultHistorySize    = 256
	DefaultHistoryTTL     = 10 * time.Minute
	DefaultPositionTTL    = 24 * time.Hour
	DefaultPresenceTTL    = 5 * time.Second
	DefaultBufferMessages = 1024
	DefaultBufferBytes    = 1 << 20
	DefaultMaxMessageSize = 64 << 10
)

// Option configures a Hub built by New or NewLocal.
type Option func(*config)

type config struct {
	prefix         string
	nodeID         string
	logger         *slog.Logger
	historySize    int
	historyTTL     time.Duration
	positionTTL    time.Duration
	positionTTLSet bool
	presenceTTL    time.Duration
	bufMessages    int
	bufBytes       int
	slow           SlowPolicy
	maxMessage     int
	hooks          Hooks
	now            func() time.Time // local backend's clock (tests)
	errs           []error
}

func defaultConfig() config {
	return config{
		prefix:      "broadcast:",
		historySize: DefaultHistorySize,
		historyTTL:  DefaultHistoryTTL,
		positionTTL: DefaultPositionTTL,
		presenceTTL: DefaultPresenceTTL,
		bufMessages: DefaultBufferMessages,
		bufBytes:    DefaultBufferBytes,
		slow:        Disconnect,
		maxMessage:  DefaultMaxMessageSize,
		now:         time.Now,
	}
}

func (c *config) bad(format string, args ...any) {
	c.errs = append(c.errs, invalidf(format, args...))
}

func newConfig(opts []Option) (config, error) {
	c := defaultConfig()
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	if c.nodeID == "" {
		c.nodeID = randomID(8)
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if !c.positionTTLSet && c.historyTTL > c.positionTTL {
		c.positionTTL = c.historyTTL
	}
	if c.positionTTL < c.historyTTL {
		c.bad("WithPositionTTL must be >= the history ttl %v, got %v", c.historyTTL, c.positionTTL)
	}
	return c, errors.Join(c.errs...)
}

// WithPrefix sets the prefix of every Redis key and pub/sub channel
// (default "broadcast:"). Hubs that must see each other's messages use the
// same prefix. It must not contain '{' or '}' (the channel name is the key's
// Redis Cluster hash tag).
func WithPrefix(p string) Option {
	return func(c *config) {
		if strings.ContainsAny(p, "{}") {
			c.bad("WithPrefix must not contain '{' or '}', got %q", p)
		}
		c.prefix = p
	}
}

// WithNodeID names this Hub in presence (Member.Node) and in its Redis keys
// (default: 16 random hex digits). Each live Hub needs its own; 1..64 bytes
// of letters, digits, '-', '_' and '.'.
func WithNodeID(id string) Option {
	return func(c *config) {
		if err := checkNodeID(id); err != nil {
			c.errs = append(c.errs, err)
		}
		c.nodeID = id
	}
}

func checkNodeID(id string) error {
	if len(id) == 0 || len(id) > 64 {
		return invalidf("WithNodeID must be 1..64 bytes, got %d", len(id))
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return invalidf("WithNodeID may hold only letters, digits, '-', '_' and '.', got %q", id)
		}
	}
	return nil
}

// WithLogger sets the logger for connection and pub/sub events (default:
// silent).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithHistory keeps the last size messages of every channel for ttl after
// the channel's last message, so that a subscriber that reconnects with
// Since recovers what it missed (default 256 messages, 10 minutes). (0, 0)
// keeps none: subscribers still see positions, and a Since that is not the
// channel's current position gets ErrResync.
func WithHistory(size int, ttl time.Duration) Option {
	return func(c *config) {
		switch {
		case size < 0:
			c.bad("WithHistory size must be >= 0, got %d", size)
		case ttl < 0:
			c.bad("WithHistory ttl must be >= 0, got %v", ttl)
		case (size == 0) != (ttl == 0):
			c.bad("WithHistory size and ttl must both be 0 (no history) or both > 0, got %d and %v", size, ttl)
		case ttl > 0 && ttl < time.Millisecond:
			c.bad("WithHistory ttl must be >= 1ms, got %v", ttl)
		}
		c.historySize, c.historyTTL = size, ttl
	}
}

// WithPositionTTL sets how long a channel's epoch and offset outlive its
// last message (default 24 hours, at least the history ttl). While they
// live, a subscriber whose position is current recovers with nothing
// missing even after the history expired; after that the channel starts a
// new epoch and old positions get ErrResync.
func WithPositionTTL(d time.Duration) Option {
	return func(c *config) {
		if d < time.Millisecond {
			c.bad("WithPositionTTL must be >= 1ms, got %v", d)
		}
		c.positionTTL, c.positionTTLSet = d, true
	}
}

// WithPresenceTTL sets the Hub's liveness lease (default 5s, at least
// 100ms): a Hub that stops renewing it (killed, partitioned) has its
// members dropped from Presence, and Leave events published for them,
// within d.
func WithPresenceTTL(d time.Duration) Option {
	return func(c *config) {
		if d < 100*time.Millisecond {
			c.bad("WithPresenceTTL must be >= 100ms, got %v", d)
		}
		c.presenceTTL = d
	}
}

// WithClientBuffer bounds what a Hub buffers for one connection or
// Subscription that does not keep up: at most messages messages and bytes
// bytes (default 1024 and 1 MiB). When either is exceeded WithSlowClient
// decides. A recovery (Since) that needs more than this gets ErrResync.
func WithClientBuffer(messages, bytes int) Option {
	return func(c *config) {
		if messages < 1 {
			c.bad("WithClientBuffer messages must be >= 1, got %d", messages)
		}
		if bytes < 1 {
			c.bad("WithClientBuffer bytes must be >= 1, got %d", bytes)
		}
		c.bufMessages, c.bufBytes = messages, bytes
	}
}

// WithSlowClient sets what happens to a subscriber whose buffer is full:
// Disconnect (the default) or Resync.
func WithSlowClient(p SlowPolicy) Option {
	return func(c *config) {
		if p != Disconnect && p != Resync {
			c.bad("WithSlowClient must be Disconnect or Resync, got %v", p)
		}
		c.slow = p
	}
}

// WithMaxMessageSize sets the largest data Publish accepts, and the largest
// Member.Info (default 64 KiB, at least 16 bytes).
func WithMaxMessageSize(bytes int) Option {
	return func(c *config) {
		if bytes < 16 {
			c.bad("WithMaxMessageSize must be >= 16, got %d", bytes)
		}
		c.maxMessage = bytes
	}
}

// SubscribeOption configures one Subscribe call.
type SubscribeOption func(*subConfig)

type subConfig struct {
	since    Position
	hasSince bool
	member   *Member
	events   bool
}

// Since asks for every message published after pos (from the history),
// then the live ones, with no gap and no duplicate. Subscription.Recovered
// reports whether it was honoured; when the history no longer covers pos
// the first Next returns ErrResync.
func Since(pos Position) SubscribeOption {
	return func(c *subConfig) { c.since, c.hasSince = pos, true }
}

// AsMember makes m appear in the channel's Presence, on every Hub, while
// the subscription is open (m.ClientID must be set; m.Node is set by the
// Hub).
func AsMember(m Member) SubscribeOption {
	return func(c *subConfig) { c.member = &m }
}

// PresenceEvents also delivers Join and Leave messages for the channel.
func PresenceEvents() SubscribeOption { return func(c *subConfig) { c.events = true } }

func (c *config) checkMember(m *Member) error {
	if m.ClientID == "" || len(m.ClientID) > 255 {
		return invalidf("Member.ClientID must be 1..255 bytes, got %d", len(m.ClientID))
	}
	if len(m.UserID) > 255 {
		return invalidf("Member.UserID must be at most 255 bytes, got %d", len(m.UserID))
	}
	if len(m.Info) > 0 {
		if len(m.Info) > c.maxMessage {
			return invalidf("Member.Info is %d bytes, over WithMaxMessageSize %d", len(m.Info), c.maxMessage)
		}
		if !json.Valid(m.Info) {
			return invalidf("Member.Info must be valid JSON")
		}
	}
	return nil
}

func (c *config) checkData(data []byte) error {
	if len(data) > c.maxMessage {
		return invalidf("data is %d bytes, over WithMaxMessageSize %d", len(data), c.maxMessage)
	}
	if !json.Valid(data) {
		return invalidf("data must be one valid JSON value")
	}
	return nil
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func errorf(base error, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{base}, args...)...)
}
