package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
)

// store keeps the latest quote per symbol. It is safe for concurrent use.
type store struct {
	mu     sync.RWMutex // protects latest
	latest map[string]quote
}

func newStore() *store { return &store{latest: make(map[string]quote)} }

func (s *store) put(q quote) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.latest[q.Symbol]; !ok || !q.TS.Before(cur.TS) {
		s.latest[q.Symbol] = q
	}
}

func (s *store) get(symbol string) (quote, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	q, ok := s.latest[symbol]
	return q, ok
}

func newAPI(s *store) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /v1/quotes/{symbol}", func(w http.ResponseWriter, r *http.Request) {
		sym := strings.ToUpper(r.PathValue("symbol"))
		if !validSymbol(sym) {
			writeError(w, http.StatusBadRequest, "symbol must be 1 to 10 letters")
			return
		}
		q, ok := s.get(sym)
		if !ok {
			writeError(w, http.StatusNotFound, "no quote for "+sym)
			return
		}
		writeJSON(w, http.StatusOK, q)
	})
	return mux
}

func validSymbol(s string) bool {
	if len(s) < 1 || len(s) > 10 {
		return false
	}
	for _, c := range s {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
