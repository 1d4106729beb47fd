package otel_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/outrigger-dev/outrigger/cache"
	"github.com/outrigger-dev/outrigger/compress"
	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/lock"
	"github.com/outrigger-dev/outrigger/otel"
	"github.com/outrigger-dev/outrigger/ratelimit"
	"github.com/outrigger-dev/outrigger/scheduler"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// meterProvider returns a provider whose metrics the test reads.
func meterProvider(t *testing.T) (*sdkmetric.MeterProvider, *sdkmetric.ManualReader) {
	t.Helper()
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return mp, r
}

// collect returns the metrics by name.
func collect(t *testing.T, r *sdkmetric.ManualReader) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.Collect(context.Background(), &rm))
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		assert.Equal(t, otel.ScopeName, sm.Scope.Name)
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// sum returns the sum of a counter's points whose attributes include want.
func sum(t *testing.T, m metricdata.Metrics, want ...attribute.KeyValue) int64 {
	t.Helper()
	s, ok := m.Data.(metricdata.Sum[int64])
	require.Truef(t, ok, "%s is %T, want an int64 sum", m.Name, m.Data)
	var n int64
	for _, p := range s.DataPoints {
		match := true
		for _, kv := range want {
			if v, ok := p.Attributes.Value(kv.Key); !ok || v != kv.Value {
				match = false
			}
		}
		if match {
			n += p.Value
		}
	}
	return n
}

func TestInstrumentCache(t *testing.T) {
	db := redistest.New(t)
	mp, r := meterProvider(t)
	hooks, err := otel.InstrumentCache("users", otel.WithMeterProvider(mp))
	require.NoError(t, err)
	c, err := cache.New[int](cache.WithRedis(db.Client), cache.WithPrefix(db.Prefix), cache.WithLocal(10, time.Minute), cache.WithHooks(hooks))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	ctx := context.Background()
	for range 3 {
		_, err := c.Fetch(ctx, "k", func(context.Context) (int, error) { return 1, nil })
		require.NoError(t, err)
	}
	_, err = c.Fetch(ctx, "absent", func(context.Context) (int, error) { return 0, cache.ErrNotFound })
	require.ErrorIs(t, err, cache.ErrNotFound)
	require.NoError(t, db.Client.HSet(ctx, db.Key("bad"), "f", "v").Err())
	_, err = c.Fetch(ctx, "bad", func(context.Context) (int, error) { return 1, nil })
	require.Error(t, err)

	ms := collect(t, r)
	name := attribute.String("outrigger.cache.name", "users")
	assert.Equal(t, int64(2), sum(t, ms["outrigger.cache.hits"], name, attribute.String("tier", "local"), attribute.Bool("stale", false)))
	assert.Equal(t, "{hit}", ms["outrigger.cache.hits"].Unit)
	assert.Equal(t, int64(2), sum(t, ms["outrigger.cache.misses"], name))
	assert.Equal(t, int64(1), sum(t, ms["outrigger.cache.errors"], name, attribute.String("error.type", "invalid")))
	h, ok := ms["outrigger.cache.load.duration"].Data.(metricdata.Histogram[float64])
	require.True(t, ok)
	assert.Equal(t, "s", ms["outrigger.cache.load.duration"].Unit)
	outcomes := map[string]uint64{}
	for _, p := range h.DataPoints {
		v, _ := p.Attributes.Value("outcome")
		outcomes[v.AsString()] += p.Count
	}
	assert.Equal(t, map[string]uint64{"ok": 1, "not_found": 1}, outcomes)
}

func TestInstrumentCompress(t *testing.T) {
	mp, r := meterProvider(t)
	hooks, err := otel.InstrumentCompress(otel.WithMeterProvider(mp))
	require.NoError(t, err)
	mw, err := compress.Middleware(compress.WithHooks(hooks))
	require.NoError(t, err)
	body := strings.Repeat(`{"symbol":"ACME","price":101.5}`, 200)
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}))
	for _, ae := range []string{"gzip", "zstd", ""} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("Accept-Encoding", ae)
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	ms := collect(t, r)
	for _, enc := range []string{"gzip", "zstd", "identity"} {
		a := attribute.String("http.response.content_encoding", enc)
		assert.Equal(t, int64(1), sum(t, ms["outrigger.compress.responses"], a), enc)
		assert.Equal(t, int64(len(body)), sum(t, ms["outrigger.compress.body.size"], a), enc)
		out := sum(t, ms["outrigger.compress.sent.size"], a)
		if enc == "identity" {
			assert.Equal(t, int64(len(body)), out)
		} else {
			assert.Less(t, out, int64(len(body))/5, "%s: compressed size", enc)
		}
	}
	assert.Equal(t, "By", ms["outrigger.compress.sent.size"].Unit)
}

