// Command quotes is Outrigger's reference service: an HTTP API for market
// quotes fed by a simulated third-party feed, meant to run as several
// replicas.
//
// This first version runs one replica in memory: the feed updates the latest
// quote per symbol and GET /v1/quotes/{symbol} serves it. The queue, batcher,
// database, cache, rate limits, compression and singleton jobs are wired in
// as their packages land.
//
// Usage:
//
//	go run ./examples/quotes [-addr :8080] [-feed-rate 200] [-feed-count 0]
//
// Each flag can also be set through the environment variable named in -h.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// config is the service's configuration, from flags and the environment.
type config struct {
	addr      string
	feedRate  int
	feedCount int
}

func parseConfig(args []string) (config, error) {
	fs := flag.NewFlagSet("quotes", flag.ContinueOnError)
	var c config
	fs.StringVar(&c.addr, "addr", envOr("ADDR", ":8080"), "listen address [ADDR]")
	fs.IntVar(&c.feedRate, "feed-rate", envInt("FEED_RATE", 200), "simulated quotes per second, 0 = no feed on this replica [FEED_RATE]")
	fs.IntVar(&c.feedCount, "feed-count", envInt("FEED_COUNT", 0), "stop the feed after this many quotes, 0 = never [FEED_COUNT]")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if c.feedRate < 0 {
		return c, fmt.Errorf("quotes: -feed-rate must be >= 0, got %d", c.feedRate)
	}
	if c.feedCount < 0 {
		return c, fmt.Errorf("quotes: -feed-count must be >= 0, got %d", c.feedCount)
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

func main() {
	cfg, err := parseConfig(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log, nil); err != nil {
		log.Error("quotes stopped", "err", err)
		os.Exit(1)
	}
}

// run serves until ctx is done, then shuts down gracefully. If ready is not
// nil it receives the listening address once the server accepts requests.
func run(ctx context.Context, cfg config, log *slog.Logger, ready chan<- string) error {
	store := newStore()
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: newAPI(store), ReadHeaderTimeout: 5 * time.Second}

	feedCtx, stopFeed := context.WithCancel(ctx)
	defer stopFeed()
	feedDone := make(chan struct{})
	go func() {
		defer close(feedDone)
		runFeed(feedCtx, cfg.feedRate, cfg.feedCount, store.put)
	}()

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("quotes listening", "addr", ln.Addr().String(), "feed_rate", cfg.feedRate)
	if ready != nil {
		ready <- ln.Addr().String()
	}

	select {
	case err := <-serveErr:
		stopFeed()
		<-feedDone
		return err
	case <-ctx.Done():
	}
	log.Info("quotes shutting down")
	stopFeed()
	<-feedDone
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return err
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
