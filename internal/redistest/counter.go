package redistest

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
)

// Counter is a go-redis hook that counts round trips and commands. A single
// command is one round trip; a pipeline or transaction is one round trip
// carrying several commands. The commands go-redis sends to set up a new
// connection (HELLO, AUTH, SELECT, READONLY, CLIENT SETNAME/SETINFO/
// MAINT_NOTIFICATIONS) are not counted: [Counter.Dials] counts connections.
// Add it with client.AddHook(counter). It is safe for concurrent use.
type Counter struct {
	roundTrips atomic.Int64
	commands   atomic.Int64
	dials      atomic.Int64
}

var _ redis.Hook = (*Counter)(nil)

// NewCounter returns a zeroed Counter.
func NewCounter() *Counter { return new(Counter) }

// DialHook counts new connections.
func (c *Counter) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c.dials.Add(1)
		return next(ctx, network, addr)
	}
}

// ProcessHook counts one round trip and one command.
func (c *Counter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !isSetup(cmd) {
			c.roundTrips.Add(1)
			c.commands.Add(1)
		}
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook counts one round trip and len(cmds) commands.
func (c *Counter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		n := 0
		for _, cmd := range cmds {
			if !isSetup(cmd) {
				n++
			}
		}
		if n > 0 {
			c.roundTrips.Add(1)
			c.commands.Add(int64(n))
		}
		return next(ctx, cmds)
	}
}

// isSetup reports whether cmd is one go-redis sends when it opens a connection.
func isSetup(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "hello", "auth", "select", "readonly":
		return true
	case "client":
		args := cmd.Args()
		if len(args) < 2 {
			return false
		}
		sub, _ := args[1].(string)
		switch strings.ToLower(sub) {
		case "setname", "setinfo", "maint_notifications":
			return true
		}
	}
	return false
}

// RoundTrips returns the round trips counted since the last Reset.
func (c *Counter) RoundTrips() int64 { return c.roundTrips.Load() }

// Commands returns the commands counted since the last Reset.
func (c *Counter) Commands() int64 { return c.commands.Load() }

// Dials returns the connections opened since the last Reset.
func (c *Counter) Dials() int64 { return c.dials.Load() }

// Reset zeroes the counts; benchmarks call it after b.ResetTimer.
func (c *Counter) Reset() {
	c.roundTrips.Store(0)
	c.commands.Store(0)
	c.dials.Store(0)
}

// Report adds round-trips/op and commands/op metrics to b, per b.N.
func (c *Counter) Report(b *testing.B) {
	b.Helper()
	if b.N == 0 {
		return
	}
	b.ReportMetric(float64(c.RoundTrips())/float64(b.N), "round-trips/op")
	b.ReportMetric(float64(c.Commands())/float64(b.N), "commands/op")
}
