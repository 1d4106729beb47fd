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
	Val        any
	Err        error
}

// NoScripter is told that Redis answered NOSCRIPT: the script did not run.
type NoScripter interface{ NoScript() }

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
				cmds[i] = s.Script.EvalSha(ctx, p, s.Keys, s.Args...)
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

// run sends s alone: EVALSHA, and EVAL after a NOSCRIPT.
func (s *Script) run(ctx context.Context, c redis.UniversalClient) {
	s.Val, s.Err = s.Script.EvalSha(ctx, c, s.Keys, s.Args...).Result()
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
