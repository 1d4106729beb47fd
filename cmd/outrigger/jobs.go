package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/outrigger-dev/outrigger/console"
	"github.com/outrigger-dev/outrigger/scheduler"
)

func (a *app) jobs(ctx context.Context, cmd string, args []string) error {
	in, err := scheduler.NewInspector(a.c, scheduler.WithNamespace(a.prefix("outrigger:scheduler:")))
	if err != nil {
		return err
	}
	if cmd == "ls" || cmd == "list" {
		js, err := in.Jobs(ctx)
		if err != nil {
			return err
		}
		return a.emit(js, func(t *tabwriter.Writer) {
			row(t, "JOB", "SCHEDULE", "LAST RUN", "OUTCOME", "NEXT RUN", "STATE")
			for _, j := range js {
				last, outcome := "never", "-"
				if r := j.LastRun; r != nil {
					last, outcome = ago(r.Start)+" on "+r.Node, runOutcome(*r)
				}
				next := until(j.Next)
				if j.Paused {
					next = "-"
				}
				row(t, j.Name, j.Schedule, last, outcome, next, jobState(j))
			}
		})
	}
	name, err := one("jobs "+cmd, args, "job name")
	if err != nil {
		return err
	}
	act := func(v console.Verb) console.Action { return console.Action{Verb: v, Kind: "job", Target: name} }
	switch cmd {
	case "history":
		n := a.o.limit
		if n <= 0 {
			n = 20
		}
		hs, err := in.History(ctx, name, n)
		if err != nil {
			return err
		}
		return a.emit(hs, func(t *tabwriter.Writer) {
			row(t, "TICK", "KIND", "NODE", "STARTED", "TOOK", "ATTEMPTS", "OUTCOME")
			for _, r := range hs {
				took := "-"
				if !r.Skipped {
					took = dur(r.End.Sub(r.Start))
				}
				row(t, r.Tick.Local().Format("2006-01-02 15:04:05"), r.Kind, r.Node, ago(r.Start), took, r.Attempt, runOutcome(r))
			}
			if len(hs) == 0 {
				row(t, "(no run recorded)", "", "", "", "", "", "")
			}
		})
	case "trigger", "run":
		tr, err := in.Trigger(ctx, name, a.getenv("USER")+" (cli)")
		detail := fmt.Sprintf("triggered %s: %s runs it now", name, tr.Node)
		if err != nil {
			detail = "triggered " + name
		}
		return a.done(ctx, act(console.Trigger), detail, err)
	case "pause":
		return a.done(ctx, act(console.Pause), "paused "+name+" on every replica", in.Pause(ctx, name, a.getenv("USER")+" (cli)"))
	case "resume":
		return a.done(ctx, act(console.Resume), "resumed "+name, in.Resume(ctx, name))
	}
	return usageErr("unknown command jobs %q", cmd)
}

func runOutcome(r scheduler.RunRecord) string {
	switch {
	case r.Skipped:
		return "skipped"
	case r.Error != "":
		return "failed: " + cell(r.Error, 50)
	}
	return "ok"
}

func jobState(j scheduler.JobInfo) string {
	switch {
	case j.Paused:
		return "paused"
	case j.Missed:
		return "MISSED TICKS"
	case j.Stale:
		return "no scheduler"
	case j.Running:
		return "running"
	}
	return "scheduled"
}
