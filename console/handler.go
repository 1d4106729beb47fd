package console

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// handler is the console: one value per Handler call, safe for concurrent
// use (it holds configuration and parsed templates only).
type handler struct {
	cfg     Config
	audit   *Auditor
	pages   map[string]*template.Template
	static  http.Handler
	mux     *http.ServeMux
	refresh time.Duration
}

// Handler returns the console: its pages, their JSON API under /api/ and
// its static files. It works under any path prefix (mount it with
// http.StripPrefix: every link is relative), sets a strict
// Content-Security-Policy, refuses cross-origin and token-less actions
// (CSRF), asks cfg.Authorize about every request, and audits every
// action. See the package documentation.
func Handler(cfg Config) http.Handler {
	if cfg.Title == "" {
		cfg.Title = "Outrigger"
	}
	h := &handler{
		cfg:     cfg,
		audit:   NewAuditor(cfg.Logger, cfg.AuditRedis, cfg.AuditKey, cfg.AuditMaxLen),
		pages:   map[string]*template.Template{},
		refresh: cfg.Refresh,
	}
	if h.refresh == 0 {
		h.refresh = 5 * time.Second
	}
	for _, p := range []string{"overview", "queue", "jobs", "job", "locks", "limits", "caches", "channels", "audit", "error"} {
		h.pages[p] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+p+".html"))
	}
	sub, _ := fs.Sub(staticFS, "static")
	h.static = http.StripPrefix("/static/", http.FileServerFS(sub))
	h.routes()
	cop := http.NewCrossOriginProtection()
	return securityHeaders(cop.Handler(h.mux))
}

// securityHeaders sets the CSP and friends on every response.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}

// page is a GET handler: it returns the page's view (also the API's JSON)
// and the template to render it with, or an error.
type page func(w http.ResponseWriter, r *http.Request) (tmpl string, view any, err error)

// action is a POST handler: it does the action and returns what to record
// and show ("12 requeued") or an error.
type action func(r *http.Request) (detail string, err error)

// httpError is an error with a status code.
type httpError struct {
	code int
	err  error
}

func (e *httpError) Error() string { return e.err.Error() }
func (e *httpError) Unwrap() error { return e.err }

func badRequest(format string, args ...any) error {
	return &httpError{code: http.StatusBadRequest, err: fmt.Errorf(format, args...)}
}

func notFound(format string, args ...any) error {
	return &httpError{code: http.StatusNotFound, err: fmt.Errorf(format, args...)}
}

