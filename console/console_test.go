package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/broadcast"
	"github.com/outrigger-dev/outrigger/cache"
	"github.com/outrigger-dev/outrigger/console"
	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/lock"
	"github.com/outrigger-dev/outrigger/queue"
	"github.com/outrigger-dev/outrigger/ratelimit"
	"github.com/outrigger-dev/outrigger/scheduler"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// scene is a small service really running every package against Redis:
// a queue with dead letters, jobs on a scheduler, a held lock, a limited
// key and a cached value.
type scene struct {
	db     *redistest.DB
	q      *queue.Redis
	cfg    console.Config
	holder *lock.Lock
	logs   *bytes.Buffer
}

func newScene(t *testing.T) *scene {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	db := redistest.New(t)
	s := &scene{db: db, logs: &bytes.Buffer{}}
	var err error
	s.q, err = queue.NewRedis(db.Client, "orders", queue.WithPrefix(db.Prefix))
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.q.Close() })
	var bodies [][]byte
	for i := range 12 {
		bodies = append(bodies, fmt.Appendf(nil, `{"order":%d}`, i))
	}
	_, err = s.q.PublishBatch(ctx, bodies)
	require.NoError(t, err)
	consumed(t, s.q, 12)

	sched, err := scheduler.New(db.NewClient(t), scheduler.WithNamespace(db.Prefix+"jobs:"), scheduler.WithNodeID("replica-1"))
	require.NoError(t, err)
	require.NoError(t, sched.Every("rollup", time.Second, func(ctx context.Context, r scheduler.Run) error { return nil }))
	require.NoError(t, sched.Cron("purge", "0 30 3 * * *", func(ctx context.Context, r scheduler.Run) error { return nil }))
	require.NoError(t, sched.Start(ctx))
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = sched.Stop(sctx)
	})

	locker, err := lock.New(db.Client, lock.WithPrefix(db.Prefix+"lock:"))
	require.NoError(t, err)
	s.holder, err = locker.TryAcquire(ctx, "reports:daily", time.Minute)
	require.NoError(t, err)

	lim, err := ratelimit.NewRedis(db.Client, ratelimit.PerMinute(10), ratelimit.WithPrefix(db.Prefix+"rl:"))
	require.NoError(t, err)
	for range 3 {
		_, err := lim.Allow(ctx, "user:42")
		require.NoError(t, err)
	}

	c, err := cache.New[string](cache.WithRedis(db.Client), cache.WithPrefix(db.Prefix+"cache:"), cache.WithLocal(100, time.Minute))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	_, err = c.Fetch(ctx, "quote:ACME", func(context.Context) (string, error) { return "42.00", nil })
	require.NoError(t, err)

	hub, err := broadcast.New(db.NewClient(t), broadcast.WithPrefix(db.Prefix+"bc:"), broadcast.WithNodeID("replica-1"),
		broadcast.WithPresenceTTL(400*time.Millisecond))
	require.NoError(t, err)
	t.Cleanup(func() { _ = hub.Close() })
	sub, err := hub.Subscribe(ctx, "quotes:ACME", broadcast.AsMember(broadcast.Member{ClientID: "c1", UserID: "ann"}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Close() })
	bi, err := broadcast.NewInspector(db.Client, broadcast.WithPrefix(db.Prefix+"bc:"))
	require.NoError(t, err)

	qi, err := queue.NewInspector(db.Client, queue.WithPrefix(db.Prefix))
	require.NoError(t, err)
	ji, err := scheduler.NewInspector(db.Client, scheduler.WithNamespace(db.Prefix+"jobs:"))
	require.NoError(t, err)
	li, err := lock.NewInspector(db.Client, lock.WithPrefix(db.Prefix+"lock:"))
	require.NoError(t, err)
	ci, err := cache.NewInspector(db.Client, cache.WithPrefix(db.Prefix+"cache:"))
	require.NoError(t, err)
	s.cfg = console.Config{
		Title: "Test service", Queues: qi, Jobs: ji, Locks: li,
		Limiters:   []console.Limiter{{Name: "api", Inspector: lim.Inspector()}},
		Caches:     []console.Cache{{Name: "quotes", Inspector: ci, Stats: c.Stats}},
		Channels:   bi,
		Logger:     slog.New(slog.NewTextHandler(s.logs, nil)),
		AuditRedis: db.Client, AuditKey: db.Prefix + "audit",
	}
	require.Eventually(t, func() bool {
		js, err := ji.Jobs(ctx)
		return err == nil && len(js) == 2
	}, 30*time.Second, 20*time.Millisecond, "the scheduler did not register its jobs")
	return s
}

