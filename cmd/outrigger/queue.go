package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/outrigger-dev/outrigger/console"
	"github.com/outrigger-dev/outrigger/queue"
)

func (a *app) queue(ctx context.Context, cmd string, args []string) error {
	in, err := queue.NewInspector(a.c, queue.WithPrefix(a.prefix("")))
	if err != nil {
		return err
	}
	if cmd == "ls" || cmd == "list" {
		qs, err := in.Queues(ctx)
		if err != nil {
			return err
		}
		return a.emit(qs, func(t *tabwriter.Writer) {
			row(t, "QUEUE", "READY", "IN FLIGHT", "DELAYED", "DEAD", "OLDEST", "ACKED 5M", "FAILED 5M", "CONSUMERS", "STATE")
			for _, q := range qs {
				row(t, q.Name, q.Ready, q.InFlight, q.Delayed, q.Dead, dur(q.OldestAge), q.Acked, q.Failed, q.Consumers, queueState(q))
			}
		})
	}
	name, err := one("queue "+cmd, args, "queue name")
	if err != nil {
		return err
	}
	act := func(v console.Verb) console.Action { return console.Action{Verb: v, Kind: "queue", Target: name} }
	switch cmd {
	case "inspect", "show":
		return a.queueInspect(ctx, in, name)
	case "dead":
		p, err := in.Messages(ctx, name, queue.StateDead, queue.PageOptions{ErrorContains: a.o.errorSub, Limit: a.o.limit, Cursor: a.o.cursor})
		if err != nil {
			return err
		}
		return a.emit(p, func(t *tabwriter.Writer) {
			row(t, "ID", "ATTEMPT", "DIED", "ERROR", "BODY")
			for _, m := range p.Messages {
				row(t, m.ID, m.Attempt, ago(m.DeadAt), cell(m.LastError, 60), body(m.Body, 40))
			}
			t.Flush()
			fmt.Fprintf(a.out, "%d shown of %d dead letters", len(p.Messages), p.Total)
			if a.o.errorSub != "" {
				fmt.Fprintf(a.out, " (error contains %q)", a.o.errorSub)
			}
			if p.Next != "" {
				fmt.Fprintf(a.out, "; more with --cursor %s", p.Next)
			}
			fmt.Fprintln(a.out)
		})
	case "requeue", "delete":
		sel, what, err := a.selection()
		if err != nil {
			return err
		}
		op, did, verb := in.Requeue, "requeued", console.Requeue
		if cmd == "delete" {
			op, did, verb = in.Delete, "deleted", console.Delete
		}
		n, err := op(ctx, name, sel)
		return a.done(ctx, act(verb), fmt.Sprintf("%s %d dead letter%s of %s (%s)", did, n, plural(n), name, what), err)
	case "pause":
		return a.done(ctx, act(console.Pause), "paused consumption of "+name+" on every replica", in.Pause(ctx, name, a.getenv("USER")+" (cli)"))
	case "resume":
		return a.done(ctx, act(console.Resume), "resumed consumption of "+name, in.Resume(ctx, name))
	}
	return usageErr("unknown command queue %q", cmd)
}

func (a *app) selection() (queue.Selection, string, error) {
	switch {
	case len(a.o.ids) > 0 && a.o.all:
		return queue.Selection{}, "", usageErr("give --id or --all, not both")
	case len(a.o.ids) > 0:
		return queue.Selection{IDs: a.o.ids}, fmt.Sprintf("%d by ID", len(a.o.ids)), nil
	case a.o.all && a.o.errorSub != "":
		return queue.Selection{All: true, ErrorContains: a.o.errorSub}, fmt.Sprintf("all whose error contains %q", a.o.errorSub), nil
	case a.o.all:
		return queue.Selection{All: true}, "all", nil
	case a.o.errorSub != "":
		return queue.Selection{}, "", usageErr("--error selects with --all: add --all to act on every match")
	}
	return queue.Selection{}, "", usageErr("say which dead letters: --id <id> (repeatable) or --all [--error <substring>]")
}

func queueState(q queue.QueueInfo) string {
	switch {
	case q.Paused:
		return "paused"
	case q.Consumers == 0:
		return "no consumer"
	}
	return "running"
}

// queueView is queue inspect's JSON.
type queueView struct {
	Queue     queue.QueueInfo      `json:"queue"`
	Consumers []queue.ConsumerInfo `json:"consumers"`
	History   []queue.Sample       `json:"history"`
	Messages  queue.Page           `json:"messages"`
}

func (a *app) queueInspect(ctx context.Context, in *queue.Inspector, name string) error {
	var v queueView
	var err error
	if v.Queue, err = in.Queue(ctx, name); err != nil {
		return err
	}
	if v.Consumers, err = in.Consumers(ctx, name); err != nil {
		return err
	}
	if v.History, err = in.History(ctx, name, 10); err != nil {
		return err
	}
	state, err := queue.ParseState(a.o.state)
	if err != nil {
		return usageErr("--state: %v", err)
	}
	limit := a.o.limit
	if limit <= 0 {
		limit = 10
	}
	if v.Messages, err = in.Messages(ctx, name, state, queue.PageOptions{Limit: limit, ErrorContains: a.o.errorSub}); err != nil {
		return err
	}
	return a.emit(v, func(t *tabwriter.Writer) {
		q := v.Queue
		row(t, "queue", q.Name)
		row(t, "state", queueState(q))
		row(t, "ready", q.Ready)
		row(t, "in flight", q.InFlight)
		row(t, "delayed", q.Delayed)
		row(t, "dead", q.Dead)
		row(t, "oldest message", dur(q.OldestAge))
		row(t, "acked, last 5 min", fmt.Sprintf("%d (%s)", q.Acked, rate(q.Throughput)))
		row(t, "published, last 5 min", q.Published)
		row(t, "failed, last 5 min", q.Failed)
		t.Flush()
		fmt.Fprintln(a.out)
		row(t, "CONSUMER", "HOLDING", "LAST READ")
		for _, c := range v.Consumers {
			row(t, c.Name, c.Pending, dur(c.Idle)+" ago")
		}
		if len(v.Consumers) == 0 {
			row(t, "(none)", "", "")
		}
		t.Flush()
		fmt.Fprintln(a.out)
		row(t, "MINUTE", "PUBLISHED", "ACKED", "RETRIED", "DEAD", "DEPTH")
		for _, s := range v.History {
			depth := "-"
			if s.Depth >= 0 {
				depth = fmt.Sprint(s.Depth)
			}
			row(t, s.Minute.Local().Format("15:04"), s.Published, s.Acked, s.Retried, s.Dead, depth)
		}
		t.Flush()
		fmt.Fprintln(a.out)
		row(t, "ID", "STATE", "ATTEMPT", "PUBLISHED", "ERROR", "BODY")
		for _, m := range v.Messages.Messages {
			row(t, m.ID, m.State, m.Attempt, ago(m.PublishedAt), cell(m.LastError, 50), body(m.Body, 40))
		}
		if len(v.Messages.Messages) == 0 {
			row(t, "(no "+string(state)+" messages)", "", "", "", "", "")
		}
	})
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
