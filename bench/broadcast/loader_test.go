package broadcastbench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// The WebSocket clients run in a child process (this test binary run
// again), so that the server process measures only the servers' memory and
// goroutines. Both implementations get the same raw gorilla/websocket
// clients, one reading goroutine each, and the same parsing of the
// published data: {"s":<sequence>,"t":<publish time, unix ns>}.

const loaderEnv = "OUTRIGGER_BENCH_LOADER"

// loaderSpec is what the child is asked to do.
type loaderSpec struct {
	Impl     string   `json:"impl"` // "outrigger" or "centrifuge"
	URLs     []string `json:"urls"` // WebSocket URLs, connections spread round-robin
	Conns    int      `json:"conns"`
	Channels []string `json:"channels"` // connection i subscribes to Channels[i%len]
}

// loaderReport is what the child found.
type loaderReport struct {
	Delivered  int64   `json:"delivered"`
	Duplicates int64   `json:"duplicates"`
	Missing    int64   `json:"missing"`
	P50        float64 `json:"p50_us"`
	P99        float64 `json:"p99_us"`
	Max        float64 `json:"max_us"`
	LastAt     int64   `json:"last_at"` // unix ns of the last delivery
}

// runLoader runs the child when loaderEnv is set; it reports whether it did.
func runLoader() bool {
	spec := os.Getenv(loaderEnv)
	if spec == "" {
		return false
	}
	var s loaderSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Println("error", err)
		return true
	}
	raiseNoFile()
	l := &loader{spec: s}
	if err := l.connect(); err != nil {
		fmt.Println("error", err)
		return true
	}
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 2 && f[0] == "report" {
			perConn, _ := strconv.Atoi(f[1])
			r := l.report(perConn, 60*time.Second)
			b, _ := json.Marshal(r)
			fmt.Println("report " + string(b))
		}
		if len(f) == 1 && f[0] == "reset" {
			l.reset()
			fmt.Println("reset")
		}
	}
	return true
}

type loader struct {
	spec  loaderSpec
	conns []*loadConn
}

type loadConn struct {
	ws *websocket.Conn
	mu sync.Mutex // protects the fields below
	// seen has bit s set for each sequence number delivered.
	seen      []uint64
	delivered int64
	dups      int64
	lat       []int64 // ns
	lastAt    int64
	wmu       sync.Mutex // serializes writes (pong replies)
}

func (l *loader) connect() error {
	var wg sync.WaitGroup
	errs := make(chan error, l.spec.Conns)
	sem := make(chan struct{}, 64)
	l.conns = make([]*loadConn, l.spec.Conns)
	for i := range l.spec.Conns {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := l.dial(l.spec.URLs[i%len(l.spec.URLs)], l.spec.Channels[i%len(l.spec.Channels)])
			if err != nil {
				errs <- fmt.Errorf("conn %d: %w", i, err)
				return
			}
			l.conns[i] = c
			// Read at once: a client that does not read does not answer the
			// server's pings, and servers close connections silent for long.
			go c.read(l.spec.Impl)
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	return nil
}

var dialer = websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 1024}

// dial connects and subscribes, returning once the subscription is confirmed.
func (l *loader) dial(url, channel string) (*loadConn, error) {
	ws, resp, err := dialer.Dial(url, nil)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	_ = ws.SetReadDeadline(time.Now().Add(60 * time.Second))
	switch l.spec.Impl {
	case "outrigger":
		if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"op":"subscribe","channel":"`+channel+`"}`)); err != nil {
			return nil, err
		}
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				return nil, err
			}
			if bytes.HasPrefix(b, []byte(`{"op":"subscribed"`)) {
				break
			}
		}
	case "centrifuge":
		if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"id":1,"connect":{}}`+"\n"+`{"id":2,"subscribe":{"channel":"`+channel+`"}}`)); err != nil {
			return nil, err
		}
		for done := false; !done; {
			_, b, err := ws.ReadMessage()
			if err != nil {
				return nil, err
			}
			for line := range bytes.SplitSeq(b, []byte("\n")) {
				if bytes.HasPrefix(line, []byte(`{"id":2`)) {
					if bytes.Contains(line, []byte(`"error"`)) {
						return nil, fmt.Errorf("subscribe: %s", line)
					}
					done = true
				}
			}
		}
	}
	_ = ws.SetReadDeadline(time.Time{})
	return &loadConn{ws: ws}, nil
}

