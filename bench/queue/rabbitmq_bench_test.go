package queuebench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/outrigger-dev/outrigger/queue"
	"github.com/outrigger-dev/outrigger/queue/rabbitmq"
)

// rabbitURL is the benchmark broker (OUTRIGGER_RABBITMQ_URL or the local one).
func rabbitURL() string {
	if u := os.Getenv("OUTRIGGER_RABBITMQ_URL"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// needRabbit skips (or, with CI set, fails) when the broker is unreachable.
func needRabbit(b *testing.B) {
	b.Helper()
	conn, err := amqp.DialConfig(rabbitURL(), amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
	if err == nil {
		_ = conn.Close()
		return
	}
	if os.Getenv("CI") != "" {
		b.Fatalf("RabbitMQ unreachable at %s with CI set: %v", rabbitURL(), err)
	}
	b.Skipf("RabbitMQ unreachable at %s: %v", rabbitURL(), err)
}

// brokerCPU is the CPU time used so far by the local RabbitMQ node (the
// beam.smp process), or -1 when it cannot be read.
func brokerCPU() time.Duration {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		comm, err := os.ReadFile(d + "/comm")
		if err != nil || strings.TrimSpace(string(comm)) != "beam.smp" {
			continue
		}
		cmdline, _ := os.ReadFile(d + "/cmdline")
		if !strings.Contains(string(cmdline), "rabbit") {
			continue
		}
		stat, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue
		}
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ = 100
	}
	return -1
}

type rabbitMeter struct{ self, broker time.Duration }

func startRabbitCPU() rabbitMeter { return rabbitMeter{processCPU(), brokerCPU()} }

func (m rabbitMeter) report(b *testing.B) {
	b.ReportMetric(float64((processCPU()-m.self).Nanoseconds())/1e3/float64(b.N), "client-cpu-µs/msg")
	if m.broker >= 0 {
		b.ReportMetric(float64((brokerCPU()-m.broker).Nanoseconds())/1e3/float64(b.N), "broker-cpu-µs/msg")
	}
}

func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), time.Now().UnixNano())
}

// setupRabbitQueue is queue/rabbitmq with its defaults (4 confirm channels,
// prefetch 4 × concurrency).
func setupRabbitQueue(b *testing.B, qt rabbitmq.QueueType) (func(context.Context) error, func(func()) func(), func()) {
	ctx := context.Background()
	q, err := rabbitmq.New(ctx, rabbitmq.Config{URL: rabbitURL(), QueueType: qt}, "bench", queue.WithPrefix(uniqueName("outrigger-bench")+"."))
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
	return publish, consume, func() {
		if err := q.Delete(ctx); err != nil {
			b.Error(err)
		}
		_ = q.Close()
	}
}

// setupRawAMQP does the same work by hand with amqp091-go: a durable queue,
// persistent messages, publisher confirms waited for per publish on 4
// shared confirm channels (pipelined), one consumer channel with prefetch
// 4 × concurrency feeding 32 workers that ack each message after the
// handler. No retries, dead letters or reconnects.
func setupRawAMQP(b *testing.B, qt rabbitmq.QueueType) (func(context.Context) error, func(func()) func(), func()) {
	conn, err := amqp.Dial(rabbitURL())
	if err != nil {
		b.Fatal(err)
	}
	name := uniqueName("raw-bench")
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	if _, err := ch.QueueDeclare(name, true, false, false, false, amqp.Table{"x-queue-type": string(qt)}); err != nil {
		b.Fatal(err)
	}
	pubs := make([]*amqp.Channel, 4)
	for i := range pubs {
		if pubs[i], err = conn.Channel(); err != nil {
			b.Fatal(err)
		}
		if err := pubs[i].Confirm(false); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Uint64
	publish := func(ctx context.Context) error {
		pc := pubs[next.Add(1)%uint64(len(pubs))]
		dc, err := pc.PublishWithDeferredConfirmWithContext(ctx, "", name, false, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent, Body: body, MessageId: strconv.FormatUint(next.Load(), 36),
		})
		if err != nil {
			return err
		}
		if ok, err := dc.WaitContext(ctx); err != nil || !ok {
			return fmt.Errorf("not confirmed: %v", err)
		}
		return nil
	}
	consume := func(onMsg func()) func() {
		cch, err := conn.Channel()
		if err != nil {
			b.Fatal(err)
		}
		if err := cch.Qos(4*concurrency, 0, false); err != nil {
			b.Fatal(err)
		}
		ds, err := cch.Consume(name, "", false, false, false, false, nil)
		if err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		for range concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for d := range ds {
					onMsg()
					_ = d.Ack(false)
				}
			}()
		}
		return func() { _ = cch.Close(); wg.Wait() }
	}
	return publish, consume, func() {
		if _, err := ch.QueueDelete(name, false, false, false); err != nil {
			b.Error(err)
		}
		_ = conn.Close()
	}
}

// BenchmarkRabbitPublishProcess: b.N small messages published one per call
// from 64 goroutines while a consumer with 32 handlers processes them, on
// queue/rabbitmq, on raw amqp091-go doing the same by hand, and on the
// Redis backend, side by side. Run with -benchtime 100000x for the headline
// figure. RabbitMQ figures also report the broker's CPU per message.
func BenchmarkRabbitPublishProcess(b *testing.B) {
	run := func(b *testing.B, setup func(*testing.B) (func(context.Context) error, func(func()) func(), func()), report func(b *testing.B) func()) {
		publish, consume, cleanup := setup(b)
		defer cleanup()
		var done atomic.Int64
		stop := consume(func() { done.Add(1) })
		defer stop()
		b.ReportAllocs()
		b.ResetTimer()
		end := report(b)
		publishAll(b, b.N, publish)
		waitFor(b, &done, b.N, 10*time.Minute)
		b.StopTimer()
		end()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	}
	rabbitReport := func(b *testing.B) func() {
		m := startRabbitCPU()
		return func() { m.report(b) }
	}
	b.Run("impl=outrigger-redis", func(b *testing.B) {
		c, cnt := ownServer(b)
		run(b, func(b *testing.B) (func(context.Context) error, func(func()) func(), func()) {
			return setupOutrigger(b, c, "bench:")
		}, func(b *testing.B) func() {
			cnt.Reset()
			cpu := startCPU(b, c)
			return func() { cpu.report(b); cnt.Report(b) }
		})
	})
	for _, qt := range []rabbitmq.QueueType{rabbitmq.Classic, rabbitmq.Quorum} {
		b.Run("impl=outrigger-rabbitmq/type="+string(qt), func(b *testing.B) {
			needRabbit(b)
			run(b, func(b *testing.B) (func(context.Context) error, func(func()) func(), func()) {
				return setupRabbitQueue(b, qt)
			}, rabbitReport)
		})
		b.Run("impl=amqp091-raw/type="+string(qt), func(b *testing.B) {
			needRabbit(b)
			run(b, func(b *testing.B) (func(context.Context) error, func(func()) func(), func()) {
				return setupRawAMQP(b, qt)
			}, rabbitReport)
		})
	}
}
