// Package kafkabench compares queue/kafka with raw franz-go and with
// segmentio/kafka-go doing the same work, on one in-process kfake cluster.
package kafkabench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	segkafka "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/outrigger-dev/outrigger/queue"
	"github.com/outrigger-dev/outrigger/queue/kafka"
)

const (
	concurrency = 32 // publishers, and handlers (or partition goroutines)
	partitions  = 8
	// warmUp messages are published and processed before the clock starts,
	// by the same producer and consumer: the first run in a process (heap
	// growth, connections, fetch sessions, goroutine stacks) would
	// otherwise penalize whichever implementation runs first.
	warmUp = 5000
)

var body = []byte(`{"symbol":"ACME","bid":101.25,"ask":101.5,"venue":"X","seq":12345}`)

func name(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// publishAll runs fn n times from concurrency goroutines.
func publishAll(b *testing.B, n int, fn func() error) {
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if err := fn(); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(time.Since(start).Seconds(), "publish-s")
}

// waitCount waits until got reaches n.
func waitCount(b *testing.B, got *atomic.Int64, n int) {
	deadline := time.Now().Add(5 * time.Minute)
	for got.Load() < int64(n) {
		if b.Failed() {
			b.FailNow() // a publisher failed: the rest will not come
		}
		if time.Now().After(deadline) {
			b.Fatalf("handled %d of %d", got.Load(), n)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// BenchmarkPublishProcess publishes b.N small messages (one per call from
// 32 goroutines, acks=all) while a consumer group member processes them
// (no-op handler, concurrency 32 or one goroutine per partition), on one
// kfake cluster, 8 partitions. The clock stops when the last message was
// handled.
func BenchmarkPublishProcess(b *testing.B) {
	brokers := cluster(b)
	b.Run("impl=outrigger", func(b *testing.B) { benchOutrigger(b, brokers) })
	b.Run("impl=franz-go", func(b *testing.B) { benchFranz(b, brokers) })
	b.Run("impl=kafka-go", func(b *testing.B) { benchKafkaGo(b, brokers) })
}

// cluster starts a one-broker kfake cluster for b, closed at its end,
// counting requests, and returns its addresses.
func cluster(b *testing.B) []string {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	countRequests(c)
	return c.ListenAddrs()
}

// requests counts the requests the cluster handled, by kind: produce,
// fetch, and all others.
var requests struct{ produce, fetch, other atomic.Int64 }

// countRequests makes c count every request it handles into requests.
func countRequests(c *kfake.Cluster) {
	c.Control(func(r kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		switch r.Key() {
		case int16(kmsg.Produce):
			requests.produce.Add(1)
		case int16(kmsg.Fetch):
			requests.fetch.Add(1)
		default:
			requests.other.Add(1)
		}
		return nil, nil, false
	})
}

// cpuTime is the CPU time (user and system) this process used so far:
// kfake, the producers and the consumer together.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// clock is a benchmark's start: wall clock, process CPU time and the
// requests handled so far.
type clock struct {
	wall                  time.Time
	cpu                   time.Duration
	produce, fetch, other int64
}

func startClock() clock {
	return clock{time.Now(), cpuTime(), requests.produce.Load(), requests.fetch.Load(), requests.other.Load()}
}

// report records msgs/s and the process CPU time per message (cpu-us/msg,
// less sensitive to other load on a shared machine than msgs/s).
func report(b *testing.B, start clock) {
	b.ReportMetric(float64(b.N)/time.Since(start.wall).Seconds(), "msgs/s")
	b.ReportMetric(float64(cpuTime()-start.cpu)/float64(time.Microsecond)/float64(b.N), "cpu-us/msg")
	n := float64(b.N)
	b.ReportMetric(float64(requests.produce.Load()-start.produce)/n, "produce-reqs/msg")
	b.ReportMetric(float64(requests.fetch.Load()-start.fetch)/n, "fetch-reqs/msg")
	b.ReportMetric(float64(requests.other.Load()-start.other)/n, "other-reqs/msg")
}

func benchOutrigger(b *testing.B, brokers []string) {
	ctx := context.Background()
	q, err := kafka.New(ctx, kafka.Config{Brokers: brokers, Partitions: partitions}, name("or-"))
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	var got atomic.Int64
	stop := outriggerConsumer(q, &got)
	publishProcess(b, &got, func() error { _, err := q.Publish(ctx, body); return err })
	if err := stop(); err != nil {
		b.Fatal(err)
	}
	if err := q.Delete(ctx); err != nil {
		b.Fatal(err)
	}
}

// outriggerConsumer runs q.Consume with a handler counting into got
// (concurrency 32); stop ends it and returns its error.
func outriggerConsumer(q *kafka.Queue, got *atomic.Int64) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- q.Consume(ctx, func(context.Context, *queue.Message) error { got.Add(1); return nil }, queue.Concurrency(concurrency))
	}()
	return func() error {
		cancel()
		return <-done
	}
}

// publishProcess warms up with warmUp messages, then times publishing b.N
// messages with publish until got counts them all handled.
func publishProcess(b *testing.B, got *atomic.Int64, publish func() error) {
	publishAll(b, warmUp, publish)
	waitCount(b, got, warmUp)
	got.Store(0)
	b.ReportAllocs()
	b.ResetTimer()
	start := startClock()
	publishAll(b, b.N, publish)
	waitCount(b, got, b.N)
	report(b, start)
	b.StopTimer()
}

// createTopic creates topic, deleted at the end of the benchmark so that
// the next implementation runs on a broker holding as little as this one
// did.
func createTopic(b *testing.B, brokers []string, topic string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		b.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopics(context.Background(), partitions, -1, nil, topic); err != nil {
		cl.Close()
		b.Fatal(err)
	}
	b.Cleanup(func() {
		defer cl.Close()
		if _, err := adm.DeleteTopics(context.Background(), topic); err != nil {
			b.Error(err)
		}
	})
}

// benchFranz does by hand what queue/kafka does: an idempotent acks=all
// producer (ProduceSync per message), and a group consumer polling into one
// goroutine per partition that marks each record after handling it, with
// marked offsets committed every 500ms and on revoke.
func benchFranz(b *testing.B, brokers []string) {
	ctx := context.Background()
	topic := name("franz-")
	createTopic(b, brokers, topic)
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	var got atomic.Int64
	cons, stop := franzConsumer(b, brokers, topic, &got)
	publishProcess(b, &got, func() error { return prod.ProduceSync(ctx, &kgo.Record{Value: body}).FirstErr() })
	stop()
	cons.Close() // revokes: the partition goroutines stop and the marks are committed
}

// franzConsumer starts the consumer of benchFranz on topic: a group member
// polling into one goroutine per partition, each counting records into got
// and marking them, marks committed every 500ms and on revoke. stop ends
// its polling.
func franzConsumer(b *testing.B, brokers []string, topic string, got *atomic.Int64) (*kgo.Client, func()) {
	ctx := context.Background()
	var err error
	type part struct {
		recs chan []*kgo.Record
		done chan struct{}
	}
	var mu sync.Mutex
	parts := map[int32]*part{}
	var cons *kgo.Client
	stopParts := func(ps map[string][]int32) {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range ps[topic] {
			if w := parts[p]; w != nil {
				close(w.recs)
				<-w.done
				delete(parts, p)
			}
		}
	}
	cons, err = kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup(name("franz-group-")), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(500*time.Millisecond),
		kgo.AutoCommitMarks(), kgo.AutoCommitInterval(500*time.Millisecond), kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, ps map[string][]int32) {
			stopParts(ps)
			_ = cl.CommitMarkedOffsets(ctx)
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, ps map[string][]int32) { stopParts(ps) }),
	)
	if err != nil {
		b.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		for cctx.Err() == nil {
			fs := cons.PollFetches(cctx)
			fs.EachPartition(func(p kgo.FetchTopicPartition) {
				if len(p.Records) == 0 {
					return
				}
				mu.Lock()
				w := parts[p.Partition]
				if w == nil {
					w = &part{recs: make(chan []*kgo.Record, 64), done: make(chan struct{})}
					parts[p.Partition] = w
					go func() {
						defer close(w.done)
						for rs := range w.recs {
							for _, r := range rs {
								got.Add(1) // the handler
								cons.MarkCommitRecords(r)
							}
						}
					}()
				}
				mu.Unlock()
				w.recs <- p.Records
			})
			cons.AllowRebalance()
		}
	}()
	return cons, func() {
		cancel()
		<-pollDone
	}
}

