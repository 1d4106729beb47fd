package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/outrigger-dev/outrigger/cache"
	"github.com/outrigger-dev/outrigger/compress"
	"github.com/outrigger-dev/outrigger/lock"
	outotel "github.com/outrigger-dev/outrigger/otel"
	"github.com/outrigger-dev/outrigger/ratelimit"
	"github.com/outrigger-dev/outrigger/scheduler"
)

// Bounds of the API's inputs.
const (
	maxBarsRange = 7 * 24 * time.Hour
	maxBurst     = 1_000_000
	burstWorkers = 64
)

// apiQuote is the JSON a client sees for a quote.
type apiQuote struct {
	Symbol string    `json:"symbol"`
	Price  float64   `json:"price"`
	TS     time.Time `json:"ts"`
}

// handler builds the HTTP API: compression on every response, the shared
// rate limit on /v1/.
func (s *service) handler() (http.Handler, error) {
	compressHooks, err := outotel.InstrumentCompress(s.tel.opts...)
	if err != nil {
		return nil, err
	}
	compressed, err := compress.Middleware(compress.WithHooks(compressHooks))
	if err != nil {
		return nil, err
	}
	limited := ratelimit.Middleware(s.limiter, ratelimit.KeyByHeader("X-API-Key", ratelimit.KeyByIP()))

	v1 := http.NewServeMux()
	v1.Handle("GET /v1/quotes/{symbol}", s.metrics.instrument("quote", http.HandlerFunc(s.getQuote)))
	v1.Handle("GET /v1/quotes/{symbol}/bars", s.metrics.instrument("bars", http.HandlerFunc(s.getBars)))

	mux := http.NewServeMux()
	mux.Handle("/v1/", limited(v1))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", s.metrics.handler())
	mux.Handle("POST /admin/rebuild-bars", s.metrics.instrument("rebuild", http.HandlerFunc(s.rebuildBars)))
	mux.HandleFunc("GET /admin/jobs/{name}/history", s.jobHistory)
	mux.Handle("POST /admin/feed/burst", s.metrics.instrument("burst", http.HandlerFunc(s.feedBurst)))
	s.routeLive(v1, mux)
	if err := s.routeConsole(mux); err != nil { // console.go
		return nil, err
	}
	return compressed(mux), nil
}

func (s *service) getQuote(w http.ResponseWriter, r *http.Request) {
	sym, ok := symbolParam(w, r)
	if !ok {
		return
	}
	q, err := s.cache.Fetch(r.Context(), sym, func(ctx context.Context) (quote, error) {
		q, err := s.db.latest(ctx, sym)
		if errors.Is(err, errNoQuote) {
			return q, cache.ErrNotFound
		}
		return q, err
	})
	switch {
	case errors.Is(err, cache.ErrNotFound):
		writeError(w, http.StatusNotFound, "no quote for "+sym)
	case err != nil:
		s.log.Error("get quote", "symbol", sym, "err", err)
		writeError(w, http.StatusServiceUnavailable, "quote store unavailable")
	default:
		writeJSON(w, http.StatusOK, apiQuote{Symbol: q.Symbol, Price: q.Price, TS: q.TS})
	}
}

func (s *service) getBars(w http.ResponseWriter, r *http.Request) {
	sym, ok := symbolParam(w, r)
	if !ok {
		return
	}
	from, to, ok := rangeParams(w, r, time.Now().Add(-time.Hour), time.Now())
	if !ok {
		return
	}
	bars, err := s.db.bars(r.Context(), sym, from, to)
	if err != nil {
		s.log.Error("get bars", "symbol", sym, "err", err)
		writeError(w, http.StatusServiceUnavailable, "bar store unavailable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"symbol": sym, "from": from, "to": to, "bars": bars})
}

// rebuildBars recomputes the bars of a range. A lock makes sure one rebuild
// runs at a time across all replicas; a second request gets 409.
func (s *service) rebuildBars(w http.ResponseWriter, r *http.Request) {
	from, to, ok := rangeParams(w, r, time.Now().Add(-24*time.Hour), time.Now())
	if !ok {
		return
	}
	lk, err := s.locker.TryAcquire(r.Context(), "rebuild-bars", time.Minute)
	if errors.Is(err, lock.ErrNotAcquired) {
		writeError(w, http.StatusConflict, "a rebuild is already running")
		return
	}
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "lock unavailable: "+err.Error())
		return
	}
	defer lk.Release(context.WithoutCancel(r.Context()))
	// Stop the work the moment the lock is lost (the lock's Lost channel).
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-lk.Lost():
			cancel()
		case <-ctx.Done():
		}
	}()
	total := 0
	for day := from; day.Before(to); day = day.Add(24 * time.Hour) {
		// Keep the lock while long rebuilds run, one day at a time.
		if err := lk.Refresh(ctx, time.Minute); err != nil {
			writeError(w, http.StatusConflict, "lost the rebuild lock: "+err.Error())
			return
		}
		end := day.Add(24 * time.Hour)
		if end.After(to) {
			end = to
		}
		n, err := s.db.rollup(ctx, day, end)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, "rebuild failed: "+err.Error())
			return
		}
		total += n
	}
	writeJSON(w, http.StatusOK, map[string]any{"from": from, "to": to, "bars": total, "token": lk.Token()})
}