// consumed runs a consumer on q until n messages were handled: odd orders
// fail for good (two kinds of errors), even ones succeed.
func consumed(t *testing.T, q *queue.Redis, n int) {
	t.Helper()
	var mu sync.Mutex // protects seen
	seen := 0
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = q.Consume(ctx, func(ctx context.Context, m *queue.Message) error {
			defer func() { mu.Lock(); seen++; mu.Unlock() }()
			var o struct{ Order int }
			if err := json.Unmarshal(m.Body, &o); err != nil || o.Order%2 == 0 {
				return err
			}
			if o.Order%4 == 1 {
				return queue.Permanent(fmt.Errorf("payment gateway timeout after 30s (order %d)", o.Order))
			}
			return queue.Permanent(errors.New("card declined"))
		}, queue.ConsumerName("worker-a"))
	}()
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return seen >= n }, 30*time.Second, 5*time.Millisecond)
	cancel()
	<-done
}

// client talks to a console mounted at prefix, keeping cookies, not
// following redirects.
type client struct {
	t      *testing.T
	srv    *httptest.Server
	prefix string
	http   *http.Client
}

func mount(t *testing.T, prefix string, h http.Handler) *client {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(prefix, http.StripPrefix(strings.TrimSuffix(prefix, "/"), h))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	return &client{t: t, srv: srv, prefix: prefix, http: &http.Client{
		Jar: jar, Timeout: 2 * time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (c *client) url(path string) string { return c.srv.URL + c.prefix + strings.TrimPrefix(path, "/") }

func (c *client) get(path string) (int, string, http.Header) {
	c.t.Helper()
	resp, err := c.http.Get(c.url(path))
	require.NoError(c.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func (c *client) getJSON(path string, v any) {
	c.t.Helper()
	code, body, _ := c.get(path)
	require.Equal(c.t, http.StatusOK, code, body)
	require.NoError(c.t, json.Unmarshal([]byte(body), v), body)
}

func (c *client) csrf() string {
	u, _ := url.Parse(c.url(""))
	for _, ck := range c.http.Jar.Cookies(u) {
		if ck.Name == "outrigger_console_csrf" {
			return ck.Value
		}
	}
	return ""
}

// post sends an action as a browser form would, with the CSRF token and
// the page's origin.
func (c *client) post(path string, form url.Values) (int, string, http.Header) {
	c.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if form.Get("csrf") == "" {
		form.Set("csrf", c.csrf())
	}
	req, err := http.NewRequest(http.MethodPost, c.url(path), strings.NewReader(form.Encode()))
	require.NoError(c.t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", c.srv.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := c.http.Do(req)
	require.NoError(c.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// TestPages renders every page and its JSON from the real scene, mounted
// under a prefix.
func TestPages(t *testing.T) {
	s := newScene(t)
	c := mount(t, "/ops/console/", console.Handler(s.cfg))

	code, body, hdr := c.get("")
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, hdr.Get("Content-Security-Policy"), "script-src 'self'")
	assert.Contains(t, hdr.Get("Content-Security-Policy"), "frame-ancestors 'none'")
	for _, want := range []string{"Test service", `href="./queues/orders"`, "orders", "rollup", "purge", "reports:daily",
		`href="./static/console.css"`, "Queue depth, last hour", "<svg"} {
		assert.Contains(t, body, want)
	}
	assert.NotEmpty(t, c.csrf(), "the page set the CSRF cookie")

	var ov struct {
		Queues []queue.QueueInfo         `json:"queues"`
		Jobs   []scheduler.JobInfo       `json:"jobs"`
		Locks  []lock.LockInfo           `json:"locks"`
		Hist   map[string][]queue.Sample `json:"history"`
	}
	c.getJSON("api/overview", &ov)
	require.Len(t, ov.Queues, 1)
	assert.Equal(t, int64(6), ov.Queues[0].Dead)
	assert.Len(t, ov.Jobs, 2)
	require.Len(t, ov.Locks, 1)
	assert.Equal(t, "reports:daily", ov.Locks[0].Key)
	assert.Len(t, ov.Hist["orders"], 60)

	code, body, _ = c.get("queues/orders")
	require.Equal(t, http.StatusOK, code, body)
	for _, want := range []string{`href="../"`, "card declined", "payment gateway timeout", "Replay all", `name="csrf" value="`} {
		assert.Contains(t, body, want)
	}
	code, body, _ = c.get("queues/orders?state=dead&error=GATEWAY")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "payment gateway timeout")
	assert.NotContains(t, body, "card declined")
	var qv struct {
		Queue    queue.QueueInfo `json:"queue"`
		Messages []struct {
			ID        string `json:"id"`
			Text      string `json:"text"`
			LastError string `json:"last_error"`
		} `json:"messages"`
		Total int64 `json:"total"`
	}
	c.getJSON("api/queues/orders?state=dead&error=gateway", &qv)
	assert.Equal(t, int64(6), qv.Queue.Dead)
	assert.Len(t, qv.Messages, 3, "orders 1, 5 and 9")
	for _, m := range qv.Messages {
		assert.Contains(t, m.LastError, "gateway")
		assert.Contains(t, m.Text, `"order"`)
	}
	code, _, _ = c.get("queues/orders?state=sideways")
	assert.Equal(t, http.StatusBadRequest, code)

	code, body, _ = c.get("jobs")
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, "replica-1")
	assert.Contains(t, body, "0 30 3 * * *")
	code, body, _ = c.get("jobs/rollup")
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, "History")
	code, _, _ = c.get("jobs/nope")
	assert.Equal(t, http.StatusNotFound, code)

	code, body, _ = c.get("locks")
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, "reports:daily")
	assert.Contains(t, body, "Force release")

	code, body, _ = c.get("limits?limiter=api&key=user:42")
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, "10/1m0s burst 10")
	var lv struct {
		State ratelimit.KeyState `json:"state"`
	}
	c.getJSON("api/limits?limiter=api&key=user:42", &lv)
	assert.Equal(t, 7, lv.State.Remaining)

	code, body, _ = c.get("caches?cache=quotes&key=quote:ACME")
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, "fresh")
	code, body, _ = c.get("audit")
	require.Equal(t, http.StatusOK, code, body)
	require.Eventually(t, func() bool {
		var cv struct {
			Total int `json:"subscribers"`
		}
		c.getJSON("api/channels", &cv)
		return cv.Total == 1
	}, 10*time.Second, 20*time.Millisecond, "the hub's subscriber did not show")
	code, body, _ = c.get("channels?channel=quotes:ACME")
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, "quotes:ACME")
	assert.Contains(t, body, "replica-1 · 1")
	assert.Contains(t, body, "ann")

	code, body, hdr = c.get("static/console.js")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "X-Console-Partial")
	assert.Contains(t, hdr.Get("Content-Type"), "javascript")
	code, _, _ = c.get("nothing/here")
	assert.Equal(t, http.StatusNotFound, code)
	var apiErr map[string]any
	code, body, _ = c.get("api/nothing")
	assert.Equal(t, http.StatusNotFound, code)
	require.NoError(t, json.Unmarshal([]byte(body), &apiErr))

	// A partial render (the live refresh) is the page's main content only.
	req, _ := http.NewRequest(http.MethodGet, c.url("queues/orders"), nil)
	req.Header.Set("X-Console-Partial", "1")
	resp, err := c.http.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.NotContains(t, string(b), "<html")
	assert.Contains(t, string(b), "Dead letters")
}

