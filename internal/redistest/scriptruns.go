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

// ScriptRuns is a go-redis hook that counts the script calls (EVAL,
// EVALSHA and their _RO forms, alone or in pipelines) a client sent, per
// script SHA1 (redis.Script.Hash). A call Redis answered NOSCRIPT did not
// run and is not counted; one that ran and failed is, as is one whose reply
// was lost. Tests use it to check that a failing script was not retried.
// Add it with client.AddHook(runs). It is safe for concurrent use.
type ScriptRuns struct {
	mu sync.Mutex // protects n
	n  map[string]int64
}

var _ redis.Hook = (*ScriptRuns)(nil)

// NewScriptRuns returns an empty ScriptRuns.
func NewScriptRuns() *ScriptRuns { return &ScriptRuns{n: make(map[string]int64)} }

// Runs returns the calls of the script with this SHA1 counted so far.
func (s *ScriptRuns) Runs(sha string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[sha]
}

// DialHook does nothing.
func (s *ScriptRuns) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return next(ctx, network, addr)
	}
}

// ProcessHook counts cmd once it has its reply.
func (s *ScriptRuns) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		s.record(cmd, err) // go-redis sets cmd's error after the hooks
		return err
	}
}

// ProcessPipelineHook counts the pipeline's script calls once they have
// their replies.
func (s *ScriptRuns) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, cmd := range cmds {
			s.record(cmd, cmd.Err())
		}
		return err
	}
}

// scriptSHA returns the SHA1 of the script cmd runs, and false when cmd
// is not a script call (EVAL, EVALSHA or their _RO forms).
func scriptSHA(cmd redis.Cmder) (string, bool) {
	args := cmd.Args()
	if len(args) < 2 {
		return "", false
	}
	body, _ := args[1].(string)
	switch cmd.Name() {
	case "evalsha", "evalsha_ro":
		return strings.ToLower(body), true
	case "eval", "eval_ro":
		h := sha1.Sum([]byte(body))
		return hex.EncodeToString(h[:]), true
	}
	return "", false
}

func (s *ScriptRuns) record(cmd redis.Cmder, err error) {
	sha, ok := scriptSHA(cmd)
	if !ok {
		return
	}
	if redis.HasErrorPrefix(err, "NOSCRIPT") {
		return
	}
	s.mu.Lock()
	s.n[sha]++
	s.mu.Unlock()
}
