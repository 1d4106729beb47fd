// Command outrigger inspects and operates Outrigger's queues, scheduled
// jobs, locks and rate limits in Redis, from a terminal:
//
//	go install github.com/outrigger-dev/outrigger/cmd/outrigger@latest
//
//	outrigger queue ls                        every queue, its counts and rate
//	outrigger queue inspect orders            one queue, its consumers, its last minutes
//	outrigger queue dead orders --error timeout
//	outrigger queue requeue orders --all --error timeout
//	outrigger queue requeue orders --id 5f3a… --id 5f3b…
//	outrigger queue delete orders --all
//	outrigger queue pause orders / resume orders
//	outrigger jobs ls                         every job: schedule, last run, next run, flags
//	outrigger jobs history nightly-report
//	outrigger jobs trigger nightly-report
//	outrigger locks ls
//	outrigger locks release reports:daily [--owner <owner>]
//	outrigger limit get user:42 --limit 100/1s
//	outrigger limit reset user:42
//
// Flags, before or after the arguments:
//
//	--redis addr     Redis address (host:port, several comma-separated for a
//	                 Cluster, or a redis:// URL); default $OUTRIGGER_REDIS_ADDR
//	                 or 127.0.0.1:6379
//	--cluster        the address is a Cluster node (implied by several)
//	--prefix p       the package's key prefix (queues: WithPrefix, default "";
//	                 jobs: WithNamespace, default "outrigger:scheduler:"; locks:
//	                 WithPrefix, default "outrigger:lock:"; limits: WithPrefix,
//	                 default "ratelimit:")
//	--json           JSON for scripts instead of tables for people
//	--timeout d      bound on the whole command (default 30s)
//
// Every action (requeue, delete, pause, resume, trigger, release, reset) is
// recorded in the console's audit stream (--audit-key, default
// $OUTRIGGER_AUDIT_KEY or "outrigger:console:audit"; --audit-key "" to
// skip), with $USER@host as the user and "cli" as the source.
//
// Exit status: 0 on success, 1 when the command failed, 2 for bad usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

// errUsage marks a usage error (exit status 2).
var errUsage = errors.New("usage")

func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, args...)...)
}

const usage = `usage: outrigger [flags] <command> [arguments] [flags]

commands:
  queue ls                          list the queues
  queue inspect <queue>             a queue's counts, consumers and recent minutes
  queue dead <queue>                its dead letters (--error s, --limit n, --cursor c)
  queue requeue <queue>             replay dead letters (--id id ... | --all [--error s])
  queue delete <queue>              delete dead letters (--id id ... | --all [--error s])
  queue pause|resume <queue>        pause or resume consumption on every replica
  jobs ls                           list the scheduled jobs
  jobs history <job>                a job's recent runs (--limit n)
  jobs trigger <job>                run a job now, on one replica that has it
  jobs pause|resume <job>           pause or resume a job's ticks
  locks ls                          list the held locks
  locks release <key>               force-release a lock, fenced (--owner o)
  limit get <key>                   a rate-limit key's state (--limit 100/1s ...)
  limit reset <key>                 give a key its full burst back

flags:
  --redis addr    Redis address(es) or redis:// URL (default $OUTRIGGER_REDIS_ADDR or 127.0.0.1:6379)
  --cluster       connect to a Redis Cluster
  --prefix p      the package's key prefix (see the package's WithPrefix / WithNamespace)
  --json          print JSON
  --timeout d     bound on the whole command (default 30s)
  --audit-key k   audit stream for actions (default outrigger:console:audit; "" for none)
`

// options are the flags every command takes.
type options struct {
	redis    string
	cluster  bool
	prefix   string
	prefixOK bool // --prefix was given
	json     bool
	timeout  time.Duration
	auditKey string

	// per command
	errorSub string
	limit    int
	cursor   string
	ids      multi
	all      bool
	owner    string
	limits   multi
	alg      string
	state    string
}

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func (o *options) flags(fs *flag.FlagSet) {
	fs.StringVar(&o.redis, "redis", o.redis, "Redis address")
	fs.BoolVar(&o.cluster, "cluster", o.cluster, "Redis Cluster")
	fs.Func("prefix", "key prefix", func(s string) error { o.prefix, o.prefixOK = s, true; return nil })
	fs.BoolVar(&o.json, "json", o.json, "JSON output")
	fs.DurationVar(&o.timeout, "timeout", o.timeout, "command timeout")
	fs.StringVar(&o.auditKey, "audit-key", o.auditKey, "audit stream key")
	fs.StringVar(&o.errorSub, "error", "", "dead letters whose error contains this")
	fs.IntVar(&o.limit, "limit", 0, "how many to show")
	fs.StringVar(&o.cursor, "cursor", "", "continue after this cursor")
	fs.Var(&o.ids, "id", "a message ID (repeatable)")
	fs.BoolVar(&o.all, "all", false, "every dead letter (matching --error)")
	fs.StringVar(&o.owner, "owner", "", "release only if this owner holds it")
	fs.Var(&o.limits, "rate", "a limit of the limiter, as 100/1s or \"10/1m burst 20\" (repeatable)")
	fs.StringVar(&o.alg, "algorithm", "gcra", "the limiter's algorithm: gcra or sliding-window")
	fs.StringVar(&o.state, "state", "dead", "queue inspect: messages to list (ready, in-flight, delayed, dead)")
}