func (h *handler) routes() {
	m := http.NewServeMux()
	h.mux = m
	m.Handle("GET /static/", h.static)
	get := func(path, apiPath, kind string, p page) {
		hf := func(api bool) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) { h.serveGet(w, r, api, kind, p) }
		}
		if path != "" {
			m.Handle("GET "+path, hf(false))
		}
		m.Handle("GET /api"+apiPath, hf(true))
	}
	post := func(path string, verb Verb, kind string, target func(*http.Request) string, back func(*http.Request) string, a action) {
		hf := func(api bool) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				h.servePost(w, r, api, Action{Verb: verb, Kind: kind, Target: target(r)}, back(r), a)
			}
		}
		m.Handle("POST "+path, hf(false))
		m.Handle("POST /api"+path, hf(true))
	}
	name := func(r *http.Request) string { return r.PathValue("name") }
	form := func(k string) func(*http.Request) string {
		return func(r *http.Request) string { return r.PostFormValue(k) }
	}
	back := func(to string) func(*http.Request) string {
		return func(r *http.Request) string { return to }
	}

	get("/{$}", "/overview", "", h.overview)
	if h.cfg.Queues != nil {
		get("/queues/{name}", "/queues/{name}", "queue", h.queuePage)
		get("", "/queues", "queue", h.queueList)
		get("", "/queues/{name}/history", "queue", h.queueHistory)
		queueBack := func(r *http.Request) string {
			q := url.Values{"state": {r.PostFormValue("state")}, "error": {r.PostFormValue("error")}}
			return "queues/" + url.PathEscape(r.PathValue("name")) + "?" + q.Encode()
		}
		post("/queues/{name}/requeue", Requeue, "queue", name, queueBack, h.queueRequeue)
		post("/queues/{name}/delete", Delete, "queue", name, queueBack, h.queueDelete)
		post("/queues/{name}/pause", Pause, "queue", name, queueBack, h.queuePause)
		post("/queues/{name}/resume", Resume, "queue", name, queueBack, h.queueResume)
	}
	if h.cfg.Jobs != nil {
		get("/jobs", "/jobs", "job", h.jobsPage)
		get("/jobs/{name}", "/jobs/{name}", "job", h.jobPage)
		jobBack := func(r *http.Request) string {
			if r.PostFormValue("from") == "list" {
				return "jobs"
			}
			return "jobs/" + url.PathEscape(r.PathValue("name"))
		}
		post("/jobs/{name}/trigger", Trigger, "job", name, jobBack, h.jobTrigger)
		post("/jobs/{name}/pause", Pause, "job", name, jobBack, h.jobPause)
		post("/jobs/{name}/resume", Resume, "job", name, jobBack, h.jobResume)
	}
	if h.cfg.Locks != nil {
		get("/locks", "/locks", "lock", h.locksPage)
		post("/locks/release", ForceRelease, "lock", form("key"), back("locks"), h.lockRelease)
	}
	if len(h.cfg.Limiters) > 0 {
		get("/limits", "/limits", "limit", h.limitsPage)
		limitTarget := func(r *http.Request) string { return r.PostFormValue("limiter") + "/" + r.PostFormValue("key") }
		limitBack := func(r *http.Request) string {
			return "limits?" + url.Values{"limiter": {r.PostFormValue("limiter")}, "key": {r.PostFormValue("key")}}.Encode()
		}
		post("/limits/reset", Reset, "limit", limitTarget, limitBack, h.limitReset)
	}
	if len(h.cfg.Caches) > 0 {
		get("/caches", "/caches", "cache", h.cachesPage)
		cacheTarget := func(r *http.Request) string { return r.PostFormValue("cache") + "/" + r.PostFormValue("key") }
		cacheBack := func(r *http.Request) string {
			return "caches?" + url.Values{"cache": {r.PostFormValue("cache")}, "key": {r.PostFormValue("key")}}.Encode()
		}
		post("/caches/invalidate", Invalidate, "cache", cacheTarget, cacheBack, h.cacheInvalidate)
	}
	if h.cfg.Channels != nil {
		get("/channels", "/channels", "channel", h.channelsPage)
	}
	get("/audit", "/audit", "audit", h.auditPage)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h.fail(w, r, strings.HasPrefix(r.URL.Path, "/api/"), notFound("no page %s", r.URL.Path))
	})
}

// common is what every page's view carries.
type common struct {
	Title    string    `json:"-"`
	Base     string    `json:"-"`
	CSRF     string    `json:"-"`
	User     string    `json:"user"`
	ReadOnly bool      `json:"read_only"`
	Now      time.Time `json:"now"`
	Flash    string    `json:"-"`
	FlashErr bool      `json:"-"`
	Nav      string    `json:"-"`
	Refresh  int       `json:"-"` // ms; 0 off
	Has      struct {
		Queues, Jobs, Locks, Limits, Caches, Channels bool
	} `json:"-"`
	req *http.Request
	h   *handler
}

// Can reports whether the user may do verb on kind:target (templates).
func (c common) Can(verb, kind, target string) bool {
	return c.h.can(c.req, Action{Verb: Verb(verb), Kind: kind, Target: target})
}

func (h *handler) common(r *http.Request, nav string) common {
	c := common{
		Title: h.cfg.Title, Base: base(r), User: h.user(r), ReadOnly: h.cfg.ReadOnly, Now: time.Now(), Nav: nav,
		Flash: r.URL.Query().Get("flash"), FlashErr: r.URL.Query().Get("failed") == "1", req: r, h: h,
	}
	c.CSRF, _ = r.Context().Value(csrfKey{}).(string)
	if h.refresh > 0 {
		c.Refresh = int(h.refresh.Milliseconds())
	}
	c.Has.Queues, c.Has.Jobs, c.Has.Locks = h.cfg.Queues != nil, h.cfg.Jobs != nil, h.cfg.Locks != nil
	c.Has.Limits, c.Has.Caches = len(h.cfg.Limiters) > 0, len(h.cfg.Caches) > 0
	c.Has.Channels = h.cfg.Channels != nil
	return c
}

// reqCtx bounds the Redis work of one request.
func reqCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 30*time.Second)
}