// TestActions replays, deletes, pauses, triggers, force-releases, resets
// and invalidates through the handler, and finds each in the audit.
func TestActions(t *testing.T) {
	s := newScene(t)
	c := mount(t, "/ops/console/", console.Handler(s.cfg))
	ctx := t.Context()
	c.get("") // the CSRF cookie

	var qv struct {
		Messages []struct{ ID string } `json:"messages"`
	}
	c.getJSON("api/queues/orders?state=dead&error=declined", &qv)
	require.Len(t, qv.Messages, 3)

	// Replay the selected ones: back to the page, with a message.
	code, _, hdr := c.post("queues/orders/requeue", url.Values{"id": {qv.Messages[0].ID, qv.Messages[1].ID}, "state": {"dead"}})
	require.Equal(t, http.StatusSeeOther, code)
	loc := hdr.Get("Location")
	assert.True(t, strings.HasPrefix(loc, "../../queues/orders?"), loc)
	target, err := url.Parse(c.url("queues/orders/requeue"))
	require.NoError(t, err)
	next, err := target.Parse(loc)
	require.NoError(t, err)
	assert.Equal(t, "/ops/console/queues/orders", next.Path, "the redirect stays under the prefix")
	assert.Contains(t, next.Query().Get("flash"), "requeued 2 dead letters")

	// Delete all matching a filter, through the API.
	code, body, _ := c.post("api/queues/orders/delete", url.Values{"all": {"1"}, "error": {"GATEWAY TIMEOUT"}})
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, "deleted 3 dead letters")
	qi, err := s.cfg.Queues.Queue(ctx, "orders")
	require.NoError(t, err)
	assert.Equal(t, int64(1), qi.Dead)
	assert.Equal(t, int64(2), qi.Ready)

	code, body, _ = c.post("api/queues/orders/requeue", nil)
	assert.Equal(t, http.StatusBadRequest, code, "an empty selection is refused: %s", body)

	code, _, _ = c.post("queues/orders/pause", nil)
	require.Equal(t, http.StatusSeeOther, code)
	qi, err = s.cfg.Queues.Queue(ctx, "orders")
	require.NoError(t, err)
	assert.True(t, qi.Paused)
	code, _, _ = c.post("queues/orders/resume", nil)
	require.Equal(t, http.StatusSeeOther, code)

	code, body, _ = c.post("api/jobs/rollup/trigger", nil)
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, "replica-1 runs it")
	code, _, _ = c.post("jobs/rollup/pause", url.Values{"from": {"list"}})
	require.Equal(t, http.StatusSeeOther, code)
	j, err := s.cfg.Jobs.Job(ctx, "rollup")
	require.NoError(t, err)
	assert.True(t, j.Paused)
	assert.Equal(t, "anonymous@127.0.0.1", j.PausedBy)

	ls, err := s.cfg.Locks.Locks(ctx)
	require.NoError(t, err)
	require.Len(t, ls, 1)
	code, body, _ = c.post("api/locks/release", url.Values{"key": {"reports:daily"}, "owner": {"someone else"}})
	assert.Equal(t, http.StatusInternalServerError, code, body)
	assert.Contains(t, body, "not held")
	code, body, _ = c.post("api/locks/release", url.Values{"key": {"reports:daily"}, "owner": {ls[0].Owner}})
	require.Equal(t, http.StatusOK, code, body)
	_, err = s.holder.TTL(ctx)
	assert.ErrorIs(t, err, lock.ErrLockLost, "the holder lost it")

	code, body, _ = c.post("api/limits/reset", url.Values{"limiter": {"api"}, "key": {"user:42"}})
	require.Equal(t, http.StatusOK, code, body)
	var lv struct {
		State ratelimit.KeyState `json:"state"`
	}
	c.getJSON("api/limits?limiter=api&key=user:42", &lv)
	assert.Equal(t, 10, lv.State.Remaining)

	code, body, _ = c.post("api/caches/invalidate", url.Values{"cache": {"quotes"}, "key": {"quote:ACME"}})
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, "1 key deleted")

	recs, err := console.NewAuditor(nil, s.db.Client, s.db.Prefix+"audit", 0).Recent(ctx, 50)
	require.NoError(t, err)
	var seen []string
	for _, r := range recs {
		assert.Equal(t, "anonymous@127.0.0.1", r.User)
		seen = append(seen, r.Action.String()+" => "+r.Outcome)
	}
	for _, want := range []string{
		"requeue queue:orders => ok", "delete queue:orders => ok", "pause queue:orders => ok", "resume queue:orders => ok",
		"trigger job:rollup => ok", "pause job:rollup => ok", "force-release lock:reports:daily => ok",
		"reset limit:api/user:42 => ok", "invalidate cache:quotes/quote:ACME => ok",
	} {
		assert.Contains(t, seen, want)
	}
	assert.Contains(t, s.logs.String(), "action=\"requeue queue:orders\"")
	code, body, _ = c.get("audit")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "requeued 2 dead letters (2 selected)")
}

