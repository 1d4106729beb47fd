package main

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/outrigger-dev/outrigger/broadcast"
)

// The page at /: server-rendered from the board, then kept live by
// static/app.js over the broadcast WebSocket (static/broadcast.js is
// broadcast.ClientJS). Every URL in it is relative, so the service works
// under a path prefix (http.StripPrefix).

//go:embed web
var webFS embed.FS

var pageTemplate = template.Must(template.ParseFS(webFS, "web/index.html"))

// pageConfig is what app.js needs besides the board: where to connect.
type pageConfig struct {
	// Endpoints are the WebSocket endpoints to try in turn: this replica's
	// (relative to the page), then the -peers.
	Endpoints []string `json:"endpoints"`
	Symbols   []string `json:"symbols"`
}

// pageRow is a symbol's row as first rendered.
type pageRow struct {
	Symbol, Price, Change, Trend, StoredBy string
	Updates, Viewers                       int
}

// pageFigures are the service figures as first rendered.
type pageFigures struct {
	Ingest, Stored, StoredRate, Queue, Denied string
	Viewers                                   int
}

type pageData struct {
	Replica  string
	DB       string
	State    boardState
	Config   pageConfig
	Rows     []pageRow
	Figures  pageFigures
	Replicas []replicaFigures
}

// pages serves the page and its assets.
func (l *live) pages() http.Handler {
	static, err := fs.Sub(webFS, "web/static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	mux := http.NewServeMux()
	mux.Handle("GET /static/broadcast.js", broadcast.ClientJS)
	mux.Handle("GET /static/", http.StripPrefix("/static/", revalidate(http.FileServerFS(static))))
	mux.HandleFunc("GET /{$}", l.servePage)
	return mux
}

// revalidate makes browsers revalidate assets (they change with the binary).
func revalidate(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	})
}

func (l *live) servePage(w http.ResponseWriter, r *http.Request) {
	st := l.board.snapshot(l.s.cfg.replica)
	d := pageData{Replica: l.s.cfg.replica, DB: dbLabel(l.s.db.d.name), State: st, Replicas: st.Replicas}
	d.Config = pageConfig{Endpoints: l.endpoints(r), Symbols: symbols}
	for _, sb := range st.Symbols {
		row := pageRow{Symbol: sb.Symbol, Price: "–", Change: "", Updates: int(sb.Updates), Viewers: st.Viewers.Symbols[sb.Symbol], StoredBy: "–"}
		if sb.Last != nil {
			row.Price = fmt.Sprintf("%.2f", sb.Last.Price)
			row.StoredBy = sb.Last.StoredBy
			if len(sb.Points) > 0 && sb.Points[0].P > 0 {
				ch := (sb.Last.Price/sb.Points[0].P - 1) * 100
				row.Change = fmt.Sprintf("%+.2f%%", ch)
				row.Trend = map[bool]string{true: "up", false: "down"}[ch >= 0]
			}
		}
		d.Rows = append(d.Rows, row)
	}
	agg := aggregate(st.Replicas, time.Now())
	var stored uint64 // every stored quote is published once: the channels' offsets count them
	for _, sb := range st.Symbols {
		stored += sb.Pos.Offset
	}
	d.Figures = pageFigures{
		Ingest: fmt.Sprintf("%.0f", agg.FeedRate), Stored: groupDigits(int64(stored)),
		StoredRate: fmt.Sprintf("%.0f", agg.StoredRate), Queue: groupDigits(int64(agg.Queue)),
		Denied: groupDigits(int64(agg.Denied)), Viewers: st.Viewers.Total,
	}
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, d); err != nil {
		l.s.log.Error("render page", "err", err)
		writeError(w, http.StatusInternalServerError, "page failed to render")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", l.contentSecurityPolicy(r))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	_, _ = w.Write(buf.Bytes())
}

func dbLabel(name string) string {
	if name == "postgres" {
		return "PostgreSQL"
	}
	return "SQLite"
}

// endpoints lists the WebSocket endpoints the page tries: its own replica
// first, then the other -peers.
func (l *live) endpoints(r *http.Request) []string {
	out := []string{"v1/live"}
	for _, u := range l.peers {
		if strings.EqualFold(u.Host, r.Host) {
			continue
		}
		out = append(out, strings.TrimRight(u.String(), "/")+"/v1/live")
	}
	return out
}

// contentSecurityPolicy allows only the page's own scripts and styles, and
// connections to its host and the peers.
func (l *live) contentSecurityPolicy(r *http.Request) string {
	connect := []string{"'self'", "ws://" + r.Host, "wss://" + r.Host}
	for _, u := range l.peers {
		connect = append(connect, u.Scheme+"://"+u.Host, map[string]string{"http": "ws", "https": "wss"}[u.Scheme]+"://"+u.Host)
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src " + strings.Join(connect, " ") +
		"; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

// aggregate sums the figures of the replicas heard from in the last 3s
// (the queue depth is shared: the latest report).
func aggregate(rs []replicaFigures, now time.Time) replicaFigures {
	var sum replicaFigures
	var latest time.Time
	for _, r := range rs {
		if r.Stopping || now.Sub(r.At) > 3*time.Second {
			continue
		}
		sum.FeedRate += r.FeedRate
		sum.StoredRate += r.StoredRate
		sum.Stored += r.Stored
		sum.Denied += r.Denied
		sum.Connections += r.Connections
		if r.At.After(latest) {
			latest, sum.Queue = r.At, r.Queue
		}
	}
	return sum
}

// groupDigits formats n with thin-space thousands separators.
func groupDigits(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteString(",")
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