// parse reads flags anywhere among the arguments.
func (o *options) parse(args []string, stderr io.Writer) ([]string, error) {
	fs := flag.NewFlagSet("outrigger", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o.flags(fs)
	// "limit get KEY --limit 100/1s" reads better than --rate: accept a
	// limit spec there.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(stderr, usage)
				return nil, flag.ErrHelp
			}
			return nil, usageErr("%v", err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// env is os.Getenv, injectable for tests.
type env func(string) string

// lookup reads a variable; "-" stands for the empty value (no audit).
func lookup(getenv env, k string) (string, bool) {
	v := getenv(k)
	if v == "" {
		return "", false
	}
	if v == "-" {
		return "", true
	}
	return v, true
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv env) int {
	o := &options{timeout: 30 * time.Second, auditKey: "outrigger:console:audit", redis: getenv("OUTRIGGER_REDIS_ADDR")}
	if k, ok := lookup(getenv, "OUTRIGGER_AUDIT_KEY"); ok {
		o.auditKey = k
	}
	if o.redis == "" {
		o.redis = "127.0.0.1:6379"
	}
	// "limit get k --limit 100/1s": --limit is a spec there, not a count.
	args = limitSpecs(args)
	pos, err := o.parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err == nil && len(pos) < 2 {
		err = usageErr("a command is missing")
	}
	if err != nil {
		fmt.Fprintf(stderr, "outrigger: %v\n\n%s", err, usage)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	c, err := o.client()
	if err != nil {
		fmt.Fprintf(stderr, "outrigger: %v\n", err)
		return 2
	}
	defer c.Close()
	a := &app{o: o, c: c, out: stdout, getenv: getenv}
	err = a.dispatch(ctx, pos[0], pos[1], pos[2:])
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "outrigger: %v\n\n%s", err, usage)
		return 2
	default:
		fmt.Fprintf(stderr, "outrigger: %v\n", err)
		return 1
	}
}

// limitSpecs turns "--limit 100/1s" (a rate spec: it has a '/') into
// "--rate 100/1s".
func limitSpecs(args []string) []string {
	out := make([]string, len(args))
	copy(out, args)
	for i := 0; i+1 < len(out); i++ {
		if (out[i] == "--limit" || out[i] == "-limit") && strings.Contains(out[i+1], "/") {
			out[i] = "--rate"
		}
	}
	return out
}

// client connects to the Redis the flags name.
func (o *options) client() (redis.UniversalClient, error) {
	if strings.HasPrefix(o.redis, "redis://") || strings.HasPrefix(o.redis, "rediss://") {
		if o.cluster {
			opt, err := redis.ParseClusterURL(o.redis)
			if err != nil {
				return nil, fmt.Errorf("--redis: %w", err)
			}
			return redis.NewClusterClient(opt), nil
		}
		opt, err := redis.ParseURL(o.redis)
		if err != nil {
			return nil, fmt.Errorf("--redis: %w", err)
		}
		return redis.NewClient(opt), nil
	}
	addrs := strings.Split(o.redis, ",")
	for i, a := range addrs {
		addrs[i] = strings.TrimSpace(a)
		if addrs[i] == "" {
			return nil, fmt.Errorf("--redis: empty address in %q", o.redis)
		}
	}
	return redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs, IsClusterMode: o.cluster || len(addrs) > 1}), nil
}

// app runs one command.
type app struct {
	o      *options
	c      redis.UniversalClient
	out    io.Writer
	getenv env
}

func (a *app) dispatch(ctx context.Context, group, cmd string, args []string) error {
	switch group {
	case "queue", "queues":
		return a.queue(ctx, cmd, args)
	case "jobs", "job":
		return a.jobs(ctx, cmd, args)
	case "locks", "lock":
		return a.locks(ctx, cmd, args)
	case "limit", "limits":
		return a.limit(ctx, cmd, args)
	}
	return usageErr("unknown command %q", group)
}

// one returns the single argument a command takes.
func one(cmd string, args []string, what string) (string, error) {
	if len(args) != 1 || args[0] == "" {
		return "", usageErr("%s takes one %s", cmd, what)
	}
	return args[0], nil
}

// prefix returns --prefix, or def when it was not given.
func (a *app) prefix(def string) string {
	if a.o.prefixOK {
		return a.o.prefix
	}
	return def
}
