package console

import (
	"cmp"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/outrigger-dev/outrigger/broadcast"
	"github.com/outrigger-dev/outrigger/cache"
	"github.com/outrigger-dev/outrigger/lock"
	"github.com/outrigger-dev/outrigger/queue"
	"github.com/outrigger-dev/outrigger/ratelimit"
	"github.com/outrigger-dev/outrigger/scheduler"
)

// Each page's view is what its template renders and what its JSON API
// returns.

// overviewView is the overview page.
type overviewView struct {
	common
	Queues      []queue.QueueInfo         `json:"queues"`
	Totals      queueTotals               `json:"totals"`
	History     map[string][]queue.Sample `json:"history"`
	DepthChart  template.HTML             `json:"-"`
	FlowChart   template.HTML             `json:"-"`
	Jobs        []scheduler.JobInfo       `json:"jobs"`
	MissedJobs  int                       `json:"missed_jobs"`
	FailingJobs int                       `json:"failing_jobs"`
	PausedJobs  int                       `json:"paused_jobs"`
	Locks       []lock.LockInfo           `json:"locks"`
	Problems    []string                  `json:"problems"`
}

type queueTotals struct {
	Queues, Ready, InFlight, Delayed, Dead, Acked int64
	Throughput                                    float64
}

// chartQueues is how many queues the overview charts (the deepest).
const chartQueues = 6

func (h *handler) overview(w http.ResponseWriter, r *http.Request) (string, any, error) {
	ctx, cancel := reqCtx(r)
	defer cancel()
	v := overviewView{common: h.common(r, "overview"), History: map[string][]queue.Sample{}, Problems: []string{}}
	if h.cfg.Queues != nil {
		qs, err := h.cfg.Queues.Queues(ctx)
		if err != nil {
			v.Problems = append(v.Problems, err.Error())
		}
		v.Queues = qs
		for _, q := range qs {
			v.Totals.Queues++
			v.Totals.Ready += q.Ready
			v.Totals.InFlight += q.InFlight
			v.Totals.Delayed += q.Delayed
			v.Totals.Dead += q.Dead
			v.Totals.Throughput += q.Throughput
			v.Totals.Acked += q.Acked
		}
		top := slices.Clone(qs)
		slices.SortStableFunc(top, func(a, b queue.QueueInfo) int {
			return cmp.Or(cmp.Compare(b.Ready+b.InFlight+b.Delayed, a.Ready+a.InFlight+a.Delayed), cmp.Compare(b.Throughput, a.Throughput))
		})
		top = top[:min(len(top), chartQueues)]
		var depth, flow []chartSeries
		var xs []time.Time
		for i, q := range top {
			hs, err := h.cfg.Queues.History(ctx, q.Name, 60)
			if err != nil {
				v.Problems = append(v.Problems, err.Error())
				continue
			}
			v.History[q.Name] = hs
			xs = minutes(hs)
			depth = append(depth, chartSeries{Name: q.Name, Values: depthValues(hs, q), Color: i})
			flow = append(flow, chartSeries{Name: q.Name, Values: ackedValues(hs), Color: i})
		}
		if len(xs) > 0 {
			v.DepthChart = lineChart("Queue depth, last hour", "messages", xs, depth)
			v.FlowChart = lineChart("Throughput, last hour", "acked / min", xs, flow)
		}
	}
	if h.cfg.Jobs != nil {
		js, err := h.cfg.Jobs.Jobs(ctx)
		if err != nil {
			v.Problems = append(v.Problems, err.Error())
		}
		v.Jobs = js
		for _, j := range js {
			if j.Missed {
				v.MissedJobs++
			}
			if j.LastRun != nil && j.LastRun.Error != "" {
				v.FailingJobs++
			}
			if j.Paused {
				v.PausedJobs++
			}
		}
	}
	if h.cfg.Locks != nil {
		ls, err := h.cfg.Locks.Locks(ctx)
		if err != nil {
			v.Problems = append(v.Problems, err.Error())
		}
		v.Locks = ls
	}
	if v.Queues == nil {
		v.Queues = []queue.QueueInfo{}
	}
	if v.Jobs == nil {
		v.Jobs = []scheduler.JobInfo{}
	}
	if v.Locks == nil {
		v.Locks = []lock.LockInfo{}
	}
	return "overview", v, nil
}

