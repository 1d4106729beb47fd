package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Bounds for process control. They are generous so that tests pass on a
// loaded two-core machine; none of them is a timing assertion.
const (
	startTimeout = 15 * time.Second
	stopTimeout  = 10 * time.Second
)

// ErrNoServerBinary is returned when redis-server cannot be found.
var ErrNoServerBinary = errors.New("redistest: redis-server not found on PATH")

// ServerOption configures a server started by [StartServer].
type ServerOption func(*serverConfig)

type serverConfig struct {
	persistence bool
	args        []string
	// sentinelConf, when set, is written to sentinel.conf in the server's
	// directory before the first start and the process runs with --sentinel.
	sentinelConf string
}

// WithPersistence turns on the append-only file (fsync every second), so that
// the data survives [Server.Restart]. Without it a restarted server is empty.
func WithPersistence() ServerOption {
	return func(c *serverConfig) { c.persistence = true }
}

// WithArgs passes extra command-line arguments to redis-server, for example
// WithArgs("--maxmemory", "10mb").
func WithArgs(args ...string) ServerOption {
	return func(c *serverConfig) { c.args = append(c.args, args...) }
}

// Server is a redis-server process started by the harness on a loopback
// port. Its methods are safe for concurrent use.
type Server struct {
	port int
	dir  string
	cfg  serverConfig

	mu     sync.Mutex    // protects cmd, exited and paused
	cmd    *exec.Cmd     // the running process, nil when stopped
	exited chan struct{} // closed when cmd has exited
	paused bool
}

// StartServer starts a new, empty redis-server on a free loopback port and
// stops it when the test ends. It skips the test (or fails it, in CI) when
// redis-server is not installed.
func StartServer(tb testing.TB, opts ...ServerOption) *Server {
	tb.Helper()
	s, err := startServer(opts...)
	if err != nil {
		if errors.Is(err, ErrNoServerBinary) {
			skipOrFail(tb, err.Error())
		}
		tb.Fatalf("redistest: start redis-server: %v", err)
	}
	tb.Cleanup(func() { s.shutdown() })
	return s
}

// StartServers starts n independent servers in parallel, as StartServer does.
func StartServers(tb testing.TB, n int, opts ...ServerOption) []*Server {
	tb.Helper()
	servers := make([]*Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { servers[i], errs[i] = startServer(opts...) })
	}
	wg.Wait()
	for _, s := range servers {
		if s != nil {
			tb.Cleanup(func() { s.shutdown() })
		}
	}
	if err := errors.Join(errs...); err != nil {
		if errors.Is(err, ErrNoServerBinary) {
			skipOrFail(tb, ErrNoServerBinary.Error())
		}
		tb.Fatalf("redistest: start redis-server: %v", err)
	}
	return servers
}

func startServer(opts ...ServerOption) (*Server, error) {
	if _, err := exec.LookPath(serverBin()); err != nil {
		return nil, ErrNoServerBinary
	}
	var cfg serverConfig
	for _, o := range opts {
		o(&cfg)
	}
	// A free port can be taken by someone else between probing and binding:
	// try a few.
	var lastErr error
	for range 5 {
		var s *Server
		if s, lastErr = tryStartServer(cfg); lastErr == nil {
			register(s)
			return s, nil
		}
	}
	return nil, lastErr
}

// tryStartServer starts a server on a free port in a new directory, which
// it removes again if the start fails. A fresh directory per attempt means a
// fresh sentinel.conf: a sentinel never inherits the ID (and the peers) that
// a failed attempt wrote there.
func tryStartServer(cfg serverConfig) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "outrigger-redis-*")
	if err != nil {
		return nil, err
	}
	s := &Server{port: port, dir: dir, cfg: cfg}
	if cfg.sentinelConf != "" {
		err = os.WriteFile(filepath.Join(dir, "sentinel.conf"), []byte(cfg.sentinelConf), 0o600)
	}
	if err == nil {
		err = s.start()
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) args() []string {
	var a []string
	if s.cfg.sentinelConf != "" {
		// The config file must come first; Sentinel rewrites it with its state.
		a = append(a, filepath.Join(s.dir, "sentinel.conf"), "--sentinel")
	}
	a = append(a,
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--logfile", "redis.log",
		"--daemonize", "no",
		"--save", "",
		"--protected-mode", "no",
	)
	if s.cfg.persistence {
		a = append(a, "--appendonly", "yes", "--appendfsync", "everysec")
	} else {
		a = append(a, "--appendonly", "no")
	}
	return append(a, s.cfg.args...)
}

