package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"go.opentelemetry.io/otel/trace"

	"github.com/outrigger-dev/outrigger/broadcast"
	outotel "github.com/outrigger-dev/outrigger/otel"
	"github.com/outrigger-dev/outrigger/scheduler"
)

// The live stream: every quote a replica stores is published, by that
// replica, on the broadcast channel quotes:<SYMBOL>; browsers and other
// clients on any replica receive it once, in offset order, and resume with
// nothing lost after reconnecting to another replica.
//
//	GET /v1/live                      WebSocket (the broadcast wire protocol)
//	GET /v1/stream?symbol=ACME&…      Server-Sent Events, one channel per symbol
//	GET /v1/board                     the page's state as JSON (positions to resume from)
//
// Besides the quote channels, every replica publishes its figures each
// second on "replicas", one replica at a time (the live-viewers job) counts
// the viewers of each symbol across replicas (broadcast presence) on
// "viewers", and a page subscribes to "viewer:<its id>" with presence
// events, whose Join tells it which replica holds its connection.
const (
	quoteChannelPrefix  = "quotes:"
	replicasChannel     = "replicas"
	viewersChannel      = "viewers"
	viewerChannelPrefix = "viewer:"

	// liveHistory is how many messages each channel keeps for clients
	// that reconnect (and liveHistoryTTL for how long).
	liveHistory    = 2048
	liveHistoryTTL = 10 * time.Minute
	// outboxLease is how long a staged quote belongs to the replica that
	// staged (or claimed) it; that replica publishes it within half of it
	// or leaves it to the live-outbox job.
	outboxLease = 10 * time.Second
	// recentWindow bounds how far back the history is read (at most the
	// hub's client buffer, 1024).
	recentWindow = 1000
)

// liveQuote is the JSON of a message on quotes:<SYMBOL>.
type liveQuote struct {
	ID     string  `json:"id"`
	Symbol string  `json:"symbol"`
	Price  float64 `json:"price"`
	// TS is when the feed published the quote: receipt minus TS is the
	// feed-to-client latency (loadgen -live reports it).
	TS time.Time `json:"ts"`
	// StoredBy is the replica that stored the quote and published it;
	// PublishedAt when it published it to the live stream.
	StoredBy    string    `json:"stored_by"`
	PublishedAt time.Time `json:"published_at"`
}

// live is a replica's part of the live stream: the broadcast Hub, the
// endpoints, the board the page is rendered from, and the loops that
// publish figures.
type live struct {
	s       *service
	hub     *broadcast.Hub
	handler http.Handler // broadcast's WebSocket and SSE endpoint
	board   *board
	peers   []*url.URL // -peers: replicas a page may fail over to

	unverified atomic.Uint64 // outbox quotes published without a history check

	ctx     context.Context // cancelled by close: the loops and SSE streams
	cancel  context.CancelFunc
	streams context.Context // cancelled when the HTTP server shuts down
	endAll  context.CancelFunc
	wg      sync.WaitGroup
}

// buildLive creates the Hub (on Redis when configured, in process
// otherwise), the endpoint and the jobs. The loops start with startLive.
func (s *service) buildLive() error {
	hooks, err := outotel.InstrumentBroadcast(s.tel.opts...)
	if err != nil {
		return err
	}
	opts := []broadcast.Option{
		broadcast.WithHooks(hooks),
		broadcast.WithNodeID(nodeID(s.cfg.replica)),
		broadcast.WithLogger(s.log),
		broadcast.WithHistory(liveHistory, liveHistoryTTL),
	}
	var hub *broadcast.Hub
	if s.rdb != nil {
		hub, err = broadcast.New(s.rdb, append(opts, broadcast.WithPrefix(s.cfg.keyPrefix+"live:"))...)
	} else {
		hub, err = broadcast.NewLocal(opts...)
	}
	if err != nil {
		return fmt.Errorf("quotes: live hub: %w", err)
	}
	l := &live{s: s, hub: hub}
	s.live = l
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.streams, l.endAll = context.WithCancel(l.ctx)
	for _, p := range s.cfg.peers {
		u, err := url.Parse(p)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return fmt.Errorf("quotes: -peers: %q is not an http(s) base URL", p)
		}
		l.peers = append(l.peers, u)
	}
	hopts := []broadcast.HandlerOption{
		broadcast.Identify(identifyViewer),
		broadcast.Authorize(authorizeViewer),
		broadcast.MaxSubscriptions(32),
	}
	if len(l.peers) > 0 {
		hosts := make([]string, len(l.peers))
		for i, u := range l.peers {
			hosts[i] = u.Host
		}
		hopts = append(hopts, broadcast.AllowOrigins(hosts...))
	}
	l.handler = hub.Handler(hopts...)
	s.metrics.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "broadcast_connections", Help: "Open live WebSocket and SSE connections."},
			func() float64 { return float64(hub.Stats().Connections) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "broadcast_delivered_total", Help: "Live messages handed to subscribers (one per subscriber)."},
			func() float64 { return float64(hub.Stats().Delivered) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "broadcast_published_total", Help: "Live messages this replica published."},
			func() float64 { return float64(hub.Stats().Published) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "live_outbox_unverified_total", Help: "Staged quotes published without a history check (the history no longer reached back)."},
			func() float64 { return float64(l.unverified.Load()) }),
	)
	l.board = newBoard(hub, s.log)
	if err := s.sched.Every("live-viewers", 2*time.Second, l.countViewers, scheduler.Timeout(10*time.Second)); err != nil {
		return err
	}
	return s.sched.Every("live-outbox", 2*time.Second, l.sweepOutbox, scheduler.Timeout(outboxLease/2))
}