func minutes(hs []queue.Sample) []time.Time {
	xs := make([]time.Time, len(hs))
	for i, s := range hs {
		xs[i] = s.Minute
	}
	return xs
}

// depthValues is the backlog per minute: the recorded gauge, carried
// forward over minutes that recorded nothing, and the current depth at the
// end. Minutes before the first record are unknown (NaN).
func depthValues(hs []queue.Sample, now queue.QueueInfo) []float64 {
	out := make([]float64, len(hs))
	last := -1.0
	for i, s := range hs {
		if s.Depth >= 0 {
			last = float64(s.Depth)
		}
		out[i] = last
	}
	if len(out) > 0 {
		out[len(out)-1] = float64(now.Ready + now.InFlight + now.Delayed)
	}
	return out
}

func ackedValues(hs []queue.Sample) []float64 {
	out := make([]float64, len(hs))
	for i, s := range hs {
		out[i] = float64(s.Acked)
	}
	return out
}

func field(hs []queue.Sample, f func(queue.Sample) int64) []float64 {
	out := make([]float64, len(hs))
	for i, s := range hs {
		out[i] = float64(f(s))
	}
	return out
}

// messageView is a message with its body made readable.
type messageView struct {
	queue.MessageInfo
	// Text is the body when it is UTF-8 text; Binary is set otherwise.
	Text   string `json:"text,omitempty"`
	Binary bool   `json:"binary"`
}

func messageViews(ms []queue.MessageInfo) []messageView {
	out := make([]messageView, len(ms))
	for i, m := range ms {
		out[i] = messageView{MessageInfo: m}
		if utf8.Valid(m.Body) {
			out[i].Text = string(m.Body)
		} else {
			out[i].Binary = true
		}
	}
	return out
}

// queueView is a queue's page.
type queueView struct {
	common
	Queue      queue.QueueInfo      `json:"queue"`
	Consumers  []queue.ConsumerInfo `json:"consumers"`
	State      queue.State          `json:"state"`
	States     []stateTab           `json:"-"`
	Filter     string               `json:"error_filter"`
	Cursor     string               `json:"cursor"`
	Messages   []messageView        `json:"messages"`
	Next       string               `json:"next"`
	Total      int64                `json:"total"`
	History    []queue.Sample       `json:"history"`
	DepthChart template.HTML        `json:"-"`
	FlowChart  template.HTML        `json:"-"`
}

type stateTab struct {
	State queue.State
	Count int64
}

func (h *handler) queuePage(w http.ResponseWriter, r *http.Request) (string, any, error) {
	ctx, cancel := reqCtx(r)
	defer cancel()
	name := r.PathValue("name")
	qi, err := h.cfg.Queues.Queue(ctx, name)
	if err != nil {
		return "", nil, badRequest("%v", err)
	}
	q := r.URL.Query()
	state := queue.StateDead
	if s := q.Get("state"); s != "" {
		if state, err = queue.ParseState(s); err != nil {
			return "", nil, badRequest("%v", err)
		}
	} else if qi.Dead == 0 {
		state = queue.StateReady
	}
	v := queueView{common: h.common(r, "queues"), Queue: qi, State: state, Filter: q.Get("error"), Cursor: q.Get("cursor")}
	v.States = []stateTab{{queue.StateReady, qi.Ready}, {queue.StateInFlight, qi.InFlight}, {queue.StateDelayed, qi.Delayed}, {queue.StateDead, qi.Dead}}
	if v.Consumers, err = h.cfg.Queues.Consumers(ctx, name); err != nil {
		return "", nil, err
	}
	filter := ""
	if state == queue.StateDead {
		filter = v.Filter
	}
	p, err := h.cfg.Queues.Messages(ctx, name, state, queue.PageOptions{Cursor: v.Cursor, Limit: 50, ErrorContains: filter})
	if err != nil {
		return "", nil, badRequest("%v", err)
	}
	v.Messages, v.Next, v.Total = messageViews(p.Messages), p.Next, p.Total
	if v.History, err = h.cfg.Queues.History(ctx, name, 60); err != nil {
		return "", nil, err
	}
	xs := minutes(v.History)
	v.DepthChart = lineChart("Depth, last hour", "messages", xs, []chartSeries{
		{Name: "backlog", Values: depthValues(v.History, qi), Color: 0},
	})
	v.FlowChart = lineChart("Flow, last hour", "per minute", xs, []chartSeries{
		{Name: "published", Values: field(v.History, func(s queue.Sample) int64 { return s.Published }), Color: 1},
		{Name: "acked", Values: ackedValues(v.History), Color: 0},
		{Name: "failed", Values: field(v.History, func(s queue.Sample) int64 { return s.Retried + s.Dead }), Color: 3},
	})
	return "queue", v, nil
}