func (h *handler) serveGet(w http.ResponseWriter, r *http.Request, api bool, kind string, p page) {
	a := Action{Verb: Read, Kind: kind, Target: r.PathValue("name")}
	if err := h.authorize(r, a); err != nil {
		h.fail(w, r, api, &httpError{code: authStatus(err), err: err})
		return
	}
	tok := ensureCSRF(w, r)
	r = r.WithContext(context.WithValue(r.Context(), csrfKey{}, tok))
	tmpl, view, err := p(w, r)
	if err != nil {
		h.fail(w, r, api, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if api || tmpl == "" {
		w.Header().Set(csrfHeader, tok)
		writeJSON(w, http.StatusOK, view)
		return
	}
	h.render(w, r, http.StatusOK, tmpl, view)
}

func (h *handler) render(w http.ResponseWriter, r *http.Request, code int, tmpl string, view any) {
	t := h.pages[tmpl]
	name := "layout.html"
	if r.Header.Get("X-Console-Partial") == "1" {
		name = "content"
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, view); err != nil {
		http.Error(w, "console: rendering "+tmpl+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// errorView is the error page's view.
type errorView struct {
	common
	Code    int    `json:"code"`
	Message string `json:"error"`
}

func (h *handler) fail(w http.ResponseWriter, r *http.Request, api bool, err error) {
	code := http.StatusInternalServerError
	var he *httpError
	switch {
	case errors.As(err, &he):
		code = he.code
	case errors.Is(err, context.DeadlineExceeded):
		code = http.StatusGatewayTimeout
	}
	if api {
		writeJSON(w, code, map[string]any{"error": err.Error(), "code": code})
		return
	}
	v := errorView{common: h.common(r, ""), Code: code, Message: err.Error()}
	v.Refresh = 0
	h.render(w, r, code, "error", v)
}

// actionResult is the API's answer to an action.
type actionResult struct {
	Action Action `json:"action"`
	Detail string `json:"detail"`
}

func (h *handler) servePost(w http.ResponseWriter, r *http.Request, api bool, a Action, back string, do action) {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		h.fail(w, r, api, badRequest("console: bad form: %v", err))
		return
	}
	rec := AuditRecord{User: h.user(r), Source: "console", Remote: remoteHost(r), Action: a}
	if api {
		rec.Source = "api"
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	if err := checkCSRF(r); err != nil {
		rec.Outcome = "denied: " + err.Error()
		_ = h.audit.Record(ctx, rec)
		h.fail(w, r, api, &httpError{code: http.StatusForbidden, err: err})
		return
	}
	if err := h.authorize(r, a); err != nil {
		rec.Outcome = "denied: " + err.Error()
		_ = h.audit.Record(ctx, rec)
		h.fail(w, r, api, &httpError{code: authStatus(err), err: err})
		return
	}
	detail, err := do(r)
	rec.Detail = detail
	rec.Outcome = "ok"
	if err != nil {
		rec.Outcome = "failed: " + err.Error()
	}
	_ = h.audit.Record(ctx, rec)
	if err != nil {
		if api {
			h.fail(w, r, true, err)
			return
		}
		msg := err.Error()
		if detail != "" {
			msg = detail + " — " + msg
		}
		h.redirect(w, r, back, msg, true)
		return
	}
	if api {
		writeJSON(w, http.StatusOK, actionResult{Action: a, Detail: detail})
		return
	}
	h.redirect(w, r, back, detail, false)
}

// redirect sends the browser back to a page (relative to the console's
// root) with a message.
func (h *handler) redirect(w http.ResponseWriter, r *http.Request, to, flash string, failed bool) {
	u, _ := url.Parse(to)
	q := u.Query()
	if flash != "" {
		q.Set("flash", flash)
	}
	if failed {
		q.Set("failed", "1")
	}
	u.RawQuery = q.Encode()
	// Not http.Redirect: it would make the URL absolute from the path the
	// handler saw, without the prefix StripPrefix removed.
	w.Header().Set("Location", base(r)+u.String())
	w.WriteHeader(http.StatusSeeOther)
}

// csrfKey carries the request's CSRF token to its page's view.
type csrfKey struct{}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// ctxT shortens the inspectors' method types in views.go.
type ctxT = context.Context

// detached is a context for an action that must not stop halfway when the
// client goes away, bounded by d.
func detached(r *http.Request, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(r.Context()), d)
}
