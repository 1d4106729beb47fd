package main

import (
	"crypto/subtle"
	"errors"
	"net/http"

	"github.com/outrigger-dev/outrigger/broadcast"
	"github.com/outrigger-dev/outrigger/cache"
	"github.com/outrigger-dev/outrigger/console"
	"github.com/outrigger-dev/outrigger/lock"
	"github.com/outrigger-dev/outrigger/queue"
	"github.com/outrigger-dev/outrigger/ratelimit"
	"github.com/outrigger-dev/outrigger/scheduler"
)

// consolePath is where the console is mounted.
const consolePath = "/admin/console/"

// routeConsole mounts the Outrigger console at /admin/console/ (with Redis
// backends: it reads what the packages keep in Redis). With -console-token
// (CONSOLE_TOKEN) every request needs HTTP Basic authentication with that
// token as the password (the user name is recorded in the audit); without
// it the console is open and read-only.
func (s *service) routeConsole(mux *http.ServeMux) error {
	if s.rdb == nil {
		mux.HandleFunc(consolePath, func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "the console needs Redis backends: start the service with -redis", http.StatusNotFound)
		})
		return nil
	}
	p := s.cfg.keyPrefix
	cfg := console.Config{
		Title:      "Quotes",
		ReadOnly:   s.cfg.consoleToken == "",
		Logger:     s.log,
		AuditRedis: s.rdb, AuditKey: p + "console:audit",
	}
	var err error
	if s.cfg.queueKind == "redis" {
		if cfg.Queues, err = queue.NewInspector(s.rdb, queue.WithPrefix(p)); err != nil {
			return err
		}
	}
	if cfg.Jobs, err = scheduler.NewInspector(s.rdb, scheduler.WithNamespace(p+"jobs:")); err != nil {
		return err
	}
	if cfg.Locks, err = lock.NewInspector(s.rdb, lock.WithPrefix(p+"lock:")); err != nil {
		return err
	}
	if rl, ok := s.limiter.(*ratelimit.RedisLimiter); ok {
		cfg.Limiters = []console.Limiter{{Name: "api", Inspector: rl.Inspector()}}
	}
	ci, err := cache.NewInspector(s.rdb, cache.WithPrefix(p+"cache:"))
	if err != nil {
		return err
	}
	cfg.Caches = []console.Cache{{Name: "quotes", Inspector: ci, Stats: s.cache.Stats}}
	if cfg.Channels, err = broadcast.NewInspector(s.rdb, broadcast.WithPrefix(p+"live:")); err != nil {
		return err
	}
	h := http.StripPrefix("/admin/console", console.Handler(cfg))
	if tok := s.cfg.consoleToken; tok != "" {
		h = requireToken(tok, h)
	}
	mux.Handle(consolePath, h)
	return nil
}

// errNoToken is what the console's Authorize never sees: requireToken
// answers first.
var errNoToken = errors.New("quotes: the console needs the operator token")

// requireToken lets through requests whose Basic-auth password is token,
// and asks the browser for it otherwise.
func requireToken(token string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pw, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(pw), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="quotes console", charset="UTF-8"`)
			http.Error(w, errNoToken.Error(), http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
