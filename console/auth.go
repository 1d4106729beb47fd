package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"strings"
)

// csrfCookie holds the browser's CSRF token; every action must carry the
// same value in its "csrf" form field or X-CSRF-Token header (a double
// submit: a page of another site can neither read the cookie nor set the
// field). Cross-origin POSTs are refused before that, by
// http.CrossOriginProtection (Sec-Fetch-Site and Origin).
const csrfCookie = "outrigger_console_csrf"

// csrfHeader carries the token for API clients; GET responses include it.
const csrfHeader = "X-CSRF-Token"

// ensureCSRF returns the request's CSRF token, setting the cookie when it
// is missing. The cookie's path is the console's mount point, read from
// the request line (RequestURI is not rewritten by http.StripPrefix).
func ensureCSRF(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && validToken(c.Value) {
		return c.Value
	}
	var b [24]byte
	_, _ = rand.Read(b[:])
	tok := hex.EncodeToString(b[:])
	http.SetCookie(w, &http.Cookie{
		Name: csrfCookie, Value: tok, Path: mountPath(r), HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	return tok
}

func validToken(s string) bool {
	if len(s) != 48 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

var errCSRF = errors.New("console: missing or wrong CSRF token (reload the page)")

// checkCSRF reports whether an action carries the cookie's token.
func checkCSRF(r *http.Request) error {
	c, err := r.Cookie(csrfCookie)
	if err != nil || !validToken(c.Value) {
		return errCSRF
	}
	got := r.Header.Get(csrfHeader)
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(c.Value)) != 1 {
		return errCSRF
	}
	return nil
}

// mountPath is the path the console is served under: the request line's
// path minus the path the console's handler saw (after StripPrefix). "/"
// when a proxy stripped it before the request reached the service.
func mountPath(r *http.Request) string {
	orig := r.RequestURI
	if i := strings.IndexAny(orig, "?#"); i >= 0 {
		orig = orig[:i]
	}
	if u := r.URL.EscapedPath(); strings.HasSuffix(orig, u) {
		orig = orig[:len(orig)-len(u)]
	}
	if !strings.HasPrefix(orig, "/") {
		return "/"
	}
	return orig + "/"
}

// base returns the relative path from the request's page to the console's
// root ("./", "../", ...), so that links work under any prefix, with or
// without a proxy that rewrites it.
func base(r *http.Request) string {
	p := r.URL.EscapedPath()
	n := strings.Count(strings.TrimPrefix(p, "/"), "/")
	if n == 0 {
		return "./"
	}
	return strings.Repeat("../", n)
}

// user names who made the request.
func (h *handler) user(r *http.Request) string {
	if h.cfg.User != nil {
		if u := h.cfg.User(r); u != "" {
			return u
		}
	}
	if u, _, ok := r.BasicAuth(); ok && u != "" {
		return u
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "anonymous@" + host
}

// authorize decides a, for the request.
func (h *handler) authorize(r *http.Request, a Action) error {
	if a.Verb != Read && h.cfg.ReadOnly {
		return ErrReadOnly
	}
	if h.cfg.Authorize == nil {
		return nil
	}
	return h.cfg.Authorize(r, a)
}

// can reports whether the request may do a (for showing buttons).
func (h *handler) can(r *http.Request, a Action) bool { return h.authorize(r, a) == nil }

func authStatus(err error) int {
	if errors.Is(err, ErrUnauthenticated) {
		return http.StatusUnauthorized
	}
	return http.StatusForbidden
}
