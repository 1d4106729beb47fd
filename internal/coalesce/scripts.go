package coalesce

import (
	"context"
	"slices"

	"github.com/redis/go-redis/v9"
)

// Script is one script execution for a Group made by NewScripts: the
// caller sets Script, Keys, Args and optionally OnNoScript; the flush sets
// Val and Err (as redis.Cmd.Result would return them).
type Script struct {
	Script *redis.Script
	Keys   []string
	Args   []any
	// OnNoScript, if set, is told each time Redis answers NOSCRIPT (the
	// script did not run), before the call is sent again.
	OnNoScript NoScripter
	// OnCmd, if set, is given the EVALSHA command before it is processed,
	// so that an argument marshalled at each write can look at the error
	// the previous write got (cmd.Err, see CmdWatcher).
	OnCmd CmdWatcher
	Val   any
	Err   error
}

// NoScripter is told that Redis answered NOSCRIPT: the script did not run.
type NoScripter interface{ NoScript() }

// CmdWatcher is given a call's EVALSHA command before it is processed.
// go-redis sets the command's error after each node's attempts (a MOVED or
// ASK redirect, a TRYAGAIN, a network error) before it writes it again to
// the next node, but not between the retries of one node.
type CmdWatcher interface{ Watch(cmd *redis.Cmd) }

// NewScripts returns a Group that runs scripts on c: a lone call as
// EVALSHA, concurrent calls as one pipeline of EVALSHA; a call that found
// its script missing (after SCRIPT FLUSH or a failover) loads it and is
// sent again (EVAL if loading fails). On a Cluster client the
// pipeline is split by node, as go-redis does for every pipeline.
func NewScripts(c redis.UniversalClient, maxInFlight, maxBatch int) *Group[*Script] {
	return New(maxInFlight, maxBatch, func(ctx context.Context, calls []*Script) {
		if len(calls) == 1 {
			calls[0].run(ctx, c)
			return
		}
		cmds := make([]*redis.Cmd, len(calls))
		_, _ = c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, s := range calls {
				cmds[i] = s.evalSha(ctx)
				_ = p.Process(ctx, cmds[i])
			}
			return nil
		})
		var loaded []*redis.Script // by this flush: load each once
		for i, s := range calls {
			s.Val, s.Err = cmds[i].Result()
			if s.noScript() {
				loaded = s.reload(ctx, c, loaded)
			}
		}
	})
}

// evalSha returns s's EVALSHA command, given to s.OnCmd.
func (s *Script) evalSha(ctx context.Context) *redis.Cmd {
	args := make([]any, 0, 3+len(s.Keys)+len(s.Args))
	args = append(args, "evalsha", s.Script.Hash(), len(s.Keys))
	for _, k := range s.Keys {
		args = append(args, k)
	}
	cmd := redis.NewCmd(ctx, append(args, s.Args...)...)
	if len(s.Keys) > 0 {
		cmd.SetFirstKeyPos(3) // as go-redis' own EvalSha: route by KEYS[1]
	}
	if s.OnCmd != nil {
		s.OnCmd.Watch(cmd)
	}
	return cmd
}

// run sends s alone as EVALSHA, and again after a NOSCRIPT (see reload).
func (s *Script) run(ctx context.Context, c redis.UniversalClient) {
	s.send(ctx, c)
	if s.noScript() {
		s.reload(ctx, c, nil)
	}
}

// send sends s's EVALSHA command on c and sets s's result.
func (s *Script) send(ctx context.Context, c redis.UniversalClient) {
	cmd := s.evalSha(ctx)
	_ = c.Process(ctx, cmd)
	s.Val, s.Err = cmd.Result()
}

// reload loads s's script (on every master of a Cluster) unless it is in
// loaded, and sends s again as EVALSHA, so that the command is still one
// OnCmd watches; it falls back to EVAL if the script cannot be loaded or is
// missing again. It returns loaded with s's script added once loaded.
func (s *Script) reload(ctx context.Context, c redis.UniversalClient, loaded []*redis.Script) []*redis.Script {
	if !slices.Contains(loaded, s.Script) && s.Script.Load(ctx, c).Err() == nil {
		loaded = append(loaded, s.Script)
	}
	if slices.Contains(loaded, s.Script) {
		s.send(ctx, c)
		if !s.noScript() {
			return loaded
		}
	}
	s.Val, s.Err = s.Script.Eval(ctx, c, s.Keys, s.Args...).Result()
	return loaded
}

// noScript reports whether s's reply was NOSCRIPT, calling the hook if so.
func (s *Script) noScript() bool {
	if s.Err == nil || !redis.HasErrorPrefix(s.Err, "NOSCRIPT") {
		return false
	}
	if s.OnNoScript != nil {
		s.OnNoScript.NoScript()
	}
	return true
}
