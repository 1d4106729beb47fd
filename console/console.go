package console

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/broadcast"
	"github.com/outrigger-dev/outrigger/cache"
	"github.com/outrigger-dev/outrigger/lock"
	"github.com/outrigger-dev/outrigger/queue"
	"github.com/outrigger-dev/outrigger/ratelimit"
	"github.com/outrigger-dev/outrigger/scheduler"
)

// Verb is what a request does.
type Verb string

// Verbs. Read covers every page and every GET of the JSON API; the others
// are the actions, each a POST.
const (
	Read         Verb = "read"
	Requeue      Verb = "requeue"       // dead letters back to their queue
	Delete       Verb = "delete"        // dead letters, for good
	Trigger      Verb = "trigger"       // run a job now
	Pause        Verb = "pause"         // a queue's consumption, a job's ticks
	Resume       Verb = "resume"        // what Pause paused
	ForceRelease Verb = "force-release" // take a lock from its holder
	Reset        Verb = "reset"         // a rate-limit key
	Invalidate   Verb = "invalidate"    // a cache key, on every replica
)

// Action is what a request asks to do, passed to Config.Authorize: the
// verb, the kind of thing ("queue", "job", "lock", "limit", "cache",
// "channel", "audit", or "" for the overview) and its name (a queue's or
// job's name, a lock key, "<limiter>/<key>", "<cache>/<key>"; "" for a
// listing).
type Action struct {
	Verb   Verb   `json:"verb"`
	Kind   string `json:"kind,omitempty"`
	Target string `json:"target,omitempty"`
}

// String returns "verb kind:target", e.g. "requeue queue:orders".
func (a Action) String() string {
	s := string(a.Verb)
	if a.Kind != "" {
		s += " " + a.Kind
		if a.Target != "" {
			s += ":" + a.Target
		}
	}
	return s
}

// ErrUnauthenticated may be wrapped by the error Config.Authorize returns
// for a request that carries no credentials: the console then answers 401
// instead of 403.
var ErrUnauthenticated = errors.New("console: unauthenticated")

// ErrReadOnly is what an action gets from a read-only console.
var ErrReadOnly = errors.New("console: read-only")

// Limiter is a rate limiter shown on the rate-limit page.
type Limiter struct {
	// Name names it in the console ("api", "login").
	Name string
	// Inspector reads its keys; take it from the limiter
	// ([ratelimit.RedisLimiter.Inspector]) so that it knows the limits.
	Inspector *ratelimit.Inspector
}

// Cache is a cache shown on the cache page.
type Cache struct {
	// Name names it in the console.
	Name string
	// Inspector reads its Redis tier and invalidates keys.
	Inspector *cache.Inspector
	// Stats, when set, returns this replica's counters of the cache
	// (Cache.Stats), shown beside the Redis side.
	Stats func() cache.Stats
}

// Config configures a console. Every inspector is optional: the pages of
// those left nil are not shown.
type Config struct {
	// Title is shown in the header (default "Outrigger").
	Title string

	// Queues, Jobs and Locks are the inspectors of the queue, scheduler
	// and lock packages (queue.NewInspector, ...).
	Queues *queue.Inspector
	Jobs   *scheduler.Inspector
	Locks  *lock.Inspector
	// LockFence, when set, is advanced by a force release for the
	// resource named like the lock's key (lock.AdvanceFence), so that the
	// old holder's writes through it are refused at once.
	LockFence *lock.Fence
	// Limiters and Caches are shown on their pages.
	Limiters []Limiter
	Caches   []Cache
	// Channels is the inspector of the broadcast Hubs: live channels with
	// their subscribers per replica and presence.
	Channels *broadcast.Inspector

	// Authorize decides every request: a page or GET of the API (Verb
	// Read), and every action. A non-nil error refuses it (403, or 401
	// when it wraps ErrUnauthenticated) and is shown to the user. nil
	// allows everything: mount the console behind your own
	// authentication, or set Authorize.
	Authorize func(r *http.Request, a Action) error
	// ReadOnly refuses every action, whatever Authorize says, and hides
	// the buttons.
	ReadOnly bool
	// User names who made a request, for the audit record and the pause
	// flags (default: the Basic-auth user name if any, else
	// "anonymous@<remote address>").
	User func(r *http.Request) string

	// Logger receives the audit record of every action, at Info level
	// (refused ones at Warn), with the user, the action and its outcome.
	// Default: slog.Default().
	Logger *slog.Logger
	// AuditRedis, when set, also keeps the audit records in a capped
	// Redis stream (AuditKey, at most AuditMaxLen records), shown on the
	// audit page and read by the outrigger CLI.
	AuditRedis redis.UniversalClient
	// AuditKey is the audit stream's key (default DefaultAuditKey).
	AuditKey string
	// AuditMaxLen caps the audit stream, approximately (default 10000).
	AuditMaxLen int64

	// Refresh is how often the open page refreshes itself (default 5s;
	// negative turns it off).
	Refresh time.Duration
}

// DefaultAuditKey is the default key of the audit stream.
const DefaultAuditKey = "outrigger:console:audit"