func (h *handler) queueList(w http.ResponseWriter, r *http.Request) (string, any, error) {
	ctx, cancel := reqCtx(r)
	defer cancel()
	qs, err := h.cfg.Queues.Queues(ctx)
	return "", map[string]any{"queues": qs}, err
}

func (h *handler) queueHistory(w http.ResponseWriter, r *http.Request) (string, any, error) {
	ctx, cancel := reqCtx(r)
	defer cancel()
	hs, err := h.cfg.Queues.History(ctx, r.PathValue("name"), 120)
	if err != nil {
		return "", nil, badRequest("%v", err)
	}
	return "", map[string]any{"queue": r.PathValue("name"), "history": hs}, nil
}

// selection reads the dead letters an action applies to: the checked IDs,
// or all="1" with an optional error filter.
func selection(r *http.Request) (queue.Selection, string, error) {
	ids := r.PostForm["id"]
	if len(ids) > 0 {
		return queue.Selection{IDs: ids}, fmt.Sprintf("%d selected", len(ids)), nil
	}
	if r.PostFormValue("all") == "1" {
		f := r.PostFormValue("error")
		what := "all"
		if f != "" {
			what = fmt.Sprintf("all whose error contains %q", f)
		}
		return queue.Selection{All: true, ErrorContains: f}, what, nil
	}
	return queue.Selection{}, "", badRequest("console: select dead letters (id=...) or all=1 (with error=... to filter)")
}

func (h *handler) queueRequeue(r *http.Request) (string, error) {
	return h.queueApply(r, "requeued", h.cfg.Queues.Requeue)
}

func (h *handler) queueDelete(r *http.Request) (string, error) {
	return h.queueApply(r, "deleted", h.cfg.Queues.Delete)
}

func (h *handler) queueApply(r *http.Request, did string, op func(ctxT, string, queue.Selection) (int, error)) (string, error) {
	sel, what, err := selection(r)
	if err != nil {
		return "", err
	}
	// A bulk operation runs in bounded batches; give it time, and do not
	// stop halfway because the browser gave up waiting.
	ctx, cancel := detached(r, 10*time.Minute)
	defer cancel()
	n, err := op(ctx, r.PathValue("name"), sel)
	detail := fmt.Sprintf("%s %d dead letter%s (%s)", did, n, plural(n), what)
	if errors.Is(err, queue.ErrNotFound) {
		return detail, fmt.Errorf("some were no longer dead letters: %w", err)
	}
	return detail, err
}

func (h *handler) queuePause(r *http.Request) (string, error) {
	ctx, cancel := reqCtx(r)
	defer cancel()
	return "paused consumption on every replica", h.cfg.Queues.Pause(ctx, r.PathValue("name"), h.user(r))
}

func (h *handler) queueResume(r *http.Request) (string, error) {
	ctx, cancel := reqCtx(r)
	defer cancel()
	return "resumed consumption", h.cfg.Queues.Resume(ctx, r.PathValue("name"))
}

// jobsView is the schedules page.
type jobsView struct {
	common
	Jobs  []scheduler.JobInfo  `json:"jobs"`
	Nodes []scheduler.NodeInfo `json:"nodes"`
}

func (h *handler) jobsPage(w http.ResponseWriter, r *http.Request) (string, any, error) {
	ctx, cancel := reqCtx(r)
	defer cancel()
	v := jobsView{common: h.common(r, "jobs")}
	var err error
	if v.Jobs, err = h.cfg.Jobs.Jobs(ctx); err != nil {
		return "", nil, err
	}
	if v.Nodes, err = h.cfg.Jobs.Nodes(ctx); err != nil {
		return "", nil, err
	}
	return "jobs", v, nil
}

// jobView is a job's page.
type jobView struct {
	common
	Job     scheduler.JobInfo     `json:"job"`
	History []scheduler.RunRecord `json:"history"`
}