// TestAuthorize: Authorize decides each request and action; refusals are
// 403 (401 for ErrUnauthenticated) and audited.
func TestAuthorize(t *testing.T) {
	s := newScene(t)
	cfg := s.cfg
	cfg.Authorize = func(r *http.Request, a console.Action) error {
		switch {
		case r.Header.Get("X-User") == "" && r.URL.Query().Get("as") == "":
			return fmt.Errorf("%w: no user", console.ErrUnauthenticated)
		case a.Verb == console.Read:
			return nil
		case a.Verb == console.Requeue && a.Target == "orders":
			return nil
		}
		return fmt.Errorf("%s may not %s", r.Header.Get("X-User"), a)
	}
	cfg.User = func(r *http.Request) string { return r.Header.Get("X-User") }
	c := mount(t, "/c/", console.Handler(cfg))
	code, _, _ := c.get("")
	assert.Equal(t, http.StatusUnauthorized, code)
	code, body, _ := c.get("?as=ann")
	require.Equal(t, http.StatusOK, code, body)
	code, body, _ = c.get("queues/orders?as=ann")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "Replay all", "allowed: shown")
	assert.NotContains(t, body, "Delete all", "refused: hidden")

	post := func(path string, form url.Values) (int, string) {
		form.Set("csrf", c.csrf())
		req, _ := http.NewRequest(http.MethodPost, c.url(path), strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-User", "ann")
		resp, err := c.http.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body = post("api/queues/orders/delete", url.Values{"all": {"1"}})
	assert.Equal(t, http.StatusForbidden, code)
	assert.Contains(t, body, "ann may not delete queue:orders")
	code, body = post("api/queues/orders/requeue", url.Values{"all": {"1"}})
	assert.Equal(t, http.StatusOK, code, body)
	qi, err := s.cfg.Queues.Queue(t.Context(), "orders")
	require.NoError(t, err)
	assert.Zero(t, qi.Dead, "the allowed requeue ran, the refused delete did not")
	recs, err := console.NewAuditor(nil, s.db.Client, s.db.Prefix+"audit", 0).Recent(t.Context(), 10)
	require.NoError(t, err)
	require.Len(t, recs, 2)
	assert.Equal(t, "ok", recs[0].Outcome)
	assert.Equal(t, "ann", recs[1].User)
	assert.True(t, strings.HasPrefix(recs[1].Outcome, "denied: ann may not delete"), recs[1].Outcome)
}

// TestReadOnly: every action is refused and no button is shown.
func TestReadOnly(t *testing.T) {
	s := newScene(t)
	cfg := s.cfg
	cfg.ReadOnly = true
	c := mount(t, "/c/", console.Handler(cfg))
	code, body, _ := c.get("queues/orders")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "read-only")
	assert.NotContains(t, body, `method="post"`)
	_, body, _ = c.get("jobs")
	assert.NotContains(t, body, "Run now")
	_, body, _ = c.get("locks")
	assert.NotContains(t, body, "Force release")
	for _, p := range []string{"queues/orders/requeue", "queues/orders/pause", "jobs/rollup/trigger", "locks/release", "limits/reset", "caches/invalidate"} {
		code, body, _ := c.post("api/"+p, url.Values{"all": {"1"}, "key": {"reports:daily"}, "limiter": {"api"}, "cache": {"quotes"}})
		assert.Equal(t, http.StatusForbidden, code, p)
		assert.Contains(t, body, "read-only", p)
	}
	qi, err := s.cfg.Queues.Queue(t.Context(), "orders")
	require.NoError(t, err)
	assert.Equal(t, int64(6), qi.Dead)
	_, ok, err := s.cfg.Locks.Lock(t.Context(), "reports:daily")
	require.NoError(t, err)
	assert.True(t, ok)
}

