package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/outrigger-dev/outrigger/console"
)

// emit prints v as JSON with --json, else calls table.
func (a *app) emit(v any, table func(t *tabwriter.Writer)) error {
	if a.o.json {
		enc := json.NewEncoder(a.out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	t := tabwriter.NewWriter(a.out, 0, 0, 2, ' ', 0)
	table(t)
	return t.Flush()
}

// row writes one tab-separated line.
func row(t *tabwriter.Writer, cols ...any) {
	for i, c := range cols {
		if i > 0 {
			fmt.Fprint(t, "\t")
		}
		fmt.Fprint(t, c)
	}
	fmt.Fprintln(t)
}

// done reports an action: JSON {"action":..., "detail":...} or the detail.
func (a *app) done(ctx context.Context, act console.Action, detail string, err error) error {
	a.audit(ctx, act, detail, err)
	if err != nil {
		if detail != "" {
			return fmt.Errorf("%s: %w", detail, err)
		}
		return err
	}
	if a.o.json {
		return a.emit(map[string]any{"action": act, "detail": detail}, nil)
	}
	_, werr := fmt.Fprintln(a.out, detail)
	return werr
}

// audit records an action in the console's audit stream.
func (a *app) audit(ctx context.Context, act console.Action, detail string, err error) {
	if a.o.auditKey == "" {
		return
	}
	user := a.getenv("USER")
	if user == "" {
		user = "unknown"
	}
	host, _ := os.Hostname()
	rec := console.AuditRecord{User: user + "@" + host, Source: "cli", Action: act, Detail: detail, Outcome: "ok"}
	if err != nil {
		rec.Outcome = "failed: " + err.Error()
	}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	// the record goes to the stream; the command's own output says what happened
	_ = console.NewAuditor(slog.New(slog.DiscardHandler), a.c, a.o.auditKey, 0).Record(actx, rec)
}

// Formatting for tables.

func dur(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return fmt.Sprintf("%dd%02dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	if d < time.Second {
		return "just now"
	}
	return dur(d) + " ago"
}

func until(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Until(t)
	if d <= 0 {
		return "now"
	}
	return "in " + dur(d)
}

func rate(v float64) string {
	if v <= 0 {
		return "0/s"
	}
	if v < 1 {
		return strconv.FormatFloat(v*60, 'f', 0, 64) + "/min"
	}
	if v < 10 {
		return strconv.FormatFloat(v, 'f', 1, 64) + "/s"
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + "/s"
}

// cell makes s fit a table cell: one line, at most n runes.
func cell(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "-"
	}
	if utf8.RuneCountInString(s) > n {
		r := []rune(s)
		return string(r[:n-1]) + "…"
	}
	return s
}

// body shows a message body in a cell.
func body(b []byte, n int) string {
	if !utf8.Valid(b) {
		return fmt.Sprintf("<%d bytes>", len(b))
	}
	return cell(string(b), n)
}