// feedBurst makes the feed deliver n quotes at once, as a third party's
// backlog would: the burst the queue and the Batcher exist to absorb.
func (s *service) feedBurst(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.URL.Query().Get("n"))
	if err != nil || n < 1 || n > maxBurst {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("n must be an integer from 1 to %d", maxBurst))
		return
	}
	s.ingestMu.Lock()
	if s.ingestStopped || s.feedCtx == nil || s.feedCtx.Err() != nil {
		s.ingestMu.Unlock()
		writeError(w, http.StatusServiceUnavailable, "shutting down")
		return
	}
	s.work.Go(func() { runBurst(s.feedCtx, n, burstWorkers, s.feedIDs, s.publish) })
	s.ingestMu.Unlock()
	writeJSON(w, http.StatusAccepted, map[string]int{"quotes": n})
}

// jobHistory lists a job's recent runs across all replicas.
func (s *service) jobHistory(w http.ResponseWriter, r *http.Request) {
	n := 100
	if v := r.URL.Query().Get("n"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > 10000 {
			writeError(w, http.StatusBadRequest, "n must be an integer from 1 to 10000")
			return
		}
	}
	runs, err := s.sched.History(r.Context(), r.PathValue("name"), n)
	switch {
	case errors.Is(err, scheduler.ErrUnknownJob):
		writeError(w, http.StatusNotFound, err.Error())
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeJSON(w, http.StatusOK, runs)
	}
}

func (s *service) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if !s.ready.Load() {
		writeError(w, http.StatusServiceUnavailable, "not ready")
		return
	}
	if err := s.db.db.PingContext(ctx); err != nil {
		writeError(w, http.StatusServiceUnavailable, "database: "+err.Error())
		return
	}
	if s.rdb != nil {
		if err := s.rdb.Ping(ctx).Err(); err != nil {
			writeError(w, http.StatusServiceUnavailable, "redis: "+err.Error())
			return
		}
	}
	if err := s.live.hub.Ready(ctx); err != nil {
		writeError(w, http.StatusServiceUnavailable, "live: "+err.Error())
		return
	}
	fmt.Fprintln(w, "ready")
}

// symbolParam reads and checks {symbol}: 1 to 10 letters, any case.
func symbolParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	sym := strings.ToUpper(r.PathValue("symbol"))
	ok := len(sym) >= 1 && len(sym) <= 10
	for _, c := range sym {
		ok = ok && c >= 'A' && c <= 'Z'
	}
	if !ok {
		writeError(w, http.StatusBadRequest, "symbol must be 1 to 10 letters")
	}
	return sym, ok
}

// rangeParams reads from and to (RFC 3339), with defaults, and checks that
// from < to and the range is at most maxBarsRange.
func rangeParams(w http.ResponseWriter, r *http.Request, defFrom, defTo time.Time) (from, to time.Time, ok bool) {
	parse := func(name string, def time.Time) (time.Time, bool) {
		v := r.URL.Query().Get(name)
		if v == "" {
			return def.UTC(), true
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			writeError(w, http.StatusBadRequest, name+" must be an RFC 3339 time, e.g. 2026-01-02T15:04:05Z")
			return t, false
		}
		return t.UTC(), true
	}
	if from, ok = parse("from", defFrom); !ok {
		return
	}
	if to, ok = parse("to", defTo); !ok {
		return
	}
	switch {
	case !from.Before(to):
		writeError(w, http.StatusBadRequest, "from must be before to")
		return from, to, false
	case to.Sub(from) > maxBarsRange:
		writeError(w, http.StatusBadRequest, "the range may span at most 7 days")
		return from, to, false
	}
	return from, to, true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
