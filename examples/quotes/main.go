// Command quotes is Outrigger's reference service: an HTTP API for market
// quotes fed by a simulated third-party feed, meant to run as several
// replicas behind a load balancer.
//
//   - Ingest: the feed delivers quotes through callbacks; each callback
//     publishes to the queue and returns at once. Consumers on every replica
//     write them to the database through a Batcher (multi-row INSERTs), never
//     one row per statement.
//   - Reads: GET /v1/quotes/{symbol} (latest quote, cache-aside with
//     invalidation when a newer quote is written) and
//     GET /v1/quotes/{symbol}/bars?from=&to= (1-minute bars).
//   - Limits and compression: a rate limit per X-API-Key (falling back to the
//     client IP) shared by all replicas, and compressed responses.
//   - Singleton jobs: a roll-up into 1-minute bars every minute and a nightly
//     purge, once per tick across all replicas; a lock-guarded admin
//     endpoint that rebuilds bars.
//
// Metrics are served on /metrics (Prometheus), the Outrigger packages'
// through OpenTelemetry; traces go to stdout or an OTLP collector with
// -traces (OUTRIGGER_TRACES), one trace per quote from the feed's callback
// through the queue and the database write to the live stream.
//
// With no configuration it runs one replica on the packages' in-process
// backends and an embedded SQLite file. With -redis and -db
// (postgres://...) it runs distributed on Redis and PostgreSQL.
//
// Usage:
//
//	go run ./examples/quotes [flags]
//
// Run with -h for the flags; each can also be set through the environment
// variable named in brackets.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// config is the service's configuration, from flags and the environment.
type config struct {
	addr           string
	redisAddr      string
	dbURL          string
	feedRate       int
	feedCount      int
	apiLimit       int
	rollupInterval time.Duration
	retention      time.Duration
	replica        string
	keyPrefix      string
	queueKind      string   // "redis" (Redis Streams, or in-process without -redis) or "kafka"
	kafkaBrokers   []string // with queueKind "kafka"
	peers          []string // base URLs of every replica, for pages to fail over to
	consoleToken   string   // the console's operator token ("" : read-only console)
	traces         string   // "" (off), "stdout" or "otlp": the span exporter
	logLevel       slog.Level

	spanExporter sdktrace.SpanExporter // tests: receives every span, synchronously
}