// nodeID turns a replica name into a broadcast node ID.
func nodeID(replica string) string {
	b := []byte(replica)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '_'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

// start launches the board's subscriptions and the figures loop.
func (l *live) start() {
	l.board.start(l.ctx, &l.wg)
	l.wg.Go(l.publishFigures)
}

// endStreams ends the SSE streams (the HTTP server is shutting down and
// waits for its handlers); EventSource reconnects to another replica and
// resumes from its Last-Event-ID. WebSocket connections stay until close.
func (l *live) endStreams() { l.endAll() }

// close stops the loops and closes the Hub: WebSocket clients get 1001 and
// reconnect elsewhere; this replica's viewers leave presence at once.
func (l *live) close() {
	l.cancel()
	l.wg.Wait()
	_ = l.hub.Close()
}

// publishStored publishes quotes that were just stored and staged, and
// unstages those it published. It gives up at half the outbox lease, after
// which the live-outbox job may claim what is left. Within a symbol quotes
// go out in time order; symbols are published concurrently. Each quote
// with a span in parents (its consumer span, by ID) is published in that
// span's trace.
func (l *live) publishStored(ctx context.Context, qs []quote, staged time.Time, parents map[string]trace.SpanContext) {
	if len(qs) == 0 {
		return
	}
	ctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), staged.Add(outboxLease/2))
	defer cancel()
	done, err := l.publishAll(ctx, qs, parents)
	if err != nil {
		l.s.log.Warn("live: publish stored quotes; the live-outbox job will retry", "quotes", len(qs)-len(done), "err", err)
	}
	if err := l.s.db.unstage(context.WithoutCancel(ctx), done); err != nil {
		// Left staged, they would be published twice: the live-outbox job
		// checks the history before publishing a claimed quote.
		l.s.log.Warn("live: unstage published quotes", "quotes", len(done), "err", err)
	}
}

