package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gorilla/websocket"

	"github.com/outrigger-dev/outrigger/examples/internal/liveclient"
)

// liveConfig is the -live mode: N clients of the live stream, spread over
// the targets, each following a few symbols, while the read mix runs.
type liveConfig struct {
	clients   int
	transport string // ws, sse or mixed
	symbols   int    // per client
	dials     int    // concurrent connection attempts while ramping up
}

// liveReport is what the live clients measured.
type liveReport struct {
	cfg          liveConfig
	targets      int
	nofile       uint64
	ramp         time.Duration
	connected    int
	connP50      time.Duration
	connP99      time.Duration
	window       time.Duration
	delivered    uint64
	latP50       time.Duration // feed publish → receipt
	latP99       time.Duration
	latMax       time.Duration
	fanP50       time.Duration // broadcast publish → receipt
	fanP99       time.Duration
	missing      uint64 // offsets skipped and never delivered
	repeated     uint64
	resyncs      uint64
	reconnects   uint64
	behind       int // clients that had not caught up with the channels' end
	replicas     []replicaUsage
	loadgenCPU   float64
	loadgenHeapM float64
}

// replicaUsage is one replica's resources over the measured window.
type replicaUsage struct {
	target      string
	conns       float64
	cpu         float64 // cores
	rss, heap   float64 // bytes
	goroutines  float64
	delivered   float64 // messages/s handed to live clients
	deliveredOK bool
}

// liveClient is one simulated browser: a liveclient.Client and its
// latency samples (µs), written only by its own goroutine.
type liveClient struct {
	c        *liveclient.Client
	lat, fan []int32
}

// raiseNoFile lifts the open-files limit to its hard maximum and returns it.
func raiseNoFile() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, err
		}
	}
	return uint64(lim.Cur), nil
}

// startLive connects the live clients, ramping up with at most cfg.dials
// connections in progress, and returns once all are subscribed (or failed
// to within 60s). measuring gates the latency samples.
func startLive(ctx context.Context, cfg config, measuring *atomic.Bool) ([]*liveClient, *liveReport, error) {
	lc := cfg.live
	rep := &liveReport{cfg: lc, targets: len(cfg.targets)}
	var err error
	if rep.nofile, err = raiseNoFile(); err != nil {
		return nil, nil, fmt.Errorf("loadgen: raising the open-files limit: %w", err)
	}
	if need := uint64(lc.clients) + 256; rep.nofile < need {
		return nil, nil, fmt.Errorf("loadgen: -live %d needs %d open files, the limit is %d (raise the hard limit: ulimit -Hn)", lc.clients, need, rep.nofile)
	}
	dialer := &websocket.Dialer{HandshakeTimeout: 30 * time.Second, NetDialContext: (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
		ReadBufferSize: 1024, WriteBufferSize: 1024}
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}}
	all := symbolList()
	clients := make([]*liveClient, lc.clients)
	sem := make(chan struct{}, lc.dials)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range lc.clients {
		n := len(cfg.targets)
		endpoints := make([]string, 0, n)
		for j := range n {
			endpoints = append(endpoints, cfg.targets[(i+j)%n])
		}
		syms := slices.Clone(all)
		rand.Shuffle(len(syms), func(a, b int) { syms[a], syms[b] = syms[b], syms[a] })
		c := &liveclient.Client{Endpoints: endpoints, Dialer: dialer, HTTPClient: httpc,
			Header: http.Header{"X-Api-Key": {fmt.Sprintf("loadgen-live-%d", i)}}}
		for _, s := range syms[:min(lc.symbols, len(syms))] {
			c.Channels = append(c.Channels, "quotes:"+s)
		}
		switch lc.transport {
		case "sse":
			c.Transport = liveclient.SSE
		case "mixed":
			if i%2 == 1 {
				c.Transport = liveclient.SSE
			}
		}
		cl := &liveClient{c: c}
		c.OnMessage = func(m liveclient.Message) {
			if !measuring.Load() {
				return
			}
			var q struct {
				TS          time.Time `json:"ts"`
				PublishedAt time.Time `json:"published_at"`
			}
			if json.Unmarshal(m.Data, &q) != nil {
				return
			}
			now := time.Now()
			cl.lat = append(cl.lat, int32(min(now.Sub(q.TS).Microseconds(), 1<<31-1)))
			cl.fan = append(cl.fan, int32(min(now.Sub(q.PublishedAt).Microseconds(), 1<<31-1)))
		}
		clients[i] = cl
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			// interrupted while ramping up: let the clients started so
			// far see the cancel, and say how far the ramp got
			wg.Wait()
			return nil, nil, fmt.Errorf("loadgen: interrupted after starting %d of %d live clients: %w", i, lc.clients, ctx.Err())
		}
		go func() { _ = c.Run(ctx) }()
		wg.Go(func() {
			defer func() { <-sem }()
			select {
			case <-c.Ready():
			case <-time.After(60 * time.Second):
			case <-ctx.Done():
			}
		})
	}
	wg.Wait()
	rep.ramp = time.Since(start)
	var conn []time.Duration
	for _, cl := range clients {
		select {
		case <-cl.c.Ready():
			conn = append(conn, cl.c.Stats().ConnectTime)
		default:
		}
	}
	rep.connected = len(conn)
	slices.Sort(conn)
	if n := len(conn); n > 0 {
		rep.connP50, rep.connP99 = conn[n/2], conn[min(n-1, n*99/100)]
	}
	return clients, rep, nil
}

