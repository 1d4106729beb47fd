package ratelimit_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/outrigger-dev/outrigger/ratelimit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })

func get(t *testing.T, h http.Handler, path, remote string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	r.RemoteAddr = remote
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestMiddlewareHeaders(t *testing.T) {
	clk := &fakeClock{}
	clk.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	l, err := ratelimit.NewLocal(ratelimit.Limit{Rate: 100, Period: time.Minute, Burst: 3}, ratelimit.WithClock(clk.now))
	require.NoError(t, err)
	h := ratelimit.Middleware(l, ratelimit.KeyByIP())(okHandler)
	for i := range 3 {
		w := get(t, h, "/", "192.0.2.1:1234", nil)
		require.Equal(t, http.StatusOK, w.Code)
		assert.Equal(t, "ok", w.Body.String())
		assert.Equal(t, `"default";q=100;w=60`, w.Header().Get("RateLimit-Policy"))
		// each request adds 0.6s of debt: t = ceil(0.6 × (i+1))
		wantT := (6*(i+1) + 9) / 10
		assert.Equal(t, `"default";r=`+strconv.Itoa(2-i)+`;t=`+strconv.Itoa(wantT), w.Header().Get("RateLimit"))
		assert.Equal(t, "100", w.Header().Get("X-RateLimit-Limit"))
		assert.Equal(t, strconv.Itoa(2-i), w.Header().Get("X-RateLimit-Remaining"))
		reset, err := strconv.ParseInt(w.Header().Get("X-RateLimit-Reset"), 10, 64)
		require.NoError(t, err)
		assert.InDelta(t, time.Now().Unix()+int64(wantT), reset, 2)
		assert.Empty(t, w.Header().Get("Retry-After"))
	}
	w := get(t, h, "/", "192.0.2.1:1234", nil)
	assert.Equal(t, http.StatusTooManyRequests, w.Code)
	assert.Equal(t, "1", w.Header().Get("Retry-After"), "0.6s remaining rounds up to 1s, not the 60s window")
	assert.Equal(t, `"default";r=0;t=2`, w.Header().Get("RateLimit"))
	assert.Equal(t, "0", w.Header().Get("X-RateLimit-Remaining"))

	// another client is not affected
	w = get(t, h, "/", "192.0.2.2:1234", nil)
	assert.Equal(t, http.StatusOK, w.Code)

	// Retry-After is the time remaining: after 0.5s, 0.1s are left → 1
	clk.advance(500 * time.Millisecond)
	w = get(t, h, "/", "192.0.2.1:1234", nil)
	assert.Equal(t, "1", w.Header().Get("Retry-After"))
	clk.advance(100 * time.Millisecond)
	w = get(t, h, "/", "192.0.2.1:1234", nil)
	assert.Equal(t, http.StatusOK, w.Code)
}

func TestMiddlewareRetryAfterLong(t *testing.T) {
	clk := &fakeClock{}
	l, err := ratelimit.NewLocal(ratelimit.PerHour(1), ratelimit.WithClock(clk.now))
	require.NoError(t, err)
	h := ratelimit.Middleware(l, ratelimit.KeyByIP(), ratelimit.PolicyName("hourly"))(okHandler)
	get(t, h, "/", "192.0.2.1:1", nil)
	clk.advance(20 * time.Minute)
	w := get(t, h, "/", "192.0.2.1:1", nil)
	require.Equal(t, http.StatusTooManyRequests, w.Code)
	assert.Equal(t, "2400", w.Header().Get("Retry-After"))
	assert.Equal(t, `"hourly";q=1;w=3600`, w.Header().Get("RateLimit-Policy"))
	assert.Equal(t, `"hourly";r=0;t=2400`, w.Header().Get("RateLimit"))
}

func TestMiddlewareOptions(t *testing.T) {
	newL := func() *ratelimit.LocalLimiter {
		l, err := ratelimit.NewLocal(ratelimit.PerHour(5))
		require.NoError(t, err)
		return l
	}
	t.Run("skip paths", func(t *testing.T) {
		h := ratelimit.Middleware(newL(), ratelimit.KeyByIP(), ratelimit.SkipPaths("/healthz"))(okHandler)
		for range 10 {
			w := get(t, h, "/healthz", "192.0.2.1:1", nil)
			require.Equal(t, http.StatusOK, w.Code)
			assert.Empty(t, w.Header().Get("RateLimit"))
		}
		assert.Equal(t, http.StatusOK, get(t, h, "/", "192.0.2.1:1", nil).Code)
	})
	t.Run("cost from context", func(t *testing.T) {
		mw := ratelimit.Middleware(newL(), ratelimit.KeyByIP())(okHandler)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/export" {
				r = r.WithContext(ratelimit.WithCost(r.Context(), 4))
			}
			mw.ServeHTTP(w, r)
		})
		w := get(t, h, "/export", "192.0.2.1:1", nil)
		require.Equal(t, http.StatusOK, w.Code)
		assert.Equal(t, "1", w.Header().Get("X-RateLimit-Remaining"))
		assert.Equal(t, http.StatusTooManyRequests, get(t, h, "/export", "192.0.2.1:1", nil).Code)
		assert.Equal(t, http.StatusOK, get(t, h, "/", "192.0.2.1:1", nil).Code)
	})
	t.Run("cost func and never allowed", func(t *testing.T) {
		h := ratelimit.Middleware(newL(), ratelimit.KeyByIP(), ratelimit.CostFunc(func(*http.Request) int { return 6 }))(okHandler)
		w := get(t, h, "/", "192.0.2.1:1", nil)
		assert.Equal(t, http.StatusTooManyRequests, w.Code)
		assert.Empty(t, w.Header().Get("Retry-After"), "a cost above the burst never succeeds: no Retry-After")
	})
	t.Run("errors fail open by default", func(t *testing.T) {
		h := ratelimit.Middleware(newL(), ratelimit.KeyByIP(), ratelimit.CostFunc(func(*http.Request) int { return -1 }))(okHandler)
		w := get(t, h, "/", "192.0.2.1:1", nil)
		assert.Equal(t, http.StatusOK, w.Code)
		assert.Equal(t, "ok", w.Body.String())
	})
	t.Run("error handler", func(t *testing.T) {
		var got error
		h := ratelimit.Middleware(newL(), ratelimit.KeyByHeader("X-API-Key"),
			ratelimit.OnError(func(w http.ResponseWriter, _ *http.Request, err error) {
				got = err
				http.Error(w, "no key", http.StatusUnauthorized)
			}))(okHandler)
		w := get(t, h, "/", "192.0.2.1:1", nil)
		assert.Equal(t, http.StatusUnauthorized, w.Code)
		assert.ErrorIs(t, got, ratelimit.ErrNoKey)
	})
	t.Run("limiter error", func(t *testing.T) {
		calls := 0
		h := ratelimit.Middleware(errLimiter{}, ratelimit.KeyByIP(),
			ratelimit.OnError(func(w http.ResponseWriter, _ *http.Request, err error) {
				calls++
				assert.ErrorIs(t, err, errBackend)
				w.WriteHeader(http.StatusServiceUnavailable)
			}))(okHandler)
		assert.Equal(t, http.StatusServiceUnavailable, get(t, h, "/", "192.0.2.1:1", nil).Code)
		assert.Equal(t, 1, calls)
		// default handler: fail open, no 500
		h = ratelimit.Middleware(errLimiter{}, ratelimit.KeyByIP())(okHandler)
		assert.Equal(t, http.StatusOK, get(t, h, "/", "192.0.2.1:1", nil).Code)
	})
	t.Run("headers off and denied handler", func(t *testing.T) {
		h := ratelimit.Middleware(newL(), ratelimit.KeyByIP(), ratelimit.DraftHeaders(false), ratelimit.LegacyHeaders(false),
			ratelimit.OnDenied(func(w http.ResponseWriter, _ *http.Request, res ratelimit.Result) {
				w.WriteHeader(http.StatusServiceUnavailable)
			}), ratelimit.CostFunc(func(*http.Request) int { return 5 }))(okHandler)
		w := get(t, h, "/", "192.0.2.1:1", nil)
		assert.Equal(t, http.StatusOK, w.Code)
		assert.Empty(t, w.Header().Get("RateLimit"))
		assert.Empty(t, w.Header().Get("X-RateLimit-Limit"))
		assert.Equal(t, http.StatusServiceUnavailable, get(t, h, "/", "192.0.2.1:1", nil).Code)
	})
	t.Run("key by header with fallback", func(t *testing.T) {
		h := ratelimit.Middleware(newL(), ratelimit.KeyByHeader("X-API-Key", ratelimit.KeyByIP()),
			ratelimit.CostFunc(func(*http.Request) int { return 5 }))(okHandler)
		assert.Equal(t, http.StatusOK, get(t, h, "/", "192.0.2.1:1", map[string]string{"X-API-Key": "a"}).Code)
		assert.Equal(t, http.StatusTooManyRequests, get(t, h, "/", "192.0.2.1:1", map[string]string{"X-API-Key": "a"}).Code)
		assert.Equal(t, http.StatusOK, get(t, h, "/", "192.0.2.1:1", map[string]string{"X-API-Key": "b"}).Code)
		assert.Equal(t, http.StatusOK, get(t, h, "/", "192.0.2.1:1", nil).Code, "no header: keyed by IP")
		// a header value equal to an IP does not share that IP's quota
		assert.Equal(t, http.StatusOK, get(t, h, "/", "192.0.2.9:1", map[string]string{"X-API-Key": "192.0.2.1"}).Code)
	})
}

