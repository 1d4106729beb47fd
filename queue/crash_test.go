package queue_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/queue"
	"github.com/outrigger-dev/outrigger/queue/queuetest"
)

const crashChildEnv = "OUTRIGGER_QUEUE_CRASH_CHILD"

// TestCrashChild is the consumer process of TestCrash; it does nothing
// unless started by it.
func TestCrashChild(t *testing.T) {
	if os.Getenv(crashChildEnv) == "" {
		t.Skip("runs only as a child of TestCrash")
	}
	addr, prefix := os.Getenv("CRASH_ADDR"), os.Getenv("CRASH_PREFIX")
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	q, err := queue.NewRedis(c, "crash", queue.WithPrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	// Tell the parent SIGTERM is now handled.
	if err := c.Set(ctx, prefix+"ready:"+strconv.Itoa(os.Getpid()), 1, 0).Err(); err != nil {
		t.Fatal(err)
	}
	opts := []queue.ConsumeOption{
		queue.Concurrency(4), queue.Prefetch(16), queue.VisibilityTimeout(time.Second),
		queue.MaxAttempts(10), queue.Backoff(func(int) time.Duration { return 20 * time.Millisecond }),
	}
	if name := os.Getenv("CRASH_NAME"); name != "" {
		opts = append(opts, queue.ConsumerName(name))
	}
	err = q.Consume(ctx, func(ctx context.Context, m *queue.Message) error {
		if string(m.Body) == "poison" {
			return errors.New("poison")
		}
		time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
		// Record the message, then (maybe) die before the ack reaches Redis.
		_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.SAdd(ctx, prefix+"processed", m.ID)
			p.Incr(ctx, prefix+"handled")
			return nil
		})
		return err
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
}

// TestCrash runs consumers in child processes and SIGKILLs them at random
// moments (mid-batch, between handling and ack, during reclaim), restarting
// them, while they work through the queue. Afterwards every message was
// processed at least once, none is pending, and only the poison message is
// dead. Set OUTRIGGER_LONG=1 for 20,000 messages and more kills.
func TestCrash(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("child")
	}
	n, kills := 5000, 8
	if os.Getenv("OUTRIGGER_LONG") != "" {
		n, kills = 20000, 40
	}
	db := redistest.New(t)
	ctx := context.Background()
	q, err := queue.NewRedis(db.Client, "crash", queue.WithPrefix(db.Prefix))
	require.NoError(t, err)
	poison, err := q.Publish(ctx, []byte("poison"))
	require.NoError(t, err)
	for i := 0; i < n; i += 500 {
		bodies := make([][]byte, min(500, n-i))
		for j := range bodies {
			bodies[j] = []byte(strconv.Itoa(i + j))
		}
		_, err := q.PublishBatch(ctx, bodies)
		require.NoError(t, err)
	}

	type child struct {
		cmd  *exec.Cmd
		out  *bytes.Buffer
		done chan error
	}
	start := func(slot int) *child {
		name := ""
		if slot%2 == 0 {
			name = "slot-" + strconv.Itoa(slot) // a restarted child resumes its own pending messages
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"=1", "CRASH_ADDR="+db.Addrs[0], "CRASH_PREFIX="+db.Prefix, "CRASH_NAME="+name)
		out := new(bytes.Buffer)
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		require.NoError(t, cmd.Start())
		c := &child{cmd: cmd, out: out, done: make(chan error, 1)}
		go func() { c.done <- cmd.Wait() }()
		return c
	}
	const workers = 4
	children := make([]*child, workers)
	for i := range children {
		children[i] = start(i)
	}
	t.Cleanup(func() {
		for _, c := range children {
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})

	processed := func() int64 { return db.Client.SCard(ctx, db.Prefix+"processed").Val() }
	began := time.Now()
	var lastKill time.Time
	killed := 0
	for killed < kills && processed() < int64(n) {
		time.Sleep(time.Duration(50+rand.IntN(200)) * time.Millisecond)
		i := rand.IntN(workers)
		require.NoError(t, children[i].cmd.Process.Signal(syscall.SIGKILL))
		<-children[i].done
		lastKill = time.Now()
		killed++
		children[i] = start(i)
	}
	require.Eventually(t, func() bool { return processed() == int64(n) }, 120*time.Second, 20*time.Millisecond,
		"not every message was processed: %d of %d", processed(), n)
	drained := time.Now()
	st := queuetest.WaitStats(t, q, func(s queue.Stats) bool { return queuetest.Empty(s) && s.Dead == 1 }, "nothing pending, only the poison dead")
	assert.Equal(t, queue.Stats{Dead: 1}, st)
	assert.Zero(t, st.Pending)
	dead, err := q.DeadLetters(ctx, 0)
	require.NoError(t, err)
	require.Len(t, dead, 1)
	assert.Equal(t, poison, dead[0].ID)
	assert.Equal(t, 10, dead[0].Attempt)
	assert.Equal(t, "poison", dead[0].LastError)

	// Stop the children gracefully: they leave the group.
	for _, c := range children {
		require.Eventually(t, func() bool {
			return db.Client.Exists(ctx, db.Prefix+"ready:"+strconv.Itoa(c.cmd.Process.Pid)).Val() == 1
		}, 60*time.Second, 10*time.Millisecond, "child did not start")
		require.NoError(t, c.cmd.Process.Signal(syscall.SIGTERM))
	}
	for i, c := range children {
		select {
		case err := <-c.done:
			assert.NoError(t, err, "child %d: %s", i, c.out.String())
		case <-time.After(30 * time.Second):
			t.Fatalf("child %d did not stop on SIGTERM", i)
		}
		c.done <- nil // for the cleanup
	}
	handled, err := db.Client.Get(ctx, db.Prefix+"handled").Int64()
	require.NoError(t, err)
	drain := time.Duration(0)
	if !lastKill.IsZero() {
		drain = drained.Sub(lastKill)
	}
	t.Logf("%d messages, %d SIGKILLs, all processed in %v; %d duplicate deliveries (%.2f%%); last message processed %v after the last kill",
		n, killed, drained.Sub(began).Round(time.Millisecond), handled-int64(n), 100*float64(handled-int64(n))/float64(n), drain.Round(time.Millisecond))
	require.GreaterOrEqual(t, killed, 1, fmt.Sprintf("the consumers finished before any kill; raise n (%d)", n))
}