// finishLive waits (at most settle) until every client has the channels'
// latest quote per the first target's board, then computes the report.
func finishLive(ctx context.Context, client *http.Client, cfg config, clients []*liveClient, rep *liveReport, settle time.Duration) {
	end := boardPositions(ctx, client, cfg.targets[0])
	deadline := time.Now().Add(settle)
	for {
		rep.behind = 0
		for _, cl := range clients {
			pos := cl.c.Positions()
			for _, ch := range cl.c.Channels {
				if e, ok := end[ch]; ok && (pos[ch].Epoch != e.Epoch || pos[ch].Offset < e.Offset) {
					rep.behind++
					break
				}
			}
		}
		if rep.behind == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	var lat, fan []int32
	for _, cl := range clients {
		st := cl.c.Stats()
		rep.missing += st.Missing
		rep.repeated += st.Repeated
		rep.resyncs += st.Resyncs
		if st.Connects > 1 {
			rep.reconnects += st.Connects - 1
		}
		lat = append(lat, cl.lat...)
		fan = append(fan, cl.fan...)
	}
	rep.delivered = uint64(len(lat))
	slices.Sort(lat)
	slices.Sort(fan)
	us := func(v int32) time.Duration { return time.Duration(v) * time.Microsecond }
	if n := len(lat); n > 0 {
		rep.latP50, rep.latP99, rep.latMax = us(lat[n/2]), us(lat[min(n-1, n*99/100)]), us(lat[n-1])
		rep.fanP50, rep.fanP99 = us(fan[n/2]), us(fan[min(n-1, n*99/100)])
	}
}

// boardPositions reads the channels' positions from a replica's /v1/board.
func boardPositions(ctx context.Context, client *http.Client, target string) map[string]liveclient.Position {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, target+"/v1/board", nil)
	req.Header.Set("X-Api-Key", "loadgen-board")
	resp, err := client.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var st struct {
		Symbols []struct {
			Symbol string              `json:"symbol"`
			Pos    liveclient.Position `json:"pos"`
		} `json:"symbols"`
	}
	body, _ := io.ReadAll(resp.Body)
	if json.Unmarshal(body, &st) != nil {
		return nil
	}
	out := map[string]liveclient.Position{}
	for _, s := range st.Symbols {
		out["quotes:"+s.Symbol] = s.Pos
	}
	return out
}

// replicaUsages computes each target's resources between two scrapes.
func replicaUsages(targets []string, before, after []map[string]float64, secs float64) []replicaUsage {
	out := make([]replicaUsage, len(targets))
	for i, t := range targets {
		b, a := before[i], after[i]
		out[i] = replicaUsage{target: strings.TrimPrefix(t, "http://"),
			cpu: (a["process_cpu_seconds_total"] - b["process_cpu_seconds_total"]) / secs,
			rss: a["process_resident_memory_bytes"], heap: a["go_memstats_heap_inuse_bytes"],
			goroutines: a["go_goroutines"], conns: a["broadcast_connections"]}
		if d, ok := a["broadcast_delivered_total"]; ok {
			out[i].delivered, out[i].deliveredOK = (d-b["broadcast_delivered_total"])/secs, true
		}
	}
	return out
}

func (r *liveReport) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\nlive clients\t%d of %d connected (%s), %d symbols each, over %d replicas; open-files limit %d\n",
		r.connected, r.cfg.clients, r.cfg.transport, r.cfg.symbols, r.targets, r.nofile)
	fmt.Fprintf(tw, "connect time p50 / p99\t%v / %v (all connected in %v)\n", r.connP50.Round(100*time.Microsecond), r.connP99.Round(100*time.Microsecond), r.ramp.Round(10*time.Millisecond))
	fmt.Fprintf(tw, "delivered\t%d in %.1fs (%.0f/s)\n", r.delivered, r.window.Seconds(), float64(r.delivered)/max(r.window.Seconds(), 1e-9))
	fmt.Fprintf(tw, "latency feed publish -> receipt p50 / p99 / max\t%v / %v / %v\n", r.latP50.Round(10*time.Microsecond), r.latP99.Round(10*time.Microsecond), r.latMax.Round(10*time.Microsecond))
	fmt.Fprintf(tw, "latency broadcast publish -> receipt p50 / p99\t%v / %v\n", r.fanP50.Round(10*time.Microsecond), r.fanP99.Round(10*time.Microsecond))
	fmt.Fprintf(tw, "lost (offsets never delivered) / duplicated\t%d / %d (resyncs %d, reconnects %d, clients behind at the end %d)\n", r.missing, r.repeated, r.resyncs, r.reconnects, r.behind)
	tw.Flush()
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "replica\tlive conns\tCPU (cores)\tRSS MiB\theap MiB\tgoroutines\tdelivered/s\t\n")
	for _, u := range r.replicas {
		d := "n/a"
		if u.deliveredOK {
			d = fmt.Sprintf("%.0f", u.delivered)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%.0f\t%.0f\t%.0f\t%s\t\n", u.target, u.conns, u.cpu, u.rss/(1<<20), u.heap/(1<<20), u.goroutines, d)
	}
	fmt.Fprintf(tw, "loadgen\t\t%.2f\t\t%.0f\t\t\t\n", r.loadgenCPU, r.loadgenHeapM)
	tw.Flush()
}

func symbolList() []string {
	return []string{"ACME", "GLOBX", "INITECH", "UMBRL", "WAYNE", "STARK", "HOOLI", "SOYL"}
}
