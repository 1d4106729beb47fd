// Package queuebench compares the queue package with hibiken/asynq on the
// same Redis, in one run.
package queuebench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/queue"
)

func TestMain(m *testing.M) { redistest.Main(m) }

const (
	publishers  = 64 // goroutines publishing one message per call
	concurrency = 32 // handlers running at once
)

var body = []byte(`{"symbol":"ACME","bid":101.25,"ask":101.27,"ts":1732540000123}`)

// impl is one queue implementation under test.
type impl struct {
	name string
	// setup returns a publish func, a func starting consumers that call
	// onMsg per message (it returns a stop func), and a cleanup.
	setup func(b *testing.B, c redis.UniversalClient, prefix string) (publish func(context.Context) error, consume func(onMsg func()) (stop func()), cleanup func())
}

var impls = []impl{
	{"outrigger", setupOutrigger},
	{"asynq", setupAsynq},
}

func setupOutrigger(b *testing.B, c redis.UniversalClient, prefix string) (func(context.Context) error, func(func()) func(), func()) {
	q, err := queue.NewRedis(c, "bench", queue.WithPrefix(prefix))
	if err != nil {
		b.Fatal(err)
	}
	publish := func(ctx context.Context) error {
		_, err := q.Publish(ctx, body)
		return err
	}
	consume := func(onMsg func()) func() {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = q.Consume(ctx, func(context.Context, *queue.Message) error { onMsg(); return nil }, queue.Concurrency(concurrency))
		}()
		return func() { cancel(); <-done }
	}
	return publish, consume, func() { _ = q.Close() }
}

type quietLogger struct{}

func (quietLogger) Debug(...any) {}
func (quietLogger) Info(...any)  {}
func (quietLogger) Warn(...any)  {}
func (quietLogger) Error(...any) {}
func (quietLogger) Fatal(...any) {}

func setupAsynq(b *testing.B, c redis.UniversalClient, prefix string) (func(context.Context) error, func(func()) func(), func()) {
	qname := prefix + "asynq" // asynq has no key prefix: a unique queue name isolates the run
	client := asynq.NewClientFromRedisClient(c)
	publish := func(ctx context.Context) error {
		_, err := client.EnqueueContext(ctx, asynq.NewTask("noop", body), asynq.Queue(qname))
		return err
	}
	consume := func(onMsg func()) func() {
		srv := asynq.NewServerFromRedisClient(c, asynq.Config{
			Concurrency: concurrency,
			Queues:      map[string]int{qname: 1},
			Logger:      quietLogger{},
			LogLevel:    asynq.FatalLevel,
		})
		mux := asynq.NewServeMux()
		mux.HandleFunc("noop", func(context.Context, *asynq.Task) error { onMsg(); return nil })
		if err := srv.Start(mux); err != nil {
			b.Fatal(err)
		}
		return srv.Shutdown
	}
	cleanup := func() {
		ctx := context.Background()
		var keys []string
		iter := c.Scan(ctx, 0, "asynq:{"+qname+"}*", 1000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		for _, k := range keys {
			c.Del(ctx, k)
		}
		c.SRem(ctx, "asynq:queues", qname)
	}
	return publish, consume, cleanup
}

// publishAll publishes n messages from the publishers goroutines.
func publishAll(b *testing.B, n int, publish func(context.Context) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Int64
	ctx := context.Background()
	for range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if err := publish(ctx); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d publishes failed", f)
	}
}

