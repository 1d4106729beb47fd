package redistest

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"net"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// ScriptSwap is a go-redis hook that makes a client run other Lua source in
// place of a script: every EVAL or EVALSHA of a swapped script (alone or in a
// pipeline) is sent as an EVAL of its replacement, which Redis really runs.
// Tests use it to see what a package does with a script that fails or that
// answers with a reply of the wrong shape, without a test-only seam in the
// package and on any client the package is given. Add it with
// client.AddHook(swap) before the client is used. It is safe for concurrent
// use.
type ScriptSwap struct {
	mu   sync.Mutex        // protects with
	with map[string]string // script SHA1 -> replacement source
}

var _ redis.Hook = (*ScriptSwap)(nil)

// NewScriptSwap returns a ScriptSwap that swaps nothing yet.
func NewScriptSwap() *ScriptSwap { return &ScriptSwap{with: make(map[string]string)} }

// Swap makes the client run with instead of the script whose source is src
// (the script's SHA1, as redis.Script.Hash returns it, also works), from the
// next call on.
func (s *ScriptSwap) Swap(src, with string) {
	s.mu.Lock()
	s.with[shaOf(src)] = with
	s.mu.Unlock()
}

// Restore stops swapping the script whose source (or SHA1) is src.
func (s *ScriptSwap) Restore(src string) {
	s.mu.Lock()
	delete(s.with, shaOf(src))
	s.mu.Unlock()
}

// shaOf returns src's SHA1, or src itself when it already is one.
func shaOf(src string) string {
	if len(src) == 40 && strings.Trim(strings.ToLower(src), "0123456789abcdef") == "" {
		return strings.ToLower(src)
	}
	h := sha1.Sum([]byte(src))
	return hex.EncodeToString(h[:])
}

// DialHook does nothing.
func (s *ScriptSwap) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return next(ctx, network, addr)
	}
}

// ProcessHook rewrites cmd before it is sent.
func (s *ScriptSwap) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		s.rewrite(cmd)
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook rewrites the pipeline's script calls before they are
// sent.
func (s *ScriptSwap) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			s.rewrite(cmd)
		}
		return next(ctx, cmds)
	}
}

// rewrite turns a call of a swapped script into an EVAL of its replacement,
// in place: cmd.Args is the slice go-redis sends.
func (s *ScriptSwap) rewrite(cmd redis.Cmder) {
	sha, ok := scriptSHA(cmd)
	if !ok {
		return
	}
	s.mu.Lock()
	with, ok := s.with[sha]
	s.mu.Unlock()
	if ok {
		args := cmd.Args()
		args[0], args[1] = "eval", with
	}
}
