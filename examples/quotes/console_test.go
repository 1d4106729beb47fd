package main

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/console"
	"github.com/outrigger-dev/outrigger/internal/redistest"
)

// TestConsoleMounted: the service serves the console at /admin/console/,
// read-only and open without a token, behind Basic auth with one.
func TestConsoleMounted(t *testing.T) {
	db := redistest.New(t)
	cfg := testConfig(t)
	cfg.redisAddr = db.Addrs[0]
	cfg.keyPrefix = db.Prefix
	cfg.feedRate = 20

	t.Run("no token: read-only", func(t *testing.T) {
		base, stop := startInProcess(t, cfg)
		defer func() { require.NoError(t, stop()) }()
		c := consoleClient(t, "", "")
		code, body := c.do(t, http.MethodGet, base+"/admin/console/", nil)
		require.Equal(t, http.StatusOK, code, body)
		assert.Contains(t, body, "read-only")
		assert.Contains(t, body, "Quotes")
		code, body = c.do(t, http.MethodGet, base+"/admin/console/jobs", nil)
		require.Equal(t, http.StatusOK, code, body)
		assert.Contains(t, body, "purge")
		code, body = c.do(t, http.MethodPost, base+"/admin/console/api/jobs/purge/pause", url.Values{})
		assert.Equal(t, http.StatusForbidden, code, body)
		assert.Contains(t, body, "read-only")
	})

	t.Run("token", func(t *testing.T) {
		cfg := cfg
		cfg.consoleToken = "s3cret"
		cfg.keyPrefix = db.Prefix + "t:"
		base, stop := startInProcess(t, cfg)
		defer func() { require.NoError(t, stop()) }()
		anon := consoleClient(t, "", "")
		code, _ := anon.do(t, http.MethodGet, base+"/admin/console/", nil)
		assert.Equal(t, http.StatusUnauthorized, code)
		wrong := consoleClient(t, "ops", "guess")
		code, _ = wrong.do(t, http.MethodGet, base+"/admin/console/", nil)
		assert.Equal(t, http.StatusUnauthorized, code)

		c := consoleClient(t, "ops", "s3cret")
		code, body := c.do(t, http.MethodGet, base+"/admin/console/", nil)
		require.Equal(t, http.StatusOK, code, body)
		assert.NotContains(t, body, "read-only")
		require.Eventually(t, func() bool {
			code, body := c.do(t, http.MethodGet, base+"/admin/console/api/jobs/purge", nil)
			return code == http.StatusOK && strings.Contains(body, `"name": "purge"`)
		}, 30*time.Second, 50*time.Millisecond, "the scheduler did not register purge")
		code, body = c.do(t, http.MethodPost, base+"/admin/console/api/jobs/purge/pause", url.Values{})
		require.Equal(t, http.StatusOK, code, body)
		code, body = c.do(t, http.MethodGet, base+"/admin/console/api/jobs/purge", nil)
		require.Equal(t, http.StatusOK, code)
		assert.Contains(t, body, `"paused": true`)
		assert.Contains(t, body, `"paused_by": "ops"`)
		recs, err := console.NewAuditor(nil, db.Client, cfg.keyPrefix+"console:audit", 0).Recent(t.Context(), 10)
		require.NoError(t, err)
		require.NotEmpty(t, recs)
		assert.Equal(t, "ops", recs[0].User)
		assert.Equal(t, "pause job:purge", recs[0].Action.String())
	})
}

// consoleClient keeps cookies (the CSRF token) and sends Basic auth.
type cclient struct {
	http     *http.Client
	user, pw string
}

func consoleClient(t *testing.T, user, pw string) *cclient {
	jar, _ := cookiejar.New(nil)
	return &cclient{http: &http.Client{Jar: jar, Timeout: 30 * time.Second}, user: user, pw: pw}
}

func (c *cclient) do(t *testing.T, method, u string, form url.Values) (int, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		pu, _ := url.Parse(u)
		for _, ck := range c.http.Jar.Cookies(pu) {
			if ck.Name == "outrigger_console_csrf" {
				form.Set("csrf", ck.Value)
			}
		}
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	require.NoError(t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pw)
	}
	resp, err := c.http.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