// benchKafkaGo does the same with segmentio/kafka-go: a Writer with
// RequiredAcks all (one WriteMessages per message from 32 goroutines) and
// a group Reader read by 32 goroutines that commit each message after
// handling it (commits flushed every 500ms).
func benchKafkaGo(b *testing.B, brokers []string) {
	ctx := context.Background()
	topic := name("kafkago-")
	createTopic(b, brokers, topic)
	// A transport of its own: kafka-go's DefaultTransport caches metadata
	// for the process (6s), so a Writer on it does not see a topic created
	// after an earlier benchmark filled the cache and fails every write
	// with UNKNOWN_TOPIC_OR_PARTITION (what made this benchmark "hang").
	tr := &segkafka.Transport{}
	defer tr.CloseIdleConnections()
	w := &segkafka.Writer{
		Transport:    tr,
		Addr:         segkafka.TCP(brokers...),
		Topic:        topic,
		RequiredAcks: segkafka.RequireAll,
		BatchTimeout: time.Millisecond,
		Balancer:     &segkafka.RoundRobin{},
	}
	defer w.Close()
	r := segkafka.NewReader(segkafka.ReaderConfig{
		Brokers:        brokers,
		GroupID:        name("kafkago-group-"),
		Topic:          topic,
		StartOffset:    segkafka.FirstOffset,
		CommitInterval: 500 * time.Millisecond,
		MaxWait:        500 * time.Millisecond,
	})
	var got atomic.Int64
	cctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				m, err := r.FetchMessage(cctx)
				if err != nil {
					return
				}
				got.Add(1) // the handler
				if err := r.CommitMessages(cctx, m); err != nil {
					return
				}
			}
		}()
	}
	publish := func() error { return w.WriteMessages(ctx, segkafka.Message{Value: body}) }
	publishAll(b, warmUp, publish)
	waitCount(b, &got, warmUp)
	got.Store(0)
	b.ReportAllocs()
	b.ResetTimer()
	start := startClock()
	publishAll(b, b.N, publish)
	waitCount(b, &got, b.N)
	report(b, start)
	b.StopTimer()
	cancel()
	wg.Wait()
	if err := r.Close(); err != nil {
		b.Log(fmt.Errorf("kafka-go reader close: %w", err))
	}
}

