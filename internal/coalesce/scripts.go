package coalesce

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// Script is one script execution for a Group made by NewScripts: the
// caller sets Script, Keys and Args; the flush sets Val and Err (as
// redis.Cmd.Result would return them).
type Script struct {
	Script *redis.Script
	Keys   []string
	Args   []any
	Val    any
	Err    error
}

// NewScripts returns a Group that runs scripts on c: a lone call as
// EVALSHA (EVAL after NOSCRIPT), concurrent calls as one pipeline of
// EVALSHA, re-sending the ones that found their script missing (after
// SCRIPT FLUSH or a failover) once it is loaded. On a Cluster client the
// pipeline is split by node, as go-redis does for every pipeline.
func NewScripts(c redis.UniversalClient, maxInFlight, maxBatch int) *Group[*Script] {
	return New(maxInFlight, maxBatch, func(ctx context.Context, calls []*Script) {
		if len(calls) == 1 {
			s := calls[0]
			s.Val, s.Err = s.Script.Run(ctx, c, s.Keys, s.Args...).Result()
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
			if s.Err != nil && redis.HasErrorPrefix(s.Err, "NOSCRIPT") {
				s.Val, s.Err = s.Script.Run(ctx, c, s.Keys, s.Args...).Result()
			}
		}
	})
}
