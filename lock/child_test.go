package lock_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/lock"
)

// childEnv tells a re-executed test binary to act as a lock holder.
const childEnv = "OUTRIGGER_LOCK_CHILD"

// childTTL is the TTL of the child's lock: the parent pauses the child for
// longer than that.
const childTTL = 400 * time.Millisecond

// runChild, in a child process, holds the lock "job" with Do and writes
// through a fence every 20ms, reporting each step on stdout, until its
// lock's context is cancelled. It reports whether it ran.
func runChild() bool {
	spec := os.Getenv(childEnv)
	if spec == "" {
		return false
	}
	addr, prefix, _ := strings.Cut(spec, " ")
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	l, err := lock.New(c, lock.WithPrefix(prefix))
	if err != nil {
		fmt.Println("error", err)
		return true
	}
	f, _ := lock.NewFence(c, prefix+"fence:")
	err = l.Do(context.Background(), "job", childTTL, func(ctx context.Context, token uint64) error {
		fmt.Printf("acquired %d\n", token)
		write := func(i int) {
			werr := f.Set(context.Background(), "res", token, fmt.Sprintf("child-%d", i))
			switch {
			case werr == nil:
				fmt.Printf("write %d ok\n", i)
			case errors.Is(werr, lock.ErrStaleToken):
				fmt.Printf("write %d stale\n", i)
			default:
				fmt.Printf("write %d error %v\n", i, werr)
			}
		}
		for i := 0; ; i++ {
			// A careless holder: it writes first and checks its lock after,
			// and flushes once more on its way out.
			write(i)
			if ctx.Err() != nil {
				fmt.Println("lost", context.Cause(ctx))
				write(i + 1)
				return nil
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	fmt.Println("done", err)
	return true
}

// TestHolderPausedProcess: a real child process holding a lock (with
// auto-refresh, through Do) is SIGSTOPped past its TTL. Another worker
// acquires the lock and writes through the fence; when the child resumes,
// its write is rejected as stale and its lock's context is cancelled.
func TestHolderPausedProcess(t *testing.T) {
	leakCheck(t)
	ctx := context.Background()
	db := redistest.New(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+db.Addrs[0]+" "+db.Prefix)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		for range lines {
		}
		<-exited
	})
	next := func() string {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("child exited early")
			}
			return l
		case <-time.After(20 * time.Second):
			t.Fatal("child is silent")
		}
		return ""
	}
	first := next()
	require.True(t, strings.HasPrefix(first, "acquired "), "child said %q", first)
	var childToken uint64
	_, err = fmt.Sscanf(first, "acquired %d", &childToken)
	require.NoError(t, err)
	require.Equal(t, "write 0 ok", next())

	require.NoError(t, cmd.Process.Signal(syscall.SIGSTOP))
	l, err := lock.New(db.Client, lock.WithPrefix(db.Prefix))
	require.NoError(t, err)
	f, err := lock.NewFence(db.Client, db.Prefix+"fence:")
	require.NoError(t, err)
	lk, err := l.Acquire(ctx, "job", 10*time.Second) // once the paused child's lock expires
	require.NoError(t, err)
	require.Greater(t, lk.Token(), childToken)
	require.NoError(t, f.Set(ctx, "res", lk.Token(), "parent"))
	// Everything the child wrote before the pause is already on stdout.
	var before []string
drain:
	for {
		select {
		case s := <-lines:
			before = append(before, s)
		case <-time.After(100 * time.Millisecond):
			break drain
		}
	}
	for _, s := range before {
		require.True(t, strings.HasSuffix(s, " ok"), "before the pause: %q", s)
	}

	require.NoError(t, cmd.Process.Signal(syscall.SIGCONT))
	var after []string
	for s := range lines {
		after = append(after, s)
	}
	require.NoError(t, <-exited)
	exited <- nil // for the clean-up
	t.Logf("child after resume: %q", after)
	var stale, lost, done bool
	for i, s := range after {
		switch {
		case i == 0 && strings.HasPrefix(s, "write ") && strings.HasSuffix(s, " ok"):
			// In flight when SIGSTOP arrived: it reached Redis before the
			// pause, the report comes after. The next write must be stale.
		case strings.HasPrefix(s, "write "):
			require.True(t, strings.HasSuffix(s, " stale"), "after the pause a write must be rejected: %q", s)
			stale = true
		case strings.HasPrefix(s, "lost "):
			require.Contains(t, s, lock.ErrLockLost.Error())
			lost = true
		case strings.HasPrefix(s, "done "):
			require.Contains(t, s, lock.ErrLockLost.Error())
			done = true
		}
	}
	require.True(t, stale && lost && done, "child output after resume: %q", after)
	v, tok, err := f.Get(ctx, "res")
	require.NoError(t, err)
	require.Equal(t, "parent", v)
	require.Equal(t, lk.Token(), tok)
	require.NoError(t, lk.Release(ctx))
}