var errBackend = errors.New("backend down")

type errLimiter struct{}

func (errLimiter) Allow(ctx context.Context, key string) (ratelimit.Result, error) {
	return ratelimit.Result{}, errBackend
}
func (errLimiter) AllowN(context.Context, string, int) (ratelimit.Result, error) {
	return ratelimit.Result{}, errBackend
}
func (errLimiter) Wait(context.Context, string) error { return errBackend }

func TestKeyByIP(t *testing.T) {
	trusted := []string{"10.0.0.0/8", "192.168.1.1", "2001:db8:ffff::/48"}
	tests := []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"direct v4", "203.0.113.7:5555", nil, "203.0.113.7"},
		{"untrusted peer ignores XFF", "203.0.113.7:5555", []string{"1.2.3.4"}, "203.0.113.7"},
		{"trusted proxy", "10.0.0.2:80", []string{"203.0.113.7"}, "203.0.113.7"},
		{"spoofed left entries ignored", "10.0.0.2:80", []string{"6.6.6.6, 203.0.113.7"}, "203.0.113.7"},
		{"chain of trusted proxies", "10.0.0.2:80", []string{"6.6.6.6, 203.0.113.7, 192.168.1.1, 10.1.1.1"}, "203.0.113.7"},
		{"several headers", "10.0.0.2:80", []string{"6.6.6.6", "203.0.113.7, 10.9.9.9"}, "203.0.113.7"},
		{"garbage right of client", "10.0.0.2:80", []string{"203.0.113.7, garbage"}, "10.0.0.2"},
		{"garbage left of client", "10.0.0.2:80", []string{"garbage, 203.0.113.7"}, "203.0.113.7"},
		{"all trusted", "10.0.0.2:80", []string{"10.0.0.3, 10.0.0.4"}, "10.0.0.3"},
		{"empty XFF", "10.0.0.2:80", []string{""}, "10.0.0.2"},
		{"empty hop", "10.0.0.2:80", []string{"203.0.113.7,,10.0.0.5"}, "10.0.0.5"},
		{"hop with port", "10.0.0.2:80", []string{"203.0.113.7:4711"}, "203.0.113.7"},
		{"v6 hop with port", "10.0.0.2:80", []string{"[2001:db8:1:2::99]:4711"}, "2001:db8:1:2::/64"},
		{"v6 keyed by /64", "[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:443", nil, "2001:db8:1:2::/64"},
		{"v6 same /64", "[2001:db8:1:2::1]:443", nil, "2001:db8:1:2::/64"},
		{"v6 trusted proxy", "[2001:db8:ffff:1::1]:443", []string{"2001:db8:abcd:12:1::1"}, "2001:db8:abcd:12::/64"},
		{"v4-mapped", "[::ffff:203.0.113.7]:80", nil, "203.0.113.7"},
		{"v6 zone", "[fe80::1%eth0]:80", nil, "fe80::/64"},
		{"spaces", "10.0.0.2:80", []string{"  203.0.113.7  ,  10.0.0.3 "}, "203.0.113.7"},
	}
	kf, err := ratelimit.NewKeyByIP(trusted...)
	require.NoError(t, err)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			got, err := kf(r)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			got2, err := ratelimit.KeyByIP(trusted...)(r)
			require.NoError(t, err)
			assert.Equal(t, got, got2)
		})
	}

	t.Run("no trusted proxies ignores XFF", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = "10.0.0.2:80"
		r.Header.Set("X-Forwarded-For", "1.2.3.4")
		got, err := ratelimit.KeyByIP()(r)
		require.NoError(t, err)
		assert.Equal(t, "10.0.0.2", got)
	})
	t.Run("bad trusted proxy", func(t *testing.T) {
		_, err := ratelimit.NewKeyByIP("10.0.0.0/8", "not-an-ip")
		require.ErrorIs(t, err, ratelimit.ErrInvalidArgument)
		assert.Contains(t, err.Error(), `"not-an-ip"`)
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		_, err = ratelimit.KeyByIP("not-an-ip")(r)
		require.ErrorIs(t, err, ratelimit.ErrInvalidArgument)
	})
	t.Run("bad remote addr", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = "@"
		_, err := ratelimit.KeyByIP()(r)
		require.ErrorIs(t, err, ratelimit.ErrNoKey)
	})
}