func waitFor(b *testing.B, done *atomic.Int64, n int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for done.Load() < int64(n) {
		if time.Now().After(deadline) {
			b.Fatalf("processed %d of %d messages in %v", done.Load(), n, timeout)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// processCPU is the CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// redisCPU is the CPU time the Redis server has used (INFO cpu).
func redisCPU(b *testing.B, c redis.UniversalClient) time.Duration {
	info, err := c.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, line := range strings.Split(info, "\r\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second))
}

// ownServer starts a Redis server for one benchmark, so that the server's
// CPU time is the benchmark's alone, and returns a counted client.
func ownServer(b *testing.B) (*redis.Client, *redistest.Counter) {
	s := redistest.StartServer(b)
	c := s.Client(b, func(o *redis.Options) { o.PoolSize = 128 })
	cnt := redistest.NewCounter()
	c.AddHook(cnt)
	return c, cnt
}

// cpuMeter measures CPU time per message of this process and of Redis.
type cpuMeter struct {
	c         redis.UniversalClient
	self, srv time.Duration
}

func startCPU(b *testing.B, c redis.UniversalClient) *cpuMeter {
	return &cpuMeter{c: c, self: processCPU(), srv: redisCPU(b, c)}
}

func (m *cpuMeter) report(b *testing.B) {
	b.ReportMetric(float64((processCPU()-m.self).Nanoseconds())/1e3/float64(b.N), "client-cpu-µs/msg")
	b.ReportMetric(float64((redisCPU(b, m.c)-m.srv).Nanoseconds())/1e3/float64(b.N), "redis-cpu-µs/msg")
	if os.Getenv("OUTRIGGER_BENCH_CMDSTATS") != "" {
		logCommandStats(b, m.c)
	}
}

// logCommandStats logs, per command and script, the Redis CPU time per
// message (INFO commandstats; the server is the benchmark's own, so the
// totals since its start are the run's, warm-up included). Set
// OUTRIGGER_BENCH_CMDSTATS=1 to see where the server's time goes.
func logCommandStats(b *testing.B, c redis.UniversalClient) {
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		name, stats, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		var calls, usec float64
		for _, kv := range strings.Split(stats, ",") {
			k, v, _ := strings.Cut(kv, "=")
			f, _ := strconv.ParseFloat(v, 64)
			switch k {
			case "calls":
				calls = f
			case "usec":
				usec = f
			}
		}
		b.Logf("%-28s calls/msg %8.4f  µs/msg %7.3f  µs/call %8.2f", name[len("cmdstat_"):], calls/float64(b.N), usec/float64(b.N), usec/max(calls, 1))
	}
}

// BenchmarkPublishProcess: b.N small messages published one per call from
// 64 goroutines while consumers with 32 handlers process them (no-op
// handler). Run with -benchtime 100000x for the headline figure. Besides
// msgs/s it reports the CPU time per message of this process and of the
// Redis server (each benchmark starts its own), which a busy machine
// disturbs less than the rate.
func BenchmarkPublishProcess(b *testing.B) {
	for _, im := range impls {
		b.Run("impl="+im.name, func(b *testing.B) {
			c, cnt := ownServer(b)
			publish, consume, cleanup := im.setup(b, c, "bench:")
			defer cleanup()
			var done atomic.Int64
			stop := consume(func() { done.Add(1) })
			defer stop()
			b.ReportAllocs()
			cnt.Reset()
			b.ResetTimer()
			cpu := startCPU(b, c)
			publishAll(b, b.N, publish)
			waitFor(b, &done, b.N, 10*time.Minute)
			b.StopTimer()
			cpu.report(b)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			cnt.Report(b)
		})
	}
}

// BenchmarkPublish: publish only, 64 goroutines one message per call, and
// (outrigger) PublishBatch of 100.
func BenchmarkPublish(b *testing.B) {
	for _, im := range impls {
		b.Run("impl="+im.name+"/mode=single", func(b *testing.B) {
			c, cnt := ownServer(b)
			publish, _, cleanup := im.setup(b, c, "bench:")
			defer cleanup()
			b.ReportAllocs()
			cnt.Reset()
			cpu := startCPU(b, c)
			b.ResetTimer()
			publishAll(b, b.N, publish)
			b.StopTimer()
			cpu.report(b)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			cnt.Report(b)
		})
	}
	b.Run("impl=outrigger/mode=batch100", func(b *testing.B) {
		c, cnt := ownServer(b)
		q, err := queue.NewRedis(c, "bench", queue.WithPrefix("bench:"))
		if err != nil {
			b.Fatal(err)
		}
		bodies := make([][]byte, 100)
		for i := range bodies {
			bodies[i] = body
		}
		ctx := context.Background()
		b.ReportAllocs()
		cnt.Reset()
		cpu := startCPU(b, c)
		b.ResetTimer()
		for i := 0; i < b.N; i += 100 {
			if _, err := q.PublishBatch(ctx, bodies[:min(100, b.N-i)]); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		cpu.report(b)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		cnt.Report(b)
	})
}

// BenchmarkConsume: consume only, b.N messages published beforehand.
func BenchmarkConsume(b *testing.B) {
	for _, im := range impls {
		b.Run("impl="+im.name, func(b *testing.B) {
			c, cnt := ownServer(b)
			publish, consume, cleanup := im.setup(b, c, "bench:")
			defer cleanup()
			publishAll(b, b.N, publish)
			var done atomic.Int64
			b.ReportAllocs()
			cnt.Reset()
			cpu := startCPU(b, c)
			b.ResetTimer()
			stop := consume(func() { done.Add(1) })
			waitFor(b, &done, b.N, 10*time.Minute)
			b.StopTimer()
			cpu.report(b)
			stop()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			cnt.Report(b)
		})
	}
}

// BenchmarkPickupLatency: on an idle queue, the time from Publish to the
// handler starting, one message at a time. Reports p50 and p99.
func BenchmarkPickupLatency(b *testing.B) {
	for _, im := range impls {
		b.Run("impl="+im.name, func(b *testing.B) {
			db := redistest.New(b)
			c := db.NewClient(b)
			publish, consume, cleanup := im.setup(b, c, db.Prefix)
			defer cleanup()
			got := make(chan time.Time, 1)
			stop := consume(func() { got <- time.Now() })
			defer stop()
			time.Sleep(100 * time.Millisecond) // let the consumer go idle
			lat := make([]time.Duration, 0, b.N)
			ctx := context.Background()
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if err := publish(ctx); err != nil {
					b.Fatal(err)
				}
				select {
				case at := <-got:
					lat = append(lat, at.Sub(start))
				case <-time.After(30 * time.Second):
					b.Fatal("message not picked up within 30s")
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Microseconds())/1000, "p99-ms")
		})
	}
}

// BenchmarkDrainAfterKill: a consumer dies holding 256 messages (it read
// them and stopped; Redis sees the same as after kill -9); a live consumer
// with VisibilityTimeout 2s runs them. Reports the seconds from the death
// until the last of them is processed.
func BenchmarkDrainAfterKill(b *testing.B) {
	const held = 256
	const vis = 2 * time.Second
	b.Run("impl=outrigger/visibility=2s", func(b *testing.B) {
		db := redistest.New(b)
		c := db.NewClient(b)
		ctx := context.Background()
		var total time.Duration
		for i := range b.N {
			q, err := queue.NewRedis(c, fmt.Sprintf("drain%d", i), queue.WithPrefix(db.Prefix))
			if err != nil {
				b.Fatal(err)
			}
			bodies := make([][]byte, held)
			for j := range bodies {
				bodies[j] = body
			}
			if _, err := q.PublishBatch(ctx, bodies); err != nil {
				b.Fatal(err)
			}
			stream := fmt.Sprintf("%s{drain%d}:stream", db.Prefix, i)
			if err := c.XGroupCreateMkStream(ctx, stream, "consumers", "0").Err(); err != nil {
				b.Fatal(err)
			}
			if err := c.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "consumers", Consumer: "killed", Streams: []string{stream, ">"}, Count: held}).Err(); err != nil {
				b.Fatal(err)
			}
			died := time.Now()
			var done atomic.Int64
			cctx, cancel := context.WithCancel(ctx)
			stopped := make(chan struct{})
			go func() {
				defer close(stopped)
				_ = q.Consume(cctx, func(context.Context, *queue.Message) error { done.Add(1); return nil },
					queue.Concurrency(concurrency), queue.VisibilityTimeout(vis))
			}()
			waitFor(b, &done, held, time.Minute)
			total += time.Since(died)
			cancel()
			<-stopped
			_ = q.Close()
		}
		b.ReportMetric(total.Seconds()/float64(b.N), "drain-s")
	})
}