// BenchmarkPublishProcessSplit is BenchmarkPublishProcess with one side of
// each run raw franz-go: queue/kafka's consumer fed by a raw producer, and
// queue/kafka's Publish read by the raw consumer. Set beside the two
// PublishProcess runs, it tells which side a gap between them is on.
func BenchmarkPublishProcessSplit(b *testing.B) {
	brokers := cluster(b)
	ctx := context.Background()
	newQueue := func(b *testing.B) *kafka.Queue {
		q, err := kafka.New(ctx, kafka.Config{Brokers: brokers, Partitions: partitions}, name("or-"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			if err := q.Delete(ctx); err != nil {
				b.Error(err)
			}
			_ = q.Close()
		})
		return q
	}
	b.Run("publish=franz-go/consume=outrigger", func(b *testing.B) {
		q := newQueue(b)
		prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(q.Name()),
			kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
		if err != nil {
			b.Fatal(err)
		}
		defer prod.Close()
		var got atomic.Int64
		stop := outriggerConsumer(q, &got)
		publishProcess(b, &got, func() error { return prod.ProduceSync(ctx, &kgo.Record{Value: body}).FirstErr() })
		if err := stop(); err != nil {
			b.Fatal(err)
		}
	})
	b.Run("publish=outrigger/consume=franz-go", func(b *testing.B) {
		q := newQueue(b)
		var got atomic.Int64
		cons, stop := franzConsumer(b, brokers, q.Name(), &got)
		publishProcess(b, &got, func() error { _, err := q.Publish(ctx, body); return err })
		stop()
		cons.Close()
	})
}

