// Command loadgen drives replicas of the quotes service with a mix of reads
// and a feed burst, then prints what happened: requests/s, latency, 429s
// against the global limit, cache hit ratio, database statements per
// request, quotes published vs rows stored, and job runs vs ticks.
//
// With -live N it first opens N clients of the live stream (WebSocket, SSE
// or both), spread over the targets, each following a few symbols, and
// measures them while the reads run: connect time, delivery latency from
// the feed's publish to receipt (the quote's ts) and from the broadcast
// publish (published_at), messages delivered, lost (offsets never
// delivered) and duplicated, and each replica's CPU and memory. It raises
// its open-files limit itself.
//
// Usage:
//
//	go run ./examples/loadgen -targets http://127.0.0.1:8081,http://127.0.0.1:8082 -duration 20s
//	go run ./examples/loadgen -live 10000 -targets :8081,:8082,:8083
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

type config struct {
	targets     []string
	duration    time.Duration
	concurrency int
	apiKeys     int
	apiLimit    int
	burst       int
	settle      time.Duration
	rollupEvery time.Duration
	live        liveConfig
}

func parseConfig(args []string) (config, error) {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	var c config
	targets := fs.String("targets", "http://127.0.0.1:8080", "comma-separated base URLs of the replicas (host:port or :port means http://…)")
	fs.DurationVar(&c.duration, "duration", 20*time.Second, "how long to send reads")
	fs.IntVar(&c.concurrency, "concurrency", 32, "concurrent readers")
	fs.IntVar(&c.apiKeys, "api-keys", 4, "distinct X-API-Key values the readers use")
	fs.IntVar(&c.apiLimit, "api-limit", 50, "the replicas' -api-limit (requests/s per key), to judge 429s")
	fs.IntVar(&c.burst, "burst", 20000, "quotes to ask the first replica's feed to deliver at once (0 = none)")
	fs.DurationVar(&c.rollupEvery, "rollup-interval", time.Minute, "the replicas' roll-up interval (their -rollup-interval; 1m for the default cron), to count its ticks")
	fs.DurationVar(&c.settle, "settle", 15*time.Second, "how long to wait after the reads for the queue to drain")
	fs.IntVar(&c.live.clients, "live", 0, "also open this many live-stream clients spread over the targets, measured while the reads run (0 = none)")
	fs.StringVar(&c.live.transport, "live-transport", "ws", "the live clients' protocol: ws (WebSocket), sse, or mixed (half each)")
	fs.IntVar(&c.live.symbols, "live-symbols", 3, "symbols each live client follows (1 to 8)")
	fs.IntVar(&c.live.dials, "live-dials", 200, "live connections being set up at once while ramping up")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	for _, t := range strings.Split(*targets, ",") {
		if t = strings.TrimRight(strings.TrimSpace(t), "/"); t != "" {
			if !strings.Contains(t, "://") {
				if strings.HasPrefix(t, ":") {
					t = "127.0.0.1" + t
				}
				t = "http://" + t
			}
			c.targets = append(c.targets, t)
		}
	}
	switch {
	case len(c.targets) == 0:
		return c, errors.New("loadgen: -targets is empty")
	case c.duration <= 0:
		return c, fmt.Errorf("loadgen: -duration must be > 0, got %v", c.duration)
	case c.concurrency < 1:
		return c, fmt.Errorf("loadgen: -concurrency must be >= 1, got %d", c.concurrency)
	case c.apiKeys < 1:
		return c, fmt.Errorf("loadgen: -api-keys must be >= 1, got %d", c.apiKeys)
	case c.rollupEvery <= 0:
		return c, fmt.Errorf("loadgen: -rollup-interval must be > 0, got %v", c.rollupEvery)
	case c.burst < 0:
		return c, fmt.Errorf("loadgen: -burst must be >= 0, got %d", c.burst)
	case c.live.clients < 0:
		return c, fmt.Errorf("loadgen: -live must be >= 0, got %d", c.live.clients)
	case c.live.transport != "ws" && c.live.transport != "sse" && c.live.transport != "mixed":
		return c, fmt.Errorf("loadgen: -live-transport must be ws, sse or mixed, got %q", c.live.transport)
	case c.live.symbols < 1 || c.live.symbols > 8:
		return c, fmt.Errorf("loadgen: -live-symbols must be 1 to 8, got %d", c.live.symbols)
	case c.live.dials < 1:
		return c, fmt.Errorf("loadgen: -live-dials must be >= 1, got %d", c.live.dials)
	}
	return c, nil
}

