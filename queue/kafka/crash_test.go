package kafka

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/outrigger-dev/outrigger/internal/historytest"
	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/queue"
	"github.com/outrigger-dev/outrigger/queue/queuetest"
)

const crashChildEnv = "OUTRIGGER_KAFKA_CRASH_CHILD"

// crashLogsEnv names a directory where TestCrash's children write debug
// logs (the queue's and franz-go's: joins, syncs, commits), one file each,
// to study what the duplicates come from.
const crashLogsEnv = "OUTRIGGER_KAFKA_CRASH_LOGS"

// crashConfig is the queue config of TestCrash and its children: a short
// session, so that the partitions of a killed child move on quickly.
func crashConfig(brokers []string) Config {
	cfg := testConfig(brokers)
	cfg.Partitions = 6
	cfg.SessionTimeout = time.Second
	cfg.HeartbeatInterval = 100 * time.Millisecond
	cfg.RebalanceTimeout = 4 * time.Second
	cfg.RetryTopics = []time.Duration{50 * time.Millisecond}
	return cfg
}

// TestCrashChild is the consumer process of TestCrash; it does nothing
// unless started by it. Each message it handles is written (acks=all) to
// the log topic before the handler returns.
func TestCrashChild(t *testing.T) {
	if os.Getenv(crashChildEnv) == "" {
		t.Skip("runs only as a child of TestCrash")
	}
	brokers, prefix, logTopic := []string{os.Getenv("CRASH_BROKERS")}, os.Getenv("CRASH_PREFIX"), os.Getenv("CRASH_LOG")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	cfg := crashConfig(brokers)
	opts := []queue.Option{queue.WithPrefix(prefix)}
	if dir := os.Getenv(crashLogsEnv); dir != "" {
		// Debug logs of the queue and of franz-go (joins, syncs, commits).
		f, err := os.Create(filepath.Join(dir, filepath.Base(os.Getenv("CRASH_READY"))+".log"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cfg.Opts = append(cfg.Opts, kgo.WithLogger(kgo.BasicLogger(f, kgo.LogLevelDebug, func() string { return time.Now().Format("15:04:05.000000 ") })))
		opts = append(opts, queue.WithLogger(slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	}
	q, err := New(ctx, cfg, "crash", opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	logc, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(logTopic), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer logc.Close()
	// Tell the parent SIGTERM is now handled.
	if err := os.WriteFile(os.Getenv("CRASH_READY"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err = q.Consume(ctx, func(ctx context.Context, m *queue.Message) error {
		if string(m.Body) == "poison" {
			return errors.New("poison")
		}
		time.Sleep(time.Duration(rand.IntN(1000)) * time.Microsecond)
		// Record the message, then (maybe) die before the commit.
		return logc.ProduceSync(ctx, &kgo.Record{Value: []byte(m.ID)}).FirstErr()
	}, queue.Concurrency(8), queue.MaxAttempts(3), queue.Backoff(func(int) time.Duration { return 20 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
}

// TestCrash runs consumers in child processes (connected to a kfake cluster
// in this process, on loopback) and SIGKILLs one every few hundred
// milliseconds, restarting it, while they work through the queue:
// afterwards every acknowledged message was handled at least once (0
// lost), duplicates are counted and reported, nothing is left in the queue
// and only the poison message is dead. OUTRIGGER_LONG=1 kills more often
// for longer.
func TestCrash(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("child")
	}
	n, kills := 20000, 12
	if redistest.Long() {
		n, kills = 50000, 60
	}
	c := newCluster(t, 1)
	brokers := c.ListenAddrs()
	prefix := randomName("crash-") + "."
	q := newTestQueue(t, crashConfig(brokers), "crash", queue.WithPrefix(prefix))
	ctx := context.Background()
	logTopic := prefix + "log"
	require.NoError(t, c.CreateTopic(logTopic, 1, nil))

	var hist historytest.QueueHistory
	poison, err := q.Publish(ctx, []byte("poison"))
	require.NoError(t, err)
	for i := 0; i < n; i += 500 {
		bodies := make([][]byte, min(500, n-i))
		for j := range bodies {
			bodies[j] = []byte(strconv.Itoa(i + j))
		}
		ids, err := q.PublishBatch(ctx, bodies)
		require.NoError(t, err)
		for _, id := range ids {
			hist.Enqueue(id, historytest.OK)
		}
	}

	// Follow the log topic: every handled message.
	var mu sync.Mutex
	distinct := map[string]bool{}
	logc, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(logTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	lctx, stopLog := context.WithCancel(ctx)
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		for lctx.Err() == nil {
			fs := logc.PollFetches(lctx)
			fs.EachRecord(func(r *kgo.Record) {
				hist.Dequeue(string(r.Value))
				mu.Lock()
				distinct[string(r.Value)] = true
				mu.Unlock()
			})
		}
	}()
	t.Cleanup(func() { stopLog(); <-logDone; logc.Close() })
	handled := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(distinct)
	}

	type child struct {
		cmd   *exec.Cmd
		out   *bytes.Buffer
		ready string
		done  chan error
	}
	dir := t.TempDir()
	seq := 0
	live := &pids{live: map[int]bool{}}
	newGhostReaper(t, brokers, q.group, live.alive).runUntilCleanup(t)
	start := func() *child {
		seq++
		ready := dir + "/ready-" + strconv.Itoa(seq)
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"=1", "CRASH_BROKERS="+brokers[0], "CRASH_PREFIX="+prefix,
			"CRASH_LOG="+logTopic, "CRASH_READY="+ready)
		out := new(bytes.Buffer)
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		require.NoError(t, cmd.Start())
		live.started(cmd.Process.Pid)
		ch := &child{cmd: cmd, out: out, ready: ready, done: make(chan error, 1)}
		go func() { ch.done <- cmd.Wait() }()
		return ch
	}
	const workers = 3
	children := make([]*child, workers)
	for i := range children {
		children[i] = start()
	}
	t.Cleanup(func() {
		for _, ch := range children {
			_ = ch.cmd.Process.Kill()
			<-ch.done
		}
	})

	began := time.Now()
	killed := 0
	for killed < kills && handled() < n {
		time.Sleep(time.Duration(150+rand.IntN(300)) * time.Millisecond)
		i := rand.IntN(workers)
		require.NoError(t, children[i].cmd.Process.Signal(syscall.SIGKILL))
		<-children[i].done
		live.stopped(children[i].cmd.Process.Pid)
		killed++
		children[i] = start()
	}
	require.Eventually(t, func() bool { return handled() >= n }, 3*time.Minute, 20*time.Millisecond,
		"not every message was handled: %d of %d", handled(), n)
	took := time.Since(began)
	// The poison's retries may still be under way: let the consumers
	// dead-letter it and commit everything before they stop.
	var (
		last    queue.Stats
		lastErr error
	)
	require.Eventually(t, func() bool {
		last, lastErr = q.Stats(ctx)
		return lastErr == nil && queuetest.Empty(last) && last.Dead == 1
	}, 2*time.Minute, 20*time.Millisecond, "the consumers did not drain the queue and dead-letter the poison: last stats %+v, err %v", last, lastErr)

	// Stop the children gracefully: they commit and leave the group.
	for i, ch := range children {
		require.Eventually(t, func() bool { _, err := os.Stat(ch.ready); return err == nil }, time.Minute, 10*time.Millisecond, "child %d did not start", i)
		require.NoError(t, ch.cmd.Process.Signal(syscall.SIGTERM))
	}
	for i, ch := range children {
		select {
		case err := <-ch.done:
			assert.NoError(t, err, "child %d: %s", i, ch.out.String())
		case <-time.After(60 * time.Second):
			t.Fatalf("child %d did not stop on SIGTERM", i)
		}
		ch.done <- nil // for the cleanup
	}
	st := queuetest.WaitStats(t, q, func(s queue.Stats) bool { return queuetest.Empty(s) && s.Dead == 1 }, "nothing left, only the poison dead")
	assert.Equal(t, queue.Stats{Dead: 1}, st)
	dead, err := q.DeadLetters(ctx, 0)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	assert.Equal(t, poison, dead[0].ID)
	assert.Equal(t, 3, dead[0].Attempt)

	rep := hist.Check()
	assert.Empty(t, rep.Lost, "acknowledged messages never handled")
	assert.Empty(t, rep.Unexpected)
	dups := rep.Deliveries - rep.Delivered
	t.Logf("%d messages, %d SIGKILLs, all handled in %v; %d duplicate deliveries (%.2f%%) of %d messages; %s",
		n, killed, took.Round(time.Millisecond), dups, 100*float64(dups)/float64(n), len(rep.Duplicated), rep)
	require.GreaterOrEqual(t, killed, 1, "the consumers finished before any kill; raise n (%d)", n)
}
