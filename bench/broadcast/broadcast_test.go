package broadcastbench

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/centrifugal/centrifuge"
	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/broadcast"
	"github.com/outrigger-dev/outrigger/internal/redistest"
)

func TestMain(m *testing.M) {
	if runLoader() {
		return
	}
	raiseNoFile()
	redistest.Main(m)
}

// deployment is three replicas of one implementation on one Redis, each
// behind its own HTTP server.
type deployment struct {
	stats   func() string // for failure messages
	urls    []string
	publish func(ctx context.Context, replica int, channel string, data []byte) error
	close   func()
}

var impls = []struct {
	name  string
	start func(tb testing.TB, redisAddr, prefix string) *deployment
}{
	{"outrigger", startOutrigger},
	{"centrifuge", startCentrifuge},
}

const replicas = 3

func wsURL(srv *httptest.Server, path string) string {
	return "ws" + strings.TrimPrefix(srv.URL, "http") + path
}

func startOutrigger(tb testing.TB, addr, prefix string) *deployment {
	d := &deployment{}
	var hubs []*broadcast.Hub
	var srvs []*httptest.Server
	for range replicas {
		c := redis.NewClient(&redis.Options{Addr: addr})
		h, err := broadcast.New(c, broadcast.WithPrefix(prefix))
		if err != nil {
			tb.Fatal(err)
		}
		mux := http.NewServeMux()
		mux.Handle("/live", h.Handler())
		srv := httptest.NewServer(mux)
		hubs, srvs = append(hubs, h), append(srvs, srv)
		d.urls = append(d.urls, wsURL(srv, "/live"))
		defer func(c *redis.Client) { tb.Cleanup(func() { _ = c.Close() }) }(c)
	}
	d.publish = func(ctx context.Context, i int, ch string, data []byte) error {
		_, err := hubs[i].Publish(ctx, ch, data)
		return err
	}
	d.stats = func() string {
		var b strings.Builder
		for _, h := range hubs {
			fmt.Fprintf(&b, "%+v; ", h.Stats())
		}
		return b.String()
	}
	d.close = func() {
		for i := range hubs {
			_ = hubs[i].Close()
			srvs[i].Close()
		}
	}
	return d
}

func startCentrifuge(tb testing.TB, addr, prefix string) *deployment {
	d := &deployment{}
	var nodes []*centrifuge.Node
	var srvs []*httptest.Server
	for range replicas {
		node, err := centrifuge.New(centrifuge.Config{LogLevel: centrifuge.LogLevelNone})
		if err != nil {
			tb.Fatal(err)
		}
		shard, err := centrifuge.NewRedisShard(node, centrifuge.RedisShardConfig{Address: addr})
		if err != nil {
			tb.Fatal(err)
		}
		broker, err := centrifuge.NewRedisBroker(node, centrifuge.RedisBrokerConfig{Prefix: prefix, Shards: []*centrifuge.RedisShard{shard}})
		if err != nil {
			tb.Fatal(err)
		}
		node.SetBroker(broker)
		node.OnConnecting(func(ctx context.Context, e centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
			return centrifuge.ConnectReply{Credentials: &centrifuge.Credentials{UserID: "bench"}}, nil
		})
		node.OnConnect(func(c *centrifuge.Client) {
			c.OnSubscribe(func(e centrifuge.SubscribeEvent, cb centrifuge.SubscribeCallback) {
				cb(centrifuge.SubscribeReply{}, nil)
			})
		})
		if err := node.Run(); err != nil {
			tb.Fatal(err)
		}
		mux := http.NewServeMux()
		mux.Handle("/connection/websocket", centrifuge.NewWebsocketHandler(node, centrifuge.WebsocketConfig{
			CheckOrigin:        func(*http.Request) bool { return true },
			UseWriteBufferPool: true, // its lowest-memory setting
		}))
		srv := httptest.NewServer(mux)
		nodes, srvs = append(nodes, node), append(srvs, srv)
		d.urls = append(d.urls, wsURL(srv, "/connection/websocket"))
	}
	d.publish = func(ctx context.Context, i int, ch string, data []byte) error {
		// The same history as broadcast's default: 256 messages, 10 minutes.
		_, err := nodes[i].Publish(ch, data, centrifuge.WithHistory(256, 10*time.Minute))
		return err
	}
	d.stats = func() string { return "" }
	d.close = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for i := range nodes {
			_ = nodes[i].Shutdown(ctx)
			srvs[i].Close()
		}
	}
	return d
}

// payload is the published data: a sequence number and the publish time.
func payload(seq int) []byte {
	return []byte(`{"s":` + strconv.Itoa(seq) + `,"t":` + strconv.FormatInt(time.Now().UnixNano(), 10) + `}`)
}

// setup starts a Redis, the deployment, and a loader with conns
// connections spread over the replicas and channels.
func setup(b *testing.B, name string, start func(testing.TB, string, string) *deployment, conns int, channels []string) (*deployment, *child) {
	b.Helper()
	srv := redistest.StartServer(b)
	d := start(b, srv.Addr(), "bench-"+name+":")
	b.Cleanup(d.close)
	c := startLoader(b, loaderSpec{Impl: name, URLs: d.urls, Conns: conns, Channels: channels})
	return d, c
}

func checkNoLoss(b *testing.B, r loaderReport) {
	b.Helper()
	b.ReportMetric(float64(r.Missing), "lost")
	if r.Missing != 0 || r.Duplicates != 0 {
		b.Errorf("lost %d, duplicated %d of %d deliveries", r.Missing, r.Duplicates, r.Delivered+r.Missing)
	}
}

