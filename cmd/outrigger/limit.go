package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/outrigger-dev/outrigger/console"
	"github.com/outrigger-dev/outrigger/ratelimit"
)

func (a *app) limit(ctx context.Context, cmd string, args []string) error {
	var limits []ratelimit.Limit
	for _, s := range a.o.limits {
		l, err := ratelimit.ParseLimit(s)
		if err != nil {
			return usageErr("--limit: %v", err)
		}
		limits = append(limits, l)
	}
	opts := []ratelimit.Option{ratelimit.WithPrefix(a.prefix("ratelimit:"))}
	switch a.o.alg {
	case "gcra", "":
	case "sliding-window", "sw":
		opts = append(opts, ratelimit.WithAlgorithm(ratelimit.SlidingWindow))
	default:
		return usageErr("--algorithm: want gcra or sliding-window, got %q", a.o.alg)
	}
	in, err := ratelimit.NewInspector(a.c, limits, opts...)
	if err != nil {
		return err
	}
	key, err := one("limit "+cmd, args, "key")
	if err != nil {
		return err
	}
	switch cmd {
	case "get", "show":
		st, err := in.Get(ctx, key)
		if err != nil {
			return err
		}
		return a.emit(st, func(t *tabwriter.Writer) {
			row(t, "key", st.Key)
			row(t, "redis key", st.RedisKey)
			row(t, "state", map[bool]string{true: "held in Redis", false: "none (full burst)"}[st.Exists])
			if st.Known {
				row(t, "remaining", fmt.Sprintf("%d (under %s)", st.Remaining, st.Limit))
			} else {
				row(t, "remaining", "unknown: give the limiter's limits with --limit 100/1s")
			}
			row(t, "full again", map[bool]string{true: "in " + dur(st.ResetAfter), false: "now"}[st.Exists])
		})
	case "reset":
		had, err := in.Reset(ctx, key)
		detail := "reset " + key + ": full burst again"
		if err == nil && !had {
			detail = "reset " + key + ": it had no state"
		}
		return a.done(ctx, console.Action{Verb: console.Reset, Kind: "limit", Target: key}, detail, err)
	}
	return usageErr("unknown command limit %q", cmd)
}