func main() {
	cfg, err := parseConfig(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	rep.print(os.Stdout)
}

// report is what one run measured.
type report struct {
	cfg             config
	elapsed         time.Duration
	requests        int64
	ok, limited     int64
	errors          int64
	p50, p99        time.Duration
	cacheHits       float64
	cacheLookups    float64
	dbStatements    float64
	quotesPublished float64
	quotesStored    float64
	rollupRuns      float64
	ticks           float64
	live            *liveReport // -live
}

func run(ctx context.Context, cfg config) (*report, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: cfg.concurrency}}
	var measuring atomic.Bool
	var liveClients []*liveClient
	var liveRep *liveReport
	if cfg.live.clients > 0 {
		liveCtx, stopLive := context.WithCancel(ctx)
		defer stopLive()
		var err error
		if liveClients, liveRep, err = startLive(liveCtx, cfg, &measuring); err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "loadgen: %d of %d live clients connected in %v\n", liveRep.connected, cfg.live.clients, liveRep.ramp.Round(time.Millisecond))
	}
	perTarget := func() ([]map[string]float64, error) {
		out := make([]map[string]float64, len(cfg.targets))
		for i, t := range cfg.targets {
			m, err := scrapeAll(ctx, client, []string{t})
			if err != nil {
				return nil, err
			}
			out[i] = m
		}
		return out, nil
	}
	targetsBefore, err := perTarget()
	if err != nil {
		return nil, err
	}
	before, err := scrapeAll(ctx, client, cfg.targets)
	if err != nil {
		return nil, err
	}
	var ruBefore syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ruBefore)
	start := time.Now()
	measuring.Store(true)
	if cfg.burst > 0 {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("%s/admin/feed/burst?n=%d", cfg.targets[0], cfg.burst), nil)
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("loadgen: feed burst: %w", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return nil, fmt.Errorf("loadgen: feed burst: %s", resp.Status)
		}
	}

	symbols := []string{"ACME", "GLOBX", "INITECH", "UMBRL", "WAYNE", "STARK", "HOOLI", "SOYL"}
	var ok, limited, failed atomic.Int64
	var mu sync.Mutex // protects lat
	var lat []time.Duration
	readCtx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	var wg sync.WaitGroup
	for w := range cfg.concurrency {
		wg.Go(func() {
			key := fmt.Sprintf("loadgen-%d", w%cfg.apiKeys)
			local := make([]time.Duration, 0, 1024)
			for readCtx.Err() == nil {
				target := cfg.targets[rand.IntN(len(cfg.targets))]
				sym := symbols[rand.IntN(len(symbols))]
				url := target + "/v1/quotes/" + sym
				if rand.IntN(10) == 0 {
					now := time.Now().UTC()
					url += fmt.Sprintf("/bars?from=%s&to=%s", now.Add(-time.Hour).Format(time.RFC3339), now.Format(time.RFC3339))
				}
				req, _ := http.NewRequestWithContext(readCtx, http.MethodGet, url, nil)
				req.Header.Set("X-API-Key", key)
				req.Header.Set("Accept-Encoding", "gzip")
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					if readCtx.Err() == nil {
						failed.Add(1)
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				local = append(local, time.Since(t0))
				switch {
				case resp.StatusCode == http.StatusTooManyRequests:
					limited.Add(1)
				case resp.StatusCode < 500:
					ok.Add(1)
				default:
					failed.Add(1)
				}
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	measuring.Store(false)
	if liveRep != nil {
		targetsAfter, err := perTarget()
		if err != nil {
			return nil, err
		}
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		cpu := func(r syscall.Rusage) float64 {
			return float64(r.Utime.Nano()+r.Stime.Nano()) / 1e9
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		liveRep.window = elapsed
		liveRep.replicas = replicaUsages(cfg.targets, targetsBefore, targetsAfter, elapsed.Seconds())
		liveRep.loadgenCPU = (cpu(ru) - cpu(ruBefore)) / elapsed.Seconds()
		liveRep.loadgenHeapM = float64(ms.HeapInuse) / (1 << 20)
		finishLive(ctx, client, cfg, liveClients, liveRep, 15*time.Second)
	}

	// Let the consumers drain the burst before reading the counters.
	deadline := time.Now().Add(cfg.settle)
	var after map[string]float64
	for {
		if after, err = scrapeAll(ctx, client, cfg.targets); err != nil {
			return nil, err
		}
		if after["quotes_stored_total"]-before["quotes_stored_total"] >= after["quotes_published_total"]-before["quotes_published_total"] || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	slices.Sort(lat)
	r := &report{cfg: cfg, elapsed: elapsed, ok: ok.Load(), limited: limited.Load(), errors: failed.Load(), live: liveRep}
	r.requests = r.ok + r.limited + r.errors
	if n := len(lat); n > 0 {
		r.p50, r.p99 = lat[n/2], lat[min(n-1, n*99/100)]
	}
	d := func(name string) float64 { return after[name] - before[name] }
	r.cacheHits = d(`cache_requests_total{result="hit_local"}`) + d(`cache_requests_total{result="hit_redis"}`)
	r.cacheLookups = r.cacheHits + d(`cache_requests_total{result="miss"}`)
	r.dbStatements = d("db_statements_total")
	r.quotesPublished = d("quotes_published_total")
	r.quotesStored = d("quotes_stored_total")
	r.rollupRuns = d("rollup_runs_total")
	// Ticks fall on multiples of the interval since the epoch: count those
	// in (start, now].
	every := int64(r.cfg.rollupEvery)
	r.ticks = float64(time.Now().UnixNano()/every - start.UnixNano()/every)
	return r, nil
}

// scrapeAll sums the counters of every target's /metrics, keyed by name and
// labels (`name{k="v"}`).
func scrapeAll(ctx context.Context, client *http.Client, targets []string) (map[string]float64, error) {
	sum := map[string]float64{}
	for _, t := range targets {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, t+"/metrics", nil)
		resp, err := client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("loadgen: scrape %s: %w", t, err)
		}
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("loadgen: parse %s/metrics: %w", t, err)
		}
		for name, mf := range families {
			for _, m := range mf.GetMetric() {
				var v float64
				switch {
				case m.Counter != nil:
					v = m.Counter.GetValue()
				case m.Gauge != nil:
					v = m.Gauge.GetValue()
				default:
					continue
				}
				sum[name+labels(m.GetLabel())] += v
			}
		}
	}
	return sum, nil
}

func labels(ls []*dto.LabelPair) string {
	if len(ls) == 0 {
		return ""
	}
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = fmt.Sprintf("%s=%q", l.GetName(), l.GetValue())
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.3f", a/b)
}

func (r *report) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	secs := r.elapsed.Seconds()
	allowedPerSec := float64(r.ok) / secs
	globalLimit := float64(r.cfg.apiLimit * r.cfg.apiKeys)
	fmt.Fprintf(tw, "replicas\t%d\n", len(r.cfg.targets))
	fmt.Fprintf(tw, "duration\t%.1fs\n", secs)
	fmt.Fprintf(tw, "requests/s\t%.0f\n", float64(r.requests)/secs)
	fmt.Fprintf(tw, "latency p50 / p99\t%v / %v\n", r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond))
	fmt.Fprintf(tw, "allowed/s vs global limit\t%.1f vs %.0f (%d keys x %d/s)\n", allowedPerSec, globalLimit, r.cfg.apiKeys, r.cfg.apiLimit)
	fmt.Fprintf(tw, "429s\t%d (%.1f%%)\n", r.limited, 100*float64(r.limited)/max(1, float64(r.requests)))
	fmt.Fprintf(tw, "errors\t%d\n", r.errors)
	fmt.Fprintf(tw, "cache hit ratio\t%s\n", ratio(r.cacheHits, r.cacheLookups))
	fmt.Fprintf(tw, "db statements per request\t%s\n", ratio(r.dbStatements, float64(r.requests)))
	fmt.Fprintf(tw, "quotes published / stored\t%.0f / %.0f\n", r.quotesPublished, r.quotesStored)
	fmt.Fprintf(tw, "roll-up runs / ticks (every %v)\t%.0f / %.0f\n", r.cfg.rollupEvery, r.rollupRuns, r.ticks)
	tw.Flush()
	if r.live != nil {
		r.live.print(w)
	}
}