// start launches the process and waits until it answers PING.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("redistest: server %s is already running", s.Addr())
	}
	cmd := exec.Command(serverBin(), s.args()...)
	cmd.Dir = s.dir
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	if err := waitReady(s.Addr(), cmd.Process.Pid, exited); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("%w (log: %s)", err, tail(filepath.Join(s.dir, "redis.log")))
	}
	s.cmd, s.exited, s.paused = cmd, exited, false
	return nil
}

// waitReady waits until the server on addr answers and is the process pid.
// The port can be taken by another server between freePort and the bind:
// ours then exits, but the other one answers PING, and a PING alone would
// pass it off as ours (two sentinels of a deployment on one address).
func waitReady(addr string, pid int, exited <-chan struct{}) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second, ReadTimeout: time.Second})
	defer c.Close()
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-exited:
			return fmt.Errorf("redistest: redis-server on %s exited during start", addr)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := isProcess(ctx, c, pid)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redistest: redis-server on %s not ready after %v: %w", addr, startTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// isProcess returns nil when the server c talks to answers PING and is the
// process pid.
func isProcess(ctx context.Context, c *redis.Client, pid int) error {
	if err := c.Ping(ctx).Err(); err != nil {
		return err
	}
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return err
	}
	want := "process_id:" + strconv.Itoa(pid)
	for line := range strings.Lines(info) {
		if strings.TrimSpace(line) == want {
			return nil
		}
	}
	return fmt.Errorf("another process answers (INFO has no %s)", want)
}

func tail(path string) string { return tailBytes(path, 600) }

// tailBytes returns the last n bytes of the file at path (or why it cannot).
func tailBytes(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Addr returns the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// Dir returns the server's working directory (its log and data files).
func (s *Server) Dir() string { return s.dir }

// Client returns a new client for the server, closed when the test ends.
// mods, if any, adjust the options first (timeouts, retries, protocol).
func (s *Server) Client(tb testing.TB, mods ...func(*redis.Options)) *redis.Client {
	tb.Helper()
	o := &redis.Options{Addr: s.Addr()}
	for _, m := range mods {
		m(o)
	}
	c := redis.NewClient(o)
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Running reports whether the process is running (paused counts as running).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// Stop shuts the server down with SIGTERM (SIGKILL after a bound) and waits
// for it to exit. Stopping a stopped server is a no-op.
func (s *Server) Stop() error { return s.stop(syscall.SIGTERM) }

// Kill stops the server with SIGKILL, as a crash would: nothing is saved.
func (s *Server) Kill() error { return s.stop(syscall.SIGKILL) }

func (s *Server) stop(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	p := s.cmd.Process
	if s.paused {
		_ = p.Signal(syscall.SIGCONT)
	}
	_ = p.Signal(sig)
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		_ = p.Kill()
		<-s.exited
	}
	s.cmd, s.exited, s.paused = nil, nil, false
	return nil
}

// Start starts a stopped server again on the same port.
func (s *Server) Start() error { return s.start() }

// Restart stops the server and starts it again on the same port. Data is
// lost unless the server was started [WithPersistence].
func (s *Server) Restart() error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.start()
}

// Pause suspends the process with SIGSTOP: it keeps its port and accepts
// connections, but answers nothing until [Server.Resume].
func (s *Server) Pause() error { return s.signal(syscall.SIGSTOP, true) }

// Resume continues a paused process with SIGCONT.
func (s *Server) Resume() error { return s.signal(syscall.SIGCONT, false) }

func (s *Server) signal(sig syscall.Signal, paused bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return fmt.Errorf("redistest: server %s is not running", s.Addr())
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		return err
	}
	s.paused = paused
	return nil
}

// Pid returns the process ID, or 0 when the server is stopped.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// shutdown stops the process for good and removes its directory.
func (s *Server) shutdown() {
	_ = s.Kill()
	unregister(s)
	_ = os.RemoveAll(s.dir)
}

// registry holds every live server so that Main can stop them at exit.
var registry struct {
	sync.Mutex
	servers map[*Server]struct{}
}

func register(s *Server) {
	registry.Lock()
	defer registry.Unlock()
	if registry.servers == nil {
		registry.servers = make(map[*Server]struct{})
	}
	registry.servers[s] = struct{}{}
}

func unregister(s *Server) {
	registry.Lock()
	defer registry.Unlock()
	delete(registry.servers, s)
}

func shutdownAll() {
	registry.Lock()
	all := make([]*Server, 0, len(registry.servers))
	for s := range registry.servers {
		all = append(all, s)
	}
	registry.Unlock()
	for _, s := range all {
		s.shutdown()
	}
}
