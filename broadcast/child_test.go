package broadcast_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/broadcast"
)

// childEnv tells a re-executed test binary to run a Hub with members.
const childEnv = "OUTRIGGER_BROADCAST_CHILD"

// runChild, in a child process, runs a Hub on the Redis and prefix in
// childEnv ("addr prefix node ttl n") with n members on channel "room",
// prints "ready" and waits to be killed. It reports whether it ran.
func runChild() bool {
	spec := os.Getenv(childEnv)
	if spec == "" {
		return false
	}
	f := strings.Fields(spec)
	ttl, _ := time.ParseDuration(f[3])
	n, _ := strconv.Atoi(f[4])
	c := redis.NewClient(&redis.Options{Addr: f[0]})
	h, err := broadcast.New(c, broadcast.WithPrefix(f[1]), broadcast.WithNodeID(f[2]), broadcast.WithPresenceTTL(ttl))
	if err != nil {
		fmt.Println("error", err)
		return true
	}
	for i := range n {
		if _, err := h.Subscribe(context.Background(), "room", broadcast.AsMember(broadcast.Member{ClientID: fmt.Sprintf("child-%d", i), UserID: "u"})); err != nil {
			fmt.Println("error", err)
			return true
		}
	}
	fmt.Println("ready")
	select {} // until SIGKILL
}

// startChild starts a child Hub and waits until its members are in.
func startChild(t *testing.T, addr, prefix, node string, ttl time.Duration, members int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %s %s %d", childEnv, addr, prefix, node, ttl, members))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
	}()
	select {
	case l := <-line:
		if l != "ready" {
			t.Fatalf("child: %q", l)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("child did not start in 60s")
	}
	return cmd
}