// size returns full when b.N > 1, else (the single warm-up iteration Go
// runs first, or a -benchtime 1x smoke run) small.
func size(b *testing.B, full, small int) int {
	if b.N > 1 {
		return full
	}
	return small
}

// BenchmarkFanOutLatency: 3 replicas with 1,000 WebSocket subscribers each
// on one channel; b.N messages published one at a time, every 100ms,
// round-robin on the three; the latency from Publish to each delivery.
func BenchmarkFanOutLatency(b *testing.B) {
	for _, im := range impls {
		b.Run("impl="+im.name+"/subs=3000", func(b *testing.B) {
			subs := size(b, 3000, 300)
			d, c := setup(b, im.name, im.start, subs, []string{"fan"})
			ctx := context.Background()
			warm(b, d, c, subs)
			b.ResetTimer()
			for k := range b.N {
				if err := d.publish(ctx, k%replicas, "fan", payload(k)); err != nil {
					b.Fatal(err)
				}
				time.Sleep(100 * time.Millisecond)
			}
			r := c.report(b, b.N)
			b.StopTimer()
			checkNoLoss(b, r)
			b.ReportMetric(r.P50, "p50-µs")
			b.ReportMetric(r.P99, "p99-µs")
			b.ReportMetric(r.Max, "max-µs")
		})
	}
}

// warm publishes one message and waits until every connection has it, so
// that the measured messages find every subscription in place.
func warm(b *testing.B, d *deployment, c *child, conns int) {
	b.Helper()
	if err := d.publish(context.Background(), 0, "fan", []byte(`{"s":1000000,"t":0}`)); err != nil {
		b.Fatal(err)
	}
	if r := c.report(b, 1); r.Delivered != int64(conns) {
		b.Fatalf("warm-up: %d of %d delivered; %s", r.Delivered, conns, d.stats())
	}
	c.reset(b)
}

// BenchmarkFanOutThroughput: the same 3,000 subscribers; b.N messages
// published as fast as 4 goroutines can (b.N at most the client buffer,
// 1,000, so that no subscriber is cut off); deliveries per second until the
// last one arrived.
func BenchmarkFanOutThroughput(b *testing.B) {
	for _, im := range impls {
		b.Run("impl="+im.name+"/subs=3000", func(b *testing.B) {
			subs := size(b, 3000, 300)
			d, c := setup(b, im.name, im.start, subs, []string{"fan"})
			ctx := context.Background()
			warm(b, d, c, subs)
			n := min(b.N, 1000)
			b.ResetTimer()
			start := time.Now()
			var next atomic.Int64
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					for {
						k := int(next.Add(1) - 1)
						if k >= n {
							return
						}
						if err := d.publish(ctx, k%replicas, "fan", payload(k)); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			r := c.report(b, n)
			b.StopTimer()
			checkNoLoss(b, r)
			elapsed := time.Duration(r.LastAt - start.UnixNano())
			b.ReportMetric(float64(r.Delivered)/elapsed.Seconds(), "delivered/s")
			b.ReportMetric(float64(n)/elapsed.Seconds(), "published/s")
			b.ReportMetric(r.P99, "p99-µs")
		})
	}
}

// BenchmarkIdleConnections: 10,000 WebSocket connections on 3 replicas,
// each subscribed to one of 100 channels. The server process's heap and
// goroutine stacks (after GC) and goroutines before and after, per
// connection; then max(b.N, 300) messages published round-robin on the
// channels every 2ms, and the delivery latency.
func BenchmarkIdleConnections(b *testing.B) {
	const nch = 100
	channels := make([]string, nch)
	for i := range channels {
		channels[i] = "idle-" + strconv.Itoa(i)
	}
	for _, im := range impls {
		b.Run("impl="+im.name+"/conns=10000", func(b *testing.B) {
			conns := size(b, 10000, 1000)
			srv := redistest.StartServer(b)
			d := im.start(b, srv.Addr(), "bench-idle-"+im.name+":")
			b.Cleanup(d.close)
			heap0, stack0, g0 := serverMem()
			c := startLoader(b, loaderSpec{Impl: im.name, URLs: d.urls, Conns: conns, Channels: channels})
			time.Sleep(time.Second) // let handshakes' garbage and timers settle
			heap1, stack1, g1 := serverMem()

			ctx := context.Background()
			n := max(b.N, size(b, 300, 100))
			n -= n % nch
			b.ResetTimer()
			for k := range n {
				if err := d.publish(ctx, k%replicas, channels[k%nch], payload(k/nch)); err != nil {
					b.Fatal(err)
				}
				time.Sleep(2 * time.Millisecond)
			}
			r := c.report(b, n/nch)
			b.StopTimer()
			checkNoLoss(b, r)
			b.ReportMetric(r.P50, "p50-µs")
			b.ReportMetric(r.P99, "p99-µs")
			// After ResetTimer, which drops reported metrics.
			b.ReportMetric(float64(int64(heap1+stack1)-int64(heap0+stack0))/float64(conns), "B/conn")
			b.ReportMetric(float64(int64(heap1)-int64(heap0))/float64(conns), "heap-B/conn")
			b.ReportMetric(float64(int64(stack1)-int64(stack0))/float64(conns), "stack-B/conn")
			b.ReportMetric(float64(g1-g0)/float64(conns), "goroutines/conn")
			c.stop()
		})
	}
}

// serverMem returns the heap in use, the goroutine stacks and the number
// of goroutines of this process, after two GCs.
func serverMem() (heap, stack uint64, goroutines int) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc, m.StackInuse, runtime.NumGoroutine()
}