// publishAll publishes qs, grouped by symbol, and returns the IDs of those
// published and the first error.
func (l *live) publishAll(ctx context.Context, qs []quote, parents map[string]trace.SpanContext) ([]string, error) {
	bySym := map[string][]quote{}
	for _, q := range qs {
		bySym[q.Symbol] = append(bySym[q.Symbol], q)
	}
	var mu sync.Mutex // protects done and first
	var done []string
	var first error
	var wg sync.WaitGroup
	for _, group := range bySym {
		sort.SliceStable(group, func(i, j int) bool { return group[i].TS.Before(group[j].TS) })
		wg.Go(func() {
			for _, q := range group {
				qctx := ctx
				if sc, ok := parents[q.ID]; ok {
					qctx = trace.ContextWithSpanContext(ctx, sc)
				}
				err := l.publishQuote(qctx, q)
				mu.Lock()
				if err != nil {
					if first == nil {
						first = err
					}
					mu.Unlock()
					return // keep the symbol's order: the rest waits too
				}
				done = append(done, q.ID)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return done, first
}

func (l *live) publishQuote(ctx context.Context, q quote) error {
	data, err := json.Marshal(liveQuote{ID: q.ID, Symbol: q.Symbol, Price: q.Price, TS: q.TS, StoredBy: l.s.cfg.replica, PublishedAt: time.Now().UTC()})
	if err != nil {
		return err
	}
	_, err = l.hub.Publish(ctx, quoteChannelPrefix+q.Symbol, data)
	return err
}

// sweepOutbox is the live-outbox job: it claims quotes that stayed staged
// longer than the lease (their replica died between storing and
// publishing, or could not reach Redis) and publishes those that the
// channel's history does not already hold, so that each stored quote is
// published once.
func (l *live) sweepOutbox(ctx context.Context, _ scheduler.Run) error {
	now := time.Now()
	claimed, err := l.s.db.claimStaged(ctx, l.s.cfg.replica, now.Add(-outboxLease), now, 5000)
	if err != nil || len(claimed) == 0 {
		return err
	}
	bySym := map[string][]stagedQuote{}
	for _, q := range claimed {
		bySym[q.Symbol] = append(bySym[q.Symbol], q)
	}
	var publish []quote
	var settled []string // published already: only unstage
	for sym, group := range bySym {
		oldest := group[0].staged
		for _, q := range group {
			oldest = minTime(oldest, q.staged)
		}
		seen, covered, err := l.recentIDs(ctx, quoteChannelPrefix+sym, oldest.Add(-time.Second))
		if err != nil {
			return err
		}
		for _, q := range group {
			switch {
			case seen[q.ID]:
				settled = append(settled, q.ID)
			default:
				if !covered {
					l.unverified.Add(1)
				}
				publish = append(publish, q.quote)
			}
		}
		if !covered {
			l.s.log.Warn("live: the history no longer covers staged quotes; publishing them unchecked (a client may see one twice)", "symbol", sym)
		}
	}
	l.s.log.Info("live: published quotes left staged by a replica", "claimed", len(claimed), "published", len(publish), "already_published", len(settled))
	if err := l.s.db.unstage(ctx, settled); err != nil {
		return err
	}
	l.publishStored(ctx, publish, now, nil)
	return nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// recentIDs reads channel ch's history back as far as it goes (at most
// recentWindow messages) and returns the quote IDs in it, and whether it
// reaches back to since (a message published before since, or the
// channel's first message).
func (l *live) recentIDs(ctx context.Context, ch string, since time.Time) (map[string]bool, bool, error) {
	msgs, complete, err := readRecent(ctx, l.hub, ch, recentWindow)
	if err != nil {
		return nil, false, err
	}
	seen := make(map[string]bool, len(msgs))
	covered := complete
	for _, m := range msgs {
		var q liveQuote
		if json.Unmarshal(m.Data, &q) == nil {
			seen[q.ID] = true
			covered = covered || q.PublishedAt.Before(since)
		}
	}
	return seen, covered, nil
}

// readRecent returns the last n messages of ch from its history (fewer if
// the channel has fewer), and whether they start at the channel's first
// message. If the history cannot cover n messages it returns none.
func readRecent(ctx context.Context, hub *broadcast.Hub, ch string, n uint64) ([]broadcast.Message, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	sub, top, err := subscribeRecent(ctx, hub, ch, n)
	if err != nil {
		return nil, false, err
	}
	defer sub.Close()
	start := sub.Position()
	if !sub.Recovered() {
		return nil, false, nil
	}
	var out []broadcast.Message
	for start.Offset < top.Offset {
		m, err := sub.Next(ctx)
		if err != nil {
			return nil, false, err
		}
		if m.Kind != broadcast.Publication {
			continue
		}
		out = append(out, m)
		if m.Position.Offset >= top.Offset {
			break
		}
	}
	return out, start.Offset == 0, nil
}

// subscribeRecent subscribes to ch from n messages before its current
// position (top), so that the first messages are the last n of its
// history, then the live ones. If the history does not cover them the
// subscription is live from top (Recovered is false).
func subscribeRecent(ctx context.Context, hub *broadcast.Hub, ch string, n uint64) (*broadcast.Subscription, broadcast.Position, error) {
	sub, err := hub.Subscribe(ctx, ch)
	if err != nil {
		return nil, broadcast.Position{}, err
	}
	top := sub.Position()
	if top.Offset == 0 || n == 0 {
		return sub, top, nil
	}
	back, err := hub.Subscribe(ctx, ch, broadcast.Since(broadcast.Position{Epoch: top.Epoch, Offset: top.Offset - min(n, top.Offset)}))
	if err != nil || !back.Recovered() {
		if back != nil {
			back.Close()
		}
		return sub, top, nil
	}
	sub.Close()
	return back, top, nil
}

// countViewers is the live-viewers job: one replica at a time counts each
// symbol's viewers across all replicas (broadcast presence) and publishes
// the counts on "viewers".
func (l *live) countViewers(ctx context.Context, _ scheduler.Run) error {
	v := viewerCounts{At: time.Now().UTC(), By: l.s.cfg.replica, Symbols: map[string]int{}}
	all := map[string]bool{}
	for _, sym := range symbols {
		ms, err := l.hub.Presence(ctx, quoteChannelPrefix+sym)
		if err != nil {
			return err
		}
		v.Symbols[sym] = len(ms)
		for _, m := range ms {
			all[m.Node+"|"+m.ClientID] = true
		}
	}
	v.Total = len(all)
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = l.hub.Publish(ctx, viewersChannel, data)
	return err
}

// viewerCounts is the JSON of a message on "viewers".
type viewerCounts struct {
	At      time.Time      `json:"at"`
	By      string         `json:"by"`      // the replica that counted
	Symbols map[string]int `json:"symbols"` // viewers (connections) per symbol
	Total   int            `json:"total"`   // connections watching at least one symbol
}

// identifyViewer makes every connection a presence member: a page passes
// its random viewer ID (?viewer=), other clients get a random one.
func identifyViewer(r *http.Request) (broadcast.Member, error) {
	id := r.URL.Query().Get("viewer")
	if id == "" {
		return broadcast.Member{}, nil // the Hub picks a random ClientID
	}
	if !validViewerID(id) {
		return broadcast.Member{}, errors.New("quotes: viewer must be 8 to 64 letters, digits or '-'")
	}
	return broadcast.Member{ClientID: id}, nil
}

func validViewerID(id string) bool {
	if len(id) < 8 || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// authorizeViewer lets clients subscribe to (and list the presence of) the
// quote channels of known symbols, "replicas", "viewers" and their own
// viewer channel; nobody publishes from a connection.
func authorizeViewer(_ *http.Request, m broadcast.Member, ch string, a broadcast.Action) error {
	if a == broadcast.ActionPublish {
		return broadcast.ErrForbidden
	}
	switch {
	case ch == replicasChannel, ch == viewersChannel:
		return nil
	case strings.HasPrefix(ch, quoteChannelPrefix) && slices.Contains(symbols, ch[len(quoteChannelPrefix):]):
		return nil
	case ch == viewerChannelPrefix+m.ClientID:
		return nil
	}
	return broadcast.ErrForbidden
}

// serveLive serves /v1/live: the broadcast WebSocket endpoint.
func (l *live) serveLive(w http.ResponseWriter, r *http.Request) {
	l.handler.ServeHTTP(w, r)
}

// serveStream serves GET /v1/stream?symbol=ACME&symbol=…: Server-Sent
// Events of the symbols' quote channels (the broadcast SSE protocol, whose
// ids resume on any replica through Last-Event-ID or ?since=).
func (l *live) serveStream(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	syms := q["symbol"]
	if len(syms) == 0 {
		writeError(w, http.StatusBadRequest, "at least one symbol parameter is needed, e.g. ?symbol=ACME")
		return
	}
	fwd := url.Values{}
	for _, s := range syms {
		s = strings.ToUpper(s)
		if !slices.Contains(symbols, s) {
			writeError(w, http.StatusNotFound, fmt.Sprintf("unknown symbol %q; known: %s", s, strings.Join(symbols, ", ")))
			return
		}
		fwd.Add("channel", quoteChannelPrefix+s)
	}
	if v := q.Get("since"); v != "" {
		fwd.Set("since", v)
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(l.streams, cancel)
	defer stop()
	r2 := r.Clone(ctx)
	r2.URL.RawQuery = fwd.Encode()
	r2.Header.Set("Accept", "text/event-stream")
	l.handler.ServeHTTP(w, r2)
}

// serveBoard serves GET /v1/board: the state the page is rendered from,
// with the position of each channel it reflects.
func (l *live) serveBoard(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, l.board.snapshot(l.s.cfg.replica))
}

// routeLive adds the live endpoints: the streams on v1 (rate-limited like
// the rest of the API) and the page at /.
func (s *service) routeLive(v1, mux *http.ServeMux) {
	v1.HandleFunc("GET /v1/live", s.live.serveLive)
	v1.HandleFunc("GET /v1/stream", s.live.serveStream)
	v1.HandleFunc("GET /v1/board", s.live.serveBoard)
	mux.Handle("/", s.live.pages())
}
