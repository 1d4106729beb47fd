package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/outrigger-dev/outrigger/console"
	"github.com/outrigger-dev/outrigger/lock"
)

func (a *app) locks(ctx context.Context, cmd string, args []string) error {
	in, err := lock.NewInspector(a.c, lock.WithPrefix(a.prefix(lock.DefaultPrefix)))
	if err != nil {
		return err
	}
	switch cmd {
	case "ls", "list":
		ls, err := in.Locks(ctx)
		if err != nil {
			return err
		}
		return a.emit(ls, func(t *tabwriter.Writer) {
			row(t, "KEY", "HOST", "PID", "TOKEN", "TTL", "WAITERS", "OWNER")
			for _, l := range ls {
				host, pid := l.Host, fmt.Sprint(l.PID)
				if host == "" {
					host, pid = "-", "-"
				}
				row(t, l.Key, host, pid, l.Token, dur(l.TTL), l.Waiters, l.Owner)
			}
		})
	case "release", "force-release":
		key, err := one("locks "+cmd, args, "lock key")
		if err != nil {
			return err
		}
		var opts []lock.ForceOption
		if a.o.owner != "" {
			opts = append(opts, lock.ExpectOwner(a.o.owner))
		}
		rv, err := in.ForceRelease(ctx, key, opts...)
		detail := fmt.Sprintf("released %s, taken from %s (revocation token %d)", key, rv.Owner, rv.Token)
		if err != nil {
			detail = "release " + key
		}
		return a.done(ctx, console.Action{Verb: console.ForceRelease, Kind: "lock", Target: key}, detail, err)
	}
	return usageErr("unknown command locks %q", cmd)
}
