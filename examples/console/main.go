// Command console runs a small demo service on Redis (queues with traffic
// and dead letters, scheduled jobs, held locks, limited keys, a cache) and
// serves the Outrigger console over it at /admin/console/:
//
//	go run ./examples/console -redis 127.0.0.1:6379
//	open http://localhost:8090/admin/console/
//
// Its keys are under -prefix (default "console-demo:"); they are left in
// Redis when it stops (delete them with redis-cli --scan --pattern
// 'console-demo:*' | xargs redis-cli unlink).
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/console"
)

func main() {
	addr := flag.String("addr", "localhost:8090", "listen address")
	redisAddr := flag.String("redis", "127.0.0.1:6379", "Redis address")
	prefix := flag.String("prefix", "console-demo:", "key prefix of the demo's keys")
	outage := flag.Duration("outage-every", 3*time.Minute, "break the orders consumer for 15s this often (0: never)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*addr, *redisAddr, *prefix, *outage, log); err != nil {
		log.Error("console demo", "err", err)
		os.Exit(1)
	}
}

func run(addr, redisAddr, prefix string, outage time.Duration, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	s, err := newScene(ctx, rdb, prefix, sceneOptions{Orders: 200, Traffic: 150 * time.Millisecond, Failures: true})
	if err != nil {
		return err
	}
	defer s.Close()
	if outage > 0 {
		go func() {
			t := time.NewTicker(outage)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				log.Info("demo: the payment gateway is down for 15s")
				s.Broken.Store(true)
				select {
				case <-ctx.Done():
				case <-time.After(15 * time.Second):
				}
				s.Broken.Store(false)
			}
		}()
	}
	cfg, err := s.config()
	if err != nil {
		return err
	}
	cfg.Logger = log
	mux := http.NewServeMux()
	mux.Handle("/admin/console/", http.StripPrefix("/admin/console", console.Handler(cfg)))
	mux.Handle("/{$}", http.RedirectHandler("/admin/console/", http.StatusFound))
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("console demo", "url", "http://"+addr+"/admin/console/")
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
