// Package console is a web dashboard to see and operate Outrigger's queues,
// scheduled jobs, locks, rate limits and caches, mounted in your own
// service:
//
//	qi, _ := queue.NewInspector(rdb, queue.WithPrefix("app:"))
//	ji, _ := scheduler.NewInspector(rdb, scheduler.WithNamespace("app:jobs:"))
//	li, _ := lock.NewInspector(rdb, lock.WithPrefix("app:lock:"))
//	h := console.Handler(console.Config{
//		Queues: qi, Jobs: ji, Locks: li,
//		Limiters: []console.Limiter{{Name: "api", Inspector: limiter.Inspector()}},
//		Authorize: func(r *http.Request, a console.Action) error {
//			if !isAdmin(r) && a.Verb != console.Read {
//				return errors.New("admins only")
//			}
//			return nil
//		},
//		AuditRedis: rdb,
//	})
//	mux.Handle("/admin/console/", http.StripPrefix("/admin/console", h))
//
// It is built only on the packages' Inspector APIs (queue.Inspector,
// scheduler.Inspector, lock.Inspector, ratelimit.Inspector,
// cache.Inspector), which read what the packages keep in Redis: every
// replica's work shows, and the console may run in any of them (or in a
// process of its own).
//
// # Pages
//
//   - Overview: every queue (ready, in flight, delayed, dead, age of the
//     oldest message, throughput, consumers, paused), charts of queue depth
//     and throughput over the last hour (recorded in Redis by the queues
//     themselves, per minute), every scheduled job (last run and outcome,
//     next run, missed-tick and paused flags) and the held locks.
//   - Queue: its counts and charts, its consumers, its messages by state
//     with paging, dead letters filtered by error substring, replay and
//     delete of the selected dead letters or of all that match (applied in
//     Redis in bounded batches, with a count), pause and resume of its
//     consumption on every replica.
//   - Schedules: every job with its history, missed-tick flags, run now,
//     pause and resume; the scheduler replicas.
//   - Locks: held locks with owner (host and PID), fencing token, TTL and
//     waiters; a fenced force release.
//   - Rate limits: a key's state (remaining, reset) and reset.
//   - Caches: keys and subscribed caches per prefix, a key's entry, and
//     invalidation on every replica.
//   - Audit: the recent actions, who did them and what they did.
//
// Every page's data is also served as JSON under /api/ (the overview at
// /api/overview, a queue at /api/queues/<name>, its history at
// /api/queues/<name>/history, the queue list at /api/queues, ...), and
// every action is a POST of a form to the page's path (or the same path
// under /api/ for a JSON answer): for example POST /api/queues/orders/requeue
// with all=1&error=timeout, or id=<message ID> repeated.
//
// # Security
//
// Authorize is called for every request with the Action it asks for
// (verb, kind and name), so that access can depend on the user, the verb
// and the queue or job; ReadOnly refuses every action whatever Authorize
// says, and hides the buttons. With neither, everything is allowed: mount
// the console behind your own authentication.
//
// Every action needs a CSRF token: the console sets a random token in a
// cookie (HttpOnly, SameSite=Strict, path of the mount point) and every
// action must send the same value in its "csrf" form field or X-CSRF-Token
// header (API clients read it from the X-CSRF-Token header of any GET);
// cross-origin POSTs are refused first by http.CrossOriginProtection. The
// pages set a Content-Security-Policy that allows only the console's own
// stylesheet and script, no inline code, no frames.
//
// Every action, allowed, refused or failed, is recorded with who did it
// (Config.User), from where, what was asked and what it did, on
// Config.Logger and, with Config.AuditRedis, in a capped Redis stream
// shown on the audit page (and written by the outrigger command too).
//
// # Under a prefix
//
// Every link, form and asset URL is relative to the page, so the console
// works under any path prefix, with http.StripPrefix or behind a proxy
// that strips or adds one. Only the CSRF cookie's path is taken from the
// request line (falling back to "/").
//
// # No build step
//
// Pages are html/template with the templates, the stylesheet and the
// script embedded (go:embed). Charts are inline SVG drawn on the server.
// The script (static/console.js, about 60 lines written for the console,
// no library) refreshes the open page every Config.Refresh, unless you are
// typing, selecting or reading an expanded message, and asks for
// confirmation before destructive actions; the pages work without it.
package console