func TestInstrumentRateLimit(t *testing.T) {
	db := redistest.New(t)
	mp, r := meterProvider(t)
	hooks, err := otel.InstrumentRateLimit("api", otel.WithMeterProvider(mp))
	require.NoError(t, err)
	l, err := ratelimit.NewRedis(db.Client, ratelimit.PerMinute(2), ratelimit.WithPrefix(db.Prefix), ratelimit.WithHooks(hooks))
	require.NoError(t, err)
	ctx := context.Background()
	for range 3 {
		_, err := l.Allow(ctx, "k")
		require.NoError(t, err)
	}
	ms := collect(t, r)
	d := ms["outrigger.ratelimit.decisions"]
	name := attribute.String("outrigger.ratelimit.name", "api")
	assert.Equal(t, int64(2), sum(t, d, name, attribute.Bool("allowed", true), attribute.String("source", "redis")))
	assert.Equal(t, int64(1), sum(t, d, name, attribute.Bool("allowed", false)))
}

// TestHooksAllocateNothing: recording through the hooks allocates nothing.
func TestHooksAllocateNothing(t *testing.T) {
	mp, _ := meterProvider(t)
	ch, err := otel.InstrumentCache("c", otel.WithMeterProvider(mp))
	require.NoError(t, err)
	rh, err := otel.InstrumentRateLimit("r", otel.WithMeterProvider(mp))
	require.NoError(t, err)
	xh, err := otel.InstrumentCompress(otel.WithMeterProvider(mp))
	require.NoError(t, err)
	res := ratelimit.Result{Allowed: true, Source: ratelimit.SourceRedis}
	for name, f := range map[string]func(){
		"cache hit":     func() { ch.OnHit("k", cache.TierLocal, false) },
		"cache load":    func() { ch.OnLoad(1, time.Millisecond, nil) },
		"ratelimit":     func() { rh.OnDecision("k", res) },
		"compress gzip": func() { xh.OnResponse(compress.Gzip, 1000, 100) },
	} {
		f()
		assert.Zero(t, testing.AllocsPerRun(100, f), "%s: allocations per call", name)
	}
}

func TestInstrumentLock(t *testing.T) {
	mp, r := meterProvider(t)
	hooks, err := otel.InstrumentLock("jobs", otel.WithMeterProvider(mp))
	require.NoError(t, err)
	l := lock.NewLocal(lock.WithHooks(hooks))
	ctx := context.Background()
	a, err := l.TryAcquire(ctx, "k", time.Minute)
	require.NoError(t, err)
	_, err = l.TryAcquire(ctx, "k", time.Minute)
	require.ErrorIs(t, err, lock.ErrNotAcquired)
	require.NoError(t, a.Release(ctx))
	ms := collect(t, r)
	h, ok := ms["outrigger.lock.acquire.duration"].Data.(metricdata.Histogram[float64])
	require.True(t, ok)
	got := map[string]uint64{}
	for _, p := range h.DataPoints {
		v, _ := p.Attributes.Value("outcome")
		got[v.AsString()] += p.Count
	}
	assert.Equal(t, map[string]uint64{"acquired": 1, "not_acquired": 1}, got)
	hold, ok := ms["outrigger.lock.hold.duration"].Data.(metricdata.Histogram[float64])
	require.True(t, ok)
	require.Len(t, hold.DataPoints, 1)
	assert.Equal(t, uint64(1), hold.DataPoints[0].Count)
}

func TestInstrumentScheduler(t *testing.T) {
	mp, r := meterProvider(t)
	hooks, err := otel.InstrumentScheduler(otel.WithMeterProvider(mp))
	require.NoError(t, err)
	s, err := scheduler.NewLocal(scheduler.WithHooks(hooks))
	require.NoError(t, err)
	ran := make(chan struct{}, 10)
	require.NoError(t, s.Every("roll-up", 100*time.Millisecond, func(context.Context, scheduler.Run) error {
		ran <- struct{}{}
		return nil
	}))
	require.NoError(t, s.Start(context.Background()))
	<-ran
	<-ran
	require.NoError(t, s.Stop(context.Background()))
	ms := collect(t, r)
	job := attribute.String("outrigger.job.name", "roll-up")
	assert.GreaterOrEqual(t, sum(t, ms["outrigger.scheduler.claims"], job, attribute.Bool("won", true)), int64(2))
	d, ok := ms["outrigger.scheduler.run.duration"].Data.(metricdata.Histogram[float64])
	require.True(t, ok)
	var n uint64
	for _, p := range d.DataPoints {
		n += p.Count
	}
	assert.GreaterOrEqual(t, n, uint64(2))
}