// BenchmarkPublish publishes b.N small messages, one per call from 32
// goroutines (acks=all, idempotent), with no consumer.
func BenchmarkPublish(b *testing.B) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	ctx := context.Background()
	b.Run("impl=outrigger", func(b *testing.B) {
		q, err := kafka.New(ctx, kafka.Config{Brokers: brokers, Partitions: partitions}, name("or-"))
		if err != nil {
			b.Fatal(err)
		}
		defer q.Close()
		publish := func() error { _, err := q.Publish(ctx, body); return err }
		publishAll(b, warmUp, publish)
		b.ReportAllocs()
		b.ResetTimer()
		start := startClock()
		publishAll(b, b.N, publish)
		report(b, start)
		b.StopTimer()
		if err := q.Delete(ctx); err != nil {
			b.Fatal(err)
		}
	})
	b.Run("impl=franz-go", func(b *testing.B) {
		topic := name("franz-")
		createTopic(b, brokers, topic)
		prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic),
			kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
		if err != nil {
			b.Fatal(err)
		}
		defer prod.Close()
		publish := func() error { return prod.ProduceSync(ctx, &kgo.Record{Value: body}).FirstErr() }
		publishAll(b, warmUp, publish)
		b.ReportAllocs()
		b.ResetTimer()
		start := startClock()
		publishAll(b, b.N, publish)
		report(b, start)
	})
}

// BenchmarkConsume drains a backlog of b.N small messages (written before
// the clock starts, by a batching producer) with a consumer group member
// (no-op handler, concurrency 32 or one goroutine per partition): the
// consuming side alone. The clock includes joining the group.
func BenchmarkConsume(b *testing.B) {
	brokers := cluster(b)
	ctx := context.Background()
	b.Run("impl=outrigger", func(b *testing.B) {
		q, err := kafka.New(ctx, kafka.Config{Brokers: brokers, Partitions: partitions}, name("or-"))
		if err != nil {
			b.Fatal(err)
		}
		defer q.Close()
		backlog(b, brokers, q.Name(), b.N)
		var got atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		start := startClock()
		stop := outriggerConsumer(q, &got)
		waitCount(b, &got, b.N)
		report(b, start)
		b.StopTimer()
		if err := stop(); err != nil {
			b.Fatal(err)
		}
		if err := q.Delete(ctx); err != nil {
			b.Fatal(err)
		}
	})
	b.Run("impl=franz-go", func(b *testing.B) {
		topic := name("franz-")
		createTopic(b, brokers, topic)
		backlog(b, brokers, topic, b.N)
		var got atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		start := startClock()
		cons, stop := franzConsumer(b, brokers, topic, &got)
		waitCount(b, &got, b.N)
		report(b, start)
		b.StopTimer()
		stop()
		cons.Close()
	})
}

// backlog writes n records of body to topic with a batching producer.
func backlog(b *testing.B, brokers []string, topic string, n int) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	var failed atomic.Value
	for range n {
		cl.Produce(ctx, &kgo.Record{Value: body}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Store(err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
}