func (h *handler) jobPage(w http.ResponseWriter, r *http.Request) (string, any, error) {
	ctx, cancel := reqCtx(r)
	defer cancel()
	name := r.PathValue("name")
	j, err := h.cfg.Jobs.Job(ctx, name)
	if errors.Is(err, scheduler.ErrUnknownJob) {
		return "", nil, notFound("%v", err)
	}
	if err != nil {
		return "", nil, err
	}
	v := jobView{common: h.common(r, "jobs"), Job: j}
	if v.History, err = h.cfg.Jobs.History(ctx, name, 100); err != nil {
		return "", nil, err
	}
	return "job", v, nil
}

func (h *handler) jobTrigger(r *http.Request) (string, error) {
	ctx, cancel := detached(r, 10*time.Second)
	defer cancel()
	t, err := h.cfg.Jobs.Trigger(ctx, r.PathValue("name"), h.user(r))
	if err != nil {
		return "", err
	}
	return "triggered: " + t.Node + " runs it now", nil
}

func (h *handler) jobPause(r *http.Request) (string, error) {
	ctx, cancel := reqCtx(r)
	defer cancel()
	return "paused its ticks on every replica", h.cfg.Jobs.Pause(ctx, r.PathValue("name"), h.user(r))
}

func (h *handler) jobResume(r *http.Request) (string, error) {
	ctx, cancel := reqCtx(r)
	defer cancel()
	return "resumed its ticks", h.cfg.Jobs.Resume(ctx, r.PathValue("name"))
}

// locksView is the locks page.
type locksView struct {
	common
	Prefix string          `json:"prefix"`
	Locks  []lock.LockInfo `json:"locks"`
	Fenced bool            `json:"fenced"`
}

func (h *handler) locksPage(w http.ResponseWriter, r *http.Request) (string, any, error) {
	ctx, cancel := reqCtx(r)
	defer cancel()
	ls, err := h.cfg.Locks.Locks(ctx)
	if err != nil {
		return "", nil, err
	}
	return "locks", locksView{common: h.common(r, "locks"), Prefix: h.cfg.Locks.Prefix(), Locks: ls, Fenced: h.cfg.LockFence != nil}, nil
}

func (h *handler) lockRelease(r *http.Request) (string, error) {
	key, owner := r.PostFormValue("key"), r.PostFormValue("owner")
	if key == "" {
		return "", badRequest("console: key is missing")
	}
	opts := []lock.ForceOption{}
	if owner != "" {
		opts = append(opts, lock.ExpectOwner(owner))
	}
	if h.cfg.LockFence != nil {
		opts = append(opts, lock.AdvanceFence(h.cfg.LockFence, key))
	}
	ctx, cancel := reqCtx(r)
	defer cancel()
	rv, err := h.cfg.Locks.ForceRelease(ctx, key, opts...)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("took %q from %s (revocation token %d)", key, rv.Owner, rv.Token), nil
}

// limitsView is the rate-limit page.
type limitsView struct {
	common
	Limiters []limiterView       `json:"limiters"`
	Limiter  string              `json:"limiter"`
	Key      string              `json:"key"`
	State    *ratelimit.KeyState `json:"state"`
}

type limiterView struct {
	Name   string   `json:"name"`
	Prefix string   `json:"prefix"`
	Limits []string `json:"limits"`
}

func (h *handler) limiter(name string) (*ratelimit.Inspector, error) {
	for _, l := range h.cfg.Limiters {
		if l.Name == name {
			return l.Inspector, nil
		}
	}
	return nil, notFound("console: no limiter %q", name)
}

func (h *handler) limitsPage(w http.ResponseWriter, r *http.Request) (string, any, error) {
	ctx, cancel := reqCtx(r)
	defer cancel()
	q := r.URL.Query()
	v := limitsView{common: h.common(r, "limits"), Limiter: q.Get("limiter"), Key: strings.TrimSpace(q.Get("key"))}
	for _, l := range h.cfg.Limiters {
		lv := limiterView{Name: l.Name, Prefix: l.Inspector.Prefix(), Limits: []string{}}
		for _, lim := range l.Inspector.Limits() {
			lv.Limits = append(lv.Limits, lim.String())
		}
		v.Limiters = append(v.Limiters, lv)
	}
	if v.Limiter == "" {
		v.Limiter = h.cfg.Limiters[0].Name
	}
	if v.Key != "" {
		in, err := h.limiter(v.Limiter)
		if err != nil {
			return "", nil, err
		}
		st, err := in.Get(ctx, v.Key)
		if err != nil {
			return "", nil, err
		}
		v.State = &st
	}
	return "limits", v, nil
}