func parseConfig(args []string) (config, error) {
	fs := flag.NewFlagSet("quotes", flag.ContinueOnError)
	var c config
	fs.StringVar(&c.addr, "addr", envOr("ADDR", ":8080"), "listen address [ADDR]")
	fs.StringVar(&c.redisAddr, "redis", envOr("OUTRIGGER_REDIS_ADDR", ""), "Redis address host:port; empty = in-process backends, one replica [OUTRIGGER_REDIS_ADDR]")
	fs.StringVar(&c.dbURL, "db", envOr("DATABASE_URL", ""), "postgres://... URL, or a SQLite file path; empty = embedded SQLite file "+defaultSQLitePath()+" [DATABASE_URL]")
	fs.IntVar(&c.feedRate, "feed-rate", envInt("FEED_RATE", 200), "simulated quotes per second, 0 = no feed on this replica [FEED_RATE]")
	fs.IntVar(&c.feedCount, "feed-count", envInt("FEED_COUNT", 0), "stop the feed after this many quotes, 0 = never [FEED_COUNT]")
	fs.IntVar(&c.apiLimit, "api-limit", envInt("API_LIMIT", 50), "requests per second per X-API-Key value (else per client IP), across all replicas [API_LIMIT]")
	fs.DurationVar(&c.rollupInterval, "rollup-interval", envDuration("ROLLUP_INTERVAL", 0), "run the bar roll-up every interval instead of at the start of every minute [ROLLUP_INTERVAL]")
	fs.DurationVar(&c.retention, "retention", envDuration("RETENTION", 7*24*time.Hour), "the nightly purge deletes quotes older than this [RETENTION]")
	fs.StringVar(&c.replica, "replica", envOr("REPLICA", ""), "this replica's name in logs and job history; empty = host name and PID [REPLICA]")
	fs.StringVar(&c.keyPrefix, "key-prefix", envOr("KEY_PREFIX", "quotes:"), "prefix of every Redis key and channel the service uses; replicas of one deployment share it [KEY_PREFIX]")
	fs.StringVar(&c.queueKind, "queue", envOr("QUEUE", "redis"), "ingest queue backend: redis (Redis Streams; in process without -redis) or kafka [QUEUE]")
	brokers := fs.String("kafka-brokers", envOr("KAFKA_BROKERS", ""), "comma-separated Kafka brokers host:port, for -queue kafka [KAFKA_BROKERS]")
	peers := fs.String("peers", envOr("PEERS", ""), "comma-separated base URLs of the replicas (http://host:port), for pages to fail over to when no load balancer is in front [PEERS]")
	fs.StringVar(&c.consoleToken, "console-token", envOr("CONSOLE_TOKEN", ""), "operator token of the console at /admin/console/ (Basic auth password); empty = an open, read-only console [CONSOLE_TOKEN]")
	fs.StringVar(&c.traces, "traces", envOr("OUTRIGGER_TRACES", ""), "trace exporter: empty = no tracing, stdout, or otlp (OTLP over HTTP, configured by the OTEL_EXPORTER_OTLP_* variables) [OUTRIGGER_TRACES]")
	level := fs.String("log-level", envOr("LOG_LEVEL", "info"), "debug, info, warn or error [LOG_LEVEL]")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("quotes: unexpected argument %q", fs.Arg(0))
	}
	for _, p := range strings.Split(*peers, ",") {
		if p = strings.TrimSpace(p); p != "" {
			c.peers = append(c.peers, p)
		}
	}
	if err := c.logLevel.UnmarshalText([]byte(*level)); err != nil {
		return c, fmt.Errorf("quotes: -log-level: %w", err)
	}
	for _, b := range strings.Split(*brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			c.kafkaBrokers = append(c.kafkaBrokers, b)
		}
	}
	switch {
	case c.traces != "" && c.traces != "stdout" && c.traces != "otlp":
		return c, fmt.Errorf("quotes: -traces must be empty, stdout or otlp, got %q", c.traces)
	case c.queueKind != "redis" && c.queueKind != "kafka":
		return c, fmt.Errorf("quotes: -queue must be redis or kafka, got %q", c.queueKind)
	case c.queueKind == "kafka" && len(c.kafkaBrokers) == 0:
		return c, fmt.Errorf("quotes: -queue kafka needs -kafka-brokers")
	case c.feedRate < 0:
		return c, fmt.Errorf("quotes: -feed-rate must be >= 0, got %d", c.feedRate)
	case c.feedCount < 0:
		return c, fmt.Errorf("quotes: -feed-count must be >= 0, got %d", c.feedCount)
	case c.apiLimit < 1:
		return c, fmt.Errorf("quotes: -api-limit must be >= 1, got %d", c.apiLimit)
	case c.rollupInterval < 0:
		return c, fmt.Errorf("quotes: -rollup-interval must be >= 0, got %v", c.rollupInterval)
	case c.retention <= 0:
		return c, fmt.Errorf("quotes: -retention must be > 0, got %v", c.retention)
	}
	if c.replica == "" {
		host, _ := os.Hostname()
		c.replica = host + "-" + strconv.Itoa(os.Getpid())
	}
	return c, nil
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v, ok := os.LookupEnv(name); ok {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, ok := os.LookupEnv(name); ok {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

func main() {
	cfg, err := parseConfig(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.logLevel})).With("replica", cfg.replica)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log, nil); err != nil {
		log.Error("quotes stopped", "err", err)
		os.Exit(1)
	}
}