// FuzzKeyByIP: key extraction never panics, always yields an IP or a /64,
// and a client behind an untrusted peer can never choose its key.
func FuzzKeyByIP(f *testing.F) {
	f.Add("203.0.113.7:5555", "1.2.3.4")
	f.Add("10.0.0.2:80", "6.6.6.6, 203.0.113.7, 10.0.0.3")
	f.Add("[2001:db8::1]:80", "[::1]:1, fe80::1%eth0")
	f.Add("10.0.0.2:80", ",,, ,")
	kf, err := ratelimit.NewKeyByIP("10.0.0.0/8", "2001:db8::/32")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, remote, xff string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", xff)
		key, err := kf(r)
		if err != nil {
			if !errors.Is(err, ratelimit.ErrNoKey) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if key == "" {
			t.Fatal("empty key")
		}
		direct := httptest.NewRequest(http.MethodGet, "/", nil)
		direct.RemoteAddr = remote
		want, err := ratelimit.KeyByIP()(direct)
		if err != nil {
			t.Fatalf("peer parsed with trust but not without: %v", err)
		}
		if !isTrusted(want) && key != want {
			t.Fatalf("untrusted peer %q: key %q chosen from XFF %q", remote, key, xff)
		}
	})
}

func isTrusted(key string) bool {
	return len(key) > 3 && key[:3] == "10." || len(key) > 9 && key[:9] == "2001:db8:"
}