// TestCSRF: an action without the token, with a wrong one, or from
// another origin is refused.
func TestCSRF(t *testing.T) {
	s := newScene(t)
	c := mount(t, "/c/", console.Handler(s.cfg))
	c.get("")
	tok := c.csrf()
	require.Len(t, tok, 48)
	send := func(form url.Values, hdr map[string]string) int {
		req, _ := http.NewRequest(http.MethodPost, c.url("api/queues/orders/requeue"), strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := c.http.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	all := func(extra ...string) url.Values {
		v := url.Values{"all": {"1"}}
		if len(extra) == 2 {
			v.Set(extra[0], extra[1])
		}
		return v
	}
	assert.Equal(t, http.StatusForbidden, send(all(), nil), "no token")
	assert.Equal(t, http.StatusForbidden, send(all("csrf", strings.Repeat("0", 48)), nil), "wrong token")
	assert.Equal(t, http.StatusForbidden, send(all("csrf", tok), map[string]string{"Sec-Fetch-Site": "cross-site"}), "cross-site")
	assert.Equal(t, http.StatusForbidden, send(all("csrf", tok), map[string]string{"Origin": "https://evil.example"}), "another origin")
	// a form post without a cookie at all (another browser profile)
	noJar := &http.Client{CheckRedirect: c.http.CheckRedirect}
	req, _ := http.NewRequest(http.MethodPost, c.url("api/queues/orders/requeue"), strings.NewReader(all("csrf", tok).Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := noJar.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "no cookie")
	qi, err := s.cfg.Queues.Queue(t.Context(), "orders")
	require.NoError(t, err)
	assert.Equal(t, int64(6), qi.Dead, "nothing was requeued")
	// the header works for API clients, with the token from a GET's header
	_, _, hdr := c.get("api/overview")
	assert.Equal(t, tok, hdr.Get("X-CSRF-Token"))
	assert.Equal(t, http.StatusOK, send(all(), map[string]string{"X-CSRF-Token": tok}))
	recs, err := console.NewAuditor(nil, s.db.Client, s.db.Prefix+"audit", 0).Recent(t.Context(), 10)
	require.NoError(t, err)
	// the three token-less tries and the good one; cross-origin ones are
	// refused before they reach the console
	require.Len(t, recs, 4)
	assert.Equal(t, "ok", recs[0].Outcome)
	for _, r := range recs[1:] {
		assert.Contains(t, r.Outcome, "CSRF")
	}
}

// TestPrefixes: the same handler under different prefixes, and the cookie
// scoped to the mount point.
func TestPrefixes(t *testing.T) {
	s := newScene(t)
	for _, prefix := range []string{"/", "/admin/console/", "/a/b/c/d/"} {
		t.Run(prefix, func(t *testing.T) {
			c := mount(t, prefix, console.Handler(s.cfg))
			resp, err := c.http.Get(c.url("jobs/rollup"))
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
			var cookie *http.Cookie
			for _, ck := range resp.Cookies() {
				if ck.Name == "outrigger_console_csrf" {
					cookie = ck
				}
			}
			require.NotNil(t, cookie)
			assert.Equal(t, prefix, cookie.Path)
			assert.True(t, cookie.HttpOnly)
			assert.Equal(t, http.SameSiteStrictMode, cookie.SameSite)
			// every relative link on the page resolves under the prefix
			page, _ := url.Parse(c.url("jobs/rollup"))
			for _, m := range hrefs(string(b)) {
				u, err := page.Parse(m)
				require.NoError(t, err)
				assert.True(t, strings.HasPrefix(u.Path, prefix), "%s resolves to %s", m, u.Path)
				if strings.HasSuffix(u.Path, ".css") || strings.HasSuffix(u.Path, ".js") || u.Path == prefix+"jobs" {
					code, _, _ := c.get(strings.TrimPrefix(u.Path, prefix))
					assert.Equal(t, http.StatusOK, code, u.Path)
				}
			}
		})
	}
}

// hrefs returns the href and src attribute values of a page.
func hrefs(page string) []string {
	var out []string
	for _, attr := range []string{`href="`, `src="`, `action="`} {
		rest := page
		for {
			i := strings.Index(rest, attr)
			if i < 0 {
				break
			}
			rest = rest[i+len(attr):]
			j := strings.IndexByte(rest, '"')
			out = append(out, strings.ReplaceAll(rest[:j], "&amp;", "&"))
			rest = rest[j:]
		}
	}
	return out
}
