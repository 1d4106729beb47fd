package console

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// AuditRecord is one action, as the console (or the outrigger CLI)
// records it.
type AuditRecord struct {
	// Time is when the action was done.
	Time time.Time `json:"time"`
	// User is who did it (Config.User), Source where from ("console",
	// "cli", "api") and Remote the client's address.
	User   string `json:"user"`
	Source string `json:"source"`
	Remote string `json:"remote,omitempty"`
	// Action is what was asked.
	Action Action `json:"action"`
	// Detail says what it applied to and what it did ("filter \"timeout\":
	// 120 requeued").
	Detail string `json:"detail,omitempty"`
	// Outcome is "ok", "denied: <why>" or "failed: <error>".
	Outcome string `json:"outcome"`
	// ID is the record's stream entry ID (when read back).
	ID string `json:"id,omitempty"`
}

// Auditor writes audit records to a logger and, optionally, a capped
// Redis stream, and reads the stream back. The console and the outrigger
// CLI use it; it is safe for concurrent use.
type Auditor struct {
	log    *slog.Logger
	client redis.UniversalClient
	key    string
	maxLen int64
}

// NewAuditor returns an auditor logging to log (nil: slog.Default()) and,
// when client is not nil, adding every record to the stream key (""
// means DefaultAuditKey) capped at about maxLen records (<= 0: 10000).
func NewAuditor(log *slog.Logger, client redis.UniversalClient, key string, maxLen int64) *Auditor {
	if log == nil {
		log = slog.Default()
	}
	if key == "" {
		key = DefaultAuditKey
	}
	if maxLen <= 0 {
		maxLen = 10000
	}
	return &Auditor{log: log, client: client, key: key, maxLen: maxLen}
}

// Record logs rec (Warn when denied or failed, Info otherwise) and adds it
// to the stream. A stream that cannot be written is reported in the log
// and returned; the action it records has happened anyway.
func (a *Auditor) Record(ctx context.Context, rec AuditRecord) error {
	if rec.Time.IsZero() {
		rec.Time = time.Now()
	}
	level := slog.LevelInfo
	if rec.Outcome != "ok" {
		level = slog.LevelWarn
	}
	a.log.Log(ctx, level, "outrigger console: action", "user", rec.User, "source", rec.Source, "remote", rec.Remote,
		"action", rec.Action.String(), "detail", rec.Detail, "outcome", rec.Outcome)
	if a.client == nil {
		return nil
	}
	err := a.client.XAdd(ctx, &redis.XAddArgs{
		Stream: a.key, MaxLen: a.maxLen, Approx: true,
		Values: []any{
			"t", strconv.FormatInt(rec.Time.UnixMilli(), 10), "user", rec.User, "source", rec.Source,
			"remote", rec.Remote, "verb", string(rec.Action.Verb), "kind", rec.Action.Kind,
			"target", rec.Action.Target, "detail", rec.Detail, "outcome", rec.Outcome,
		},
	}).Err()
	if err != nil {
		a.log.Error("outrigger console: writing the audit stream failed", "key", a.key, "err", err)
		return fmt.Errorf("console: audit: %w", err)
	}
	return nil
}

// Recent returns up to n records, the newest first (none without a
// Redis client).
func (a *Auditor) Recent(ctx context.Context, n int) ([]AuditRecord, error) {
	if a.client == nil || n <= 0 {
		return []AuditRecord{}, nil
	}
	xs, err := a.client.XRevRangeN(ctx, a.key, "+", "-", int64(n)).Result()
	if err != nil {
		return nil, fmt.Errorf("console: audit: %w", err)
	}
	out := make([]AuditRecord, 0, len(xs))
	for _, x := range xs {
		s := func(k string) string { v, _ := x.Values[k].(string); return v }
		ms, _ := strconv.ParseInt(s("t"), 10, 64)
		out = append(out, AuditRecord{
			ID: x.ID, Time: time.UnixMilli(ms), User: s("user"), Source: s("source"), Remote: s("remote"),
			Action: Action{Verb: Verb(s("verb")), Kind: s("kind"), Target: s("target")},
			Detail: s("detail"), Outcome: s("outcome"),
		})
	}
	return out, nil
}

// Enabled reports whether records go to a Redis stream.
func (a *Auditor) Enabled() bool { return a.client != nil }