func (h *handler) limitReset(r *http.Request) (string, error) {
	in, err := h.limiter(r.PostFormValue("limiter"))
	if err != nil {
		return "", err
	}
	ctx, cancel := reqCtx(r)
	defer cancel()
	had, err := in.Reset(ctx, r.PostFormValue("key"))
	if err != nil {
		return "", err
	}
	if !had {
		return "the key had no state: nothing to reset", nil
	}
	return "reset: the key has its full burst again", nil
}

// cachesView is the cache page.
type cachesView struct {
	common
	Caches []cacheView    `json:"caches"`
	Cache  string         `json:"cache"`
	Key    string         `json:"key"`
	Info   *cache.KeyInfo `json:"info"`
}

type cacheView struct {
	Name  string            `json:"name"`
	Redis cache.PrefixStats `json:"redis"`
	Local *cache.Stats      `json:"local,omitempty"`
	Error string            `json:"error,omitempty"`
}

func (h *handler) cache(name string) (*cache.Inspector, error) {
	for _, c := range h.cfg.Caches {
		if c.Name == name {
			return c.Inspector, nil
		}
	}
	return nil, notFound("console: no cache %q", name)
}

func (h *handler) cachesPage(w http.ResponseWriter, r *http.Request) (string, any, error) {
	ctx, cancel := reqCtx(r)
	defer cancel()
	q := r.URL.Query()
	v := cachesView{common: h.common(r, "caches"), Cache: q.Get("cache"), Key: strings.TrimSpace(q.Get("key"))}
	for _, c := range h.cfg.Caches {
		cv := cacheView{Name: c.Name}
		st, err := c.Inspector.Stats(ctx)
		if err != nil {
			cv.Error = err.Error()
		}
		cv.Redis = st
		if c.Stats != nil {
			s := c.Stats()
			cv.Local = &s
		}
		v.Caches = append(v.Caches, cv)
	}
	if v.Cache == "" {
		v.Cache = h.cfg.Caches[0].Name
	}
	if v.Key != "" {
		in, err := h.cache(v.Cache)
		if err != nil {
			return "", nil, err
		}
		ki, err := in.Key(ctx, v.Key)
		if err != nil {
			return "", nil, err
		}
		v.Info = &ki
	}
	return "caches", v, nil
}

func (h *handler) cacheInvalidate(r *http.Request) (string, error) {
	in, err := h.cache(r.PostFormValue("cache"))
	if err != nil {
		return "", err
	}
	ctx, cancel := reqCtx(r)
	defer cancel()
	n, err := in.Invalidate(ctx, r.PostFormValue("key"))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("invalidated on every replica (%d key%s deleted from Redis)", n, plural(n)), nil
}

// auditView is the audit page.
type auditView struct {
	common
	Enabled bool          `json:"enabled"`
	Records []AuditRecord `json:"records"`
}

func (h *handler) auditPage(w http.ResponseWriter, r *http.Request) (string, any, error) {
	ctx, cancel := reqCtx(r)
	defer cancel()
	recs, err := h.audit.Recent(ctx, 200)
	if err != nil {
		return "", nil, err
	}
	return "audit", auditView{common: h.common(r, "audit"), Enabled: h.audit.Enabled(), Records: recs}, nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// channelsView is the live channels page.
type channelsView struct {
	common
	Channels []broadcast.ChannelInfo `json:"channels"`
	Nodes    []broadcast.NodeInfo    `json:"nodes"`
	Channel  string                  `json:"channel"`
	Members  []broadcast.Member      `json:"members"`
	Total    int                     `json:"subscribers"`
}

func (h *handler) channelsPage(w http.ResponseWriter, r *http.Request) (string, any, error) {
	ctx, cancel := reqCtx(r)
	defer cancel()
	v := channelsView{common: h.common(r, "channels"), Channel: r.URL.Query().Get("channel")}
	var err error
	if v.Nodes, err = h.cfg.Channels.Nodes(ctx); err != nil {
		return "", nil, err
	}
	if v.Channels, err = h.cfg.Channels.Channels(ctx); err != nil {
		return "", nil, err
	}
	for _, c := range v.Channels {
		v.Total += c.Subscribers
	}
	if v.Channel != "" {
		if v.Members, err = h.cfg.Channels.Presence(ctx, v.Channel); err != nil {
			return "", nil, badRequest("%v", err)
		}
	}
	return "channels", v, nil
}
