//go:build linux

// Command redisinstr counts the instructions a Redis server executes per
// queue message, under valgrind's callgrind: a figure that, unlike CPU
// time, does not move with the host's speed or load, so two versions of
// the queue scripts can be compared on a noisy machine.
//
//	cd bench && go run ./redisinstr [-n 20000] [-redis-server redis-server]
//
// It starts its own redis-server under callgrind (no persistence), then for
// each workload empties it, zeroes the counters (callgrind_control -z),
// runs the workload, dumps the counters (callgrind_control -d) and prints
// the dump's instruction total divided by the number of messages:
//
//	batch    PublishBatch of 100 bodies, one goroutine
//	single   64 goroutines calling Publish (coalesced into shared calls)
//	consume  32 handlers draining a backlog of n messages
//	pp       64 publishers while 32 handlers process (bench/queue's
//	         BenchmarkPublishProcess)
//
// Batch sizes depend on timing, and callgrind slows the server about 50
// times, so the workloads that coalesce (single, consume, pp) make larger
// batches here than at full speed: compare versions with this command, and
// read CPU time from bench/queue.
//
// Linux only (valgrind, and the server dies with this process).
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/queue"
)

var body = []byte(`{"symbol":"ACME","bid":101.25,"ask":101.27,"ts":1732540000123}`)

func main() {
	n := flag.Int("n", 20000, "messages per workload (a multiple of 100)")
	server := flag.String("redis-server", "redis-server", "the redis-server binary to run under callgrind")
	modes := flag.String("modes", "batch,single,consume,pp", "workloads, comma-separated")
	flag.Parse()
	if *n <= 0 || *n%100 != 0 {
		log.Fatalf("redisinstr: -n must be a positive multiple of 100, got %d", *n)
	}
	dir, err := os.MkdirTemp("", "redisinstr")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	port, err := freePort()
	if err != nil {
		log.Fatal(err)
	}
	cmd := exec.Command("valgrind", "--tool=callgrind", "--callgrind-out-file="+filepath.Join(dir, "cg.%p"),
		*server, "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no", "--dir", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // also on log.Fatal
	if err := cmd.Start(); err != nil {
		log.Fatalf("redisinstr: start valgrind: %v", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if conn, err := net.Dial("tcp", addr); err == nil {
			_ = conn.Close()
			break
		}
		if time.Now().After(deadline) {
			log.Fatal("redisinstr: redis-server under callgrind did not listen within a minute")
		}
	}
	c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 128})
	defer c.Close()
	ctx := context.Background()
	if err := c.Ping(ctx).Err(); err != nil {
		log.Fatal(err)
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	fmt.Printf("redis-server %s under callgrind, %d messages per workload\n", *server, *n)
	for _, mode := range strings.Split(*modes, ",") {
		w := &workload{c: c, n: *n}
		run, ok := map[string]func(measure func(func())){
			"batch": w.batch, "single": w.single, "consume": w.consume, "pp": w.publishProcess,
		}[mode]
		if !ok {
			log.Fatalf("redisinstr: unknown workload %q", mode)
		}
		if err := c.FlushAll(ctx).Err(); err != nil {
			log.Fatal(err)
		}
		if w.q, err = queue.NewRedis(c, "bench", queue.WithPrefix("bench:")); err != nil {
			log.Fatal(err)
		}
		var total int64
		run(func(f func()) {
			control("-z", pid)
			f()
			total = dump(dir, pid)
		})
		_ = w.q.Close()
		fmt.Printf("%-8s %10.0f instructions/msg\n", mode, float64(total)/float64(*n))
	}
}

// workload runs one of the measured workloads on q.
type workload struct {
	c    *redis.Client
	q    *queue.Redis
	n    int
	done atomic.Int64
}

func (w *workload) batch(measure func(func())) {
	bodies := make([][]byte, 100)
	for i := range bodies {
		bodies[i] = body
	}
	measure(func() {
		for i := 0; i < w.n; i += 100 {
			if _, err := w.q.PublishBatch(context.Background(), bodies); err != nil {
				log.Fatal(err)
			}
		}
	})
}

func (w *workload) single(measure func(func())) { measure(w.publishAll) }

func (w *workload) consume(measure func(func())) {
	w.publishAll()
	measure(func() {
		stop := w.startConsumer()
		w.waitDone()
		stop()
	})
}

func (w *workload) publishProcess(measure func(func())) {
	stop := w.startConsumer()
	defer stop()
	measure(func() {
		w.publishAll()
		w.waitDone()
	})
}

// publishAll publishes n messages from 64 goroutines, one per call.
func (w *workload) publishAll() {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(w.n) {
				if _, err := w.q.Publish(context.Background(), body); err != nil {
					log.Fatal(err)
				}
			}
		}()
	}
	wg.Wait()
}

func (w *workload) startConsumer() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		_ = w.q.Consume(ctx, func(context.Context, *queue.Message) error { w.done.Add(1); return nil }, queue.Concurrency(32))
	}()
	return func() { cancel(); <-exited }
}

func (w *workload) waitDone() {
	for deadline := time.Now().Add(10 * time.Minute); w.done.Load() < int64(w.n); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			log.Fatalf("redisinstr: %d of %d messages processed in 10 minutes", w.done.Load(), w.n)
		}
	}
}

func control(arg, pid string) {
	if out, err := exec.Command("callgrind_control", arg, pid).CombinedOutput(); err != nil {
		log.Fatalf("redisinstr: callgrind_control %s: %v: %s", arg, err, out)
	}
}

// dump has callgrind write its counters and returns the instruction total
// of the new dump file.
func dump(dir, pid string) int64 {
	before, _ := filepath.Glob(filepath.Join(dir, "cg."+pid+".*"))
	control("-d", pid)
	after, _ := filepath.Glob(filepath.Join(dir, "cg."+pid+".*"))
	if len(after) != len(before)+1 {
		log.Fatalf("redisinstr: callgrind wrote %d dump files, want 1", len(after)-len(before))
	}
	file := filepath.Join(dir, "cg."+pid+"."+strconv.Itoa(len(after)))
	f, err := os.Open(file)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "summary: "); ok {
			total, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				log.Fatalf("redisinstr: %s: summary %q: %v", file, v, err)
			}
			return total
		}
	}
	log.Fatalf("redisinstr: %s has no summary line", file)
	return 0
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