// read records every delivery until the connection closes.
func (c *loadConn) read(impl string) {
	for {
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		now := time.Now().UnixNano()
		if impl == "centrifuge" {
			for line := range bytes.SplitSeq(b, []byte("\n")) {
				if len(line) == 2 && line[0] == '{' && line[1] == '}' { // ping: answer pong
					c.wmu.Lock()
					_ = c.ws.WriteMessage(websocket.TextMessage, []byte("{}"))
					c.wmu.Unlock()
					continue
				}
				c.record(line, now)
			}
			continue
		}
		c.record(b, now)
	}
}

// record parses "s" and "t" from a delivered frame.
func (c *loadConn) record(frame []byte, now int64) {
	s, ok1 := intField(frame, `"s":`)
	t, ok2 := intField(frame, `"t":`)
	if !ok1 || !ok2 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	w := int(s / 64)
	for len(c.seen) <= w {
		c.seen = append(c.seen, 0)
	}
	if c.seen[w]&(1<<(s%64)) != 0 {
		c.dups++
		return
	}
	c.seen[w] |= 1 << (s % 64)
	c.delivered++
	c.lat = append(c.lat, now-t)
	c.lastAt = now
}

func intField(b []byte, key string) (int64, bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return 0, false
	}
	j := i + len(key)
	k := j
	for k < len(b) && b[k] >= '0' && b[k] <= '9' {
		k++
	}
	n, err := strconv.ParseInt(string(b[j:k]), 10, 64)
	return n, err == nil
}

// report waits until every connection got perConn messages (or timeout)
// and summarizes.
func (l *loader) report(perConn int, timeout time.Duration) loaderReport {
	deadline := time.Now().Add(timeout)
	for {
		short := false
		for _, c := range l.conns {
			c.mu.Lock()
			d := c.delivered
			c.mu.Unlock()
			if d < int64(perConn) {
				short = true
				break
			}
		}
		if !short || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	var r loaderReport
	var all []int64
	for _, c := range l.conns {
		c.mu.Lock()
		r.Delivered += c.delivered
		r.Duplicates += c.dups
		if c.delivered < int64(perConn) {
			r.Missing += int64(perConn) - c.delivered
		}
		all = append(all, c.lat...)
		r.LastAt = max(r.LastAt, c.lastAt)
		c.mu.Unlock()
	}
	slices.Sort(all)
	if len(all) > 0 {
		q := func(p float64) float64 { return float64(all[min(len(all)-1, int(p*float64(len(all))))]) / 1e3 }
		r.P50, r.P99, r.Max = q(0.50), q(0.99), float64(all[len(all)-1])/1e3
	}
	return r
}

func (l *loader) reset() {
	for _, c := range l.conns {
		c.mu.Lock()
		clear(c.seen)
		c.seen, c.delivered, c.dups, c.lat, c.lastAt = c.seen[:0], 0, 0, c.lat[:0], 0
		c.mu.Unlock()
	}
}

// child is the parent's handle on a loader process.
type child struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
}

func startLoader(tb testing.TB, spec loaderSpec) *child {
	tb.Helper()
	js, _ := json.Marshal(spec)
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), loaderEnv+"="+string(js))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	c := &child{cmd: cmd, in: in, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	tb.Cleanup(c.stop)
	if l := c.expect(tb, 180*time.Second); l != "ready" {
		tb.Fatalf("loader: %s", l)
	}
	return c
}

func (c *child) expect(tb testing.TB, d time.Duration) string {
	tb.Helper()
	select {
	case l, ok := <-c.lines:
		if !ok {
			tb.Fatal("loader exited")
		}
		return l
	case <-time.After(d):
		tb.Fatalf("loader: no answer in %v", d)
	}
	return ""
}

// report asks for the deliveries so far, waiting for perConn per connection.
func (c *child) report(tb testing.TB, perConn int) loaderReport {
	tb.Helper()
	fmt.Fprintf(c.in, "report %d\n", perConn)
	l := c.expect(tb, 120*time.Second)
	js, ok := strings.CutPrefix(l, "report ")
	if !ok {
		tb.Fatalf("loader: %s", l)
	}
	var r loaderReport
	if err := json.Unmarshal([]byte(js), &r); err != nil {
		tb.Fatal(err)
	}
	return r
}

func (c *child) reset(tb testing.TB) {
	tb.Helper()
	fmt.Fprintln(c.in, "reset")
	if l := c.expect(tb, 60*time.Second); l != "reset" {
		tb.Fatalf("loader: %s", l)
	}
}

func (c *child) stop() {
	_ = c.in.Close()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

// raiseNoFile lifts the open-files limit to its hard maximum.
func raiseNoFile() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}
