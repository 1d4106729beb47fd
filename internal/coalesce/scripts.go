package coalesce

import (
	"context"

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
// EVALSHA (EVAL after NOSCRIPT), concurrent calls as one pipeline of
// EVALSHA, re-sending the ones that found their script missing (after
// SCRIPT FLUSH or a failover) once it is loaded. On a Cluster client the
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
		for i, s := range calls {
			s.Val, s.Err = cmds[i].Result()
			if s.noScript() {
				s.run(ctx, c)
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

// run sends s alone: EVALSHA, and EVAL after a NOSCRIPT.
func (s *Script) run(ctx context.Context, c redis.UniversalClient) {
	cmd := s.evalSha(ctx)
	_ = c.Process(ctx, cmd)
	s.Val, s.Err = cmd.Result()
	if s.noScript() {
		s.Val, s.Err = s.Script.Eval(ctx, c, s.Keys, s.Args...).Result()
	}
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
