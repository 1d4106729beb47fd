package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/cache"
	"github.com/outrigger-dev/outrigger/lock"
	outotel "github.com/outrigger-dev/outrigger/otel"
	"github.com/outrigger-dev/outrigger/queue"
	"github.com/outrigger-dev/outrigger/queue/kafka"
	"github.com/outrigger-dev/outrigger/ratelimit"
	"github.com/outrigger-dev/outrigger/scheduler"
)

// service is one replica: its backends, its database and its background
// work. Everything it starts, shutdown stops.
type service struct {
	cfg     config
	log     *slog.Logger
	db      *database
	rdb     redis.UniversalClient // nil with in-process backends
	metrics *metrics
	tel     *telemetry

	locker  lock.Locker
	queue   queue.Queue
	quotes  *queue.TypedQueue[quote]
	batcher *queue.Batcher[ingested]
	cache   *cache.Cache[quote]
	limiter ratelimit.Limiter
	sched   *scheduler.Scheduler
	live    *live // the live stream and the page (live.go)

	queueHooks queue.Hooks // traces and metrics of the ingest queue, on any backend

	feedIDs       *idSource
	ready         atomic.Bool
	work          sync.WaitGroup     // feed and burst goroutines
	ingestMu      sync.Mutex         // orders burst starts (work.Go) before stopIngest's work.Wait
	ingestStopped bool               // protected by ingestMu: no more bursts
	stopFeed      context.CancelFunc // stops the feed and bursts
	feedCtx       context.Context
	consumers     sync.WaitGroup // the queue consumer
	stopConsume   context.CancelFunc
}

// newService connects to the backends named by cfg.
func newService(ctx context.Context, cfg config, log *slog.Logger) (s *service, err error) {
	s = &service{cfg: cfg, log: log, feedIDs: newIDSource()}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if s.db, err = openDatabase(ctx, cfg.dbURL); err != nil {
		return nil, err
	}
	if cfg.redisAddr != "" {
		s.rdb = redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{cfg.redisAddr}, PoolSize: 64})
		if err := s.rdb.Ping(ctx).Err(); err != nil {
			return nil, fmt.Errorf("quotes: redis %s: %w", cfg.redisAddr, err)
		}
	}
	s.metrics = newMetrics()
	if s.tel, err = newTelemetry(ctx, cfg, s.metrics.reg); err != nil {
		return nil, err
	}
	if err := s.buildBackends(); err != nil {
		return nil, err
	}
	if err := s.buildLive(); err != nil {
		return nil, err
	}
	s.metrics.observe(s)
	return s, nil
}

// buildBackends creates the Outrigger primitives: on Redis when configured,
// in process otherwise. The code that uses them is the same either way.
func (s *service) buildBackends() error {
	var err error
	limit := ratelimit.PerSecond(s.cfg.apiLimit)
	hooks, err := outotel.InstrumentRateLimit("api", s.tel.opts...)
	if err != nil {
		return err
	}
	otelDecision := hooks.OnDecision
	hooks.OnDecision = func(key string, res ratelimit.Result) {
		otelDecision(key, res)
		decision := "allowed"
		if !res.Allowed {
			decision = "denied"
		}
		s.metrics.limiter.WithLabelValues(decision, res.Source.String()).Inc()
	}
	cacheHooks, err := outotel.InstrumentCache("quotes", s.tel.opts...)
	if err != nil {
		return err
	}
	lockHooks, err := outotel.InstrumentLock("quotes", s.tel.opts...)
	if err != nil {
		return err
	}
	schedHooks, err := outotel.InstrumentScheduler(s.tel.opts...)
	if err != nil {
		return err
	}
	if s.queueHooks, err = outotel.InstrumentQueue(s.tel.opts...); err != nil {
		return err
	}
	cacheOpts := []cache.Option{
		cache.WithHooks(cacheHooks),
		cache.WithLocal(4096, time.Second), // a missed invalidation is stale for at most 1s
		cache.WithTTL(30*time.Second, 3*time.Second),
		cache.WithNegativeTTL(time.Second),
		cache.WithPrefix(s.cfg.keyPrefix + "cache:"),
	}
	if s.rdb != nil {
		if s.locker, err = lock.New(s.rdb, lock.WithPrefix(s.cfg.keyPrefix+"lock:"), lock.WithHooks(lockHooks)); err != nil {
			return err
		}
		if s.queue, err = queue.NewRedis(s.rdb, "ingest", queue.WithPrefix(s.cfg.keyPrefix), queue.WithLogger(s.log), queue.WithHooks(s.queueHooks)); err != nil {
			return err
		}
		if s.limiter, err = ratelimit.NewRedis(s.rdb, limit, ratelimit.WithPrefix(s.cfg.keyPrefix+"rl:"), ratelimit.WithHooks(hooks),
			// If Redis is down, each replica enforces its share of the limit.
			ratelimit.WithFallback(ratelimit.FailLocal(ratelimit.PerSecond(max(1, s.cfg.apiLimit/3))))); err != nil {
			return err
		}
		if s.sched, err = scheduler.New(s.rdb, scheduler.WithNamespace(s.cfg.keyPrefix+"jobs:"), scheduler.WithNodeID(s.cfg.replica), scheduler.WithLogger(s.log), scheduler.WithHooks(schedHooks)); err != nil {
			return err
		}
		cacheOpts = append(cacheOpts, cache.WithRedis(s.rdb))
	} else {
		s.locker = lock.NewLocal(lock.WithHooks(lockHooks))
		s.queue = queue.NewMemory("ingest", queue.WithHooks(s.queueHooks))
		if s.limiter, err = ratelimit.NewLocal(limit, ratelimit.WithHooks(hooks)); err != nil {
			return err
		}
		if s.sched, err = scheduler.NewLocal(scheduler.WithNodeID(s.cfg.replica), scheduler.WithLogger(s.log), scheduler.WithHooks(schedHooks)); err != nil {
			return err
		}
	}
	if s.cache, err = cache.New[quote](cacheOpts...); err != nil {
		return err
	}
	if s.cfg.queueKind == "kafka" {
		if err := s.useKafka(); err != nil {
			return err
		}
	}
	s.quotes = queue.Typed[quote](s.queue, nil)
	if s.batcher, err = queue.NewBatcher(s.storeQuotes,
		queue.MaxItems(500), queue.MaxWait(20*time.Millisecond), queue.FlushConcurrency(4),
		queue.Retry(3, func(attempt int) time.Duration { return time.Duration(attempt) * 100 * time.Millisecond }),
	); err != nil {
		return err
	}
	return s.registerJobs()
}

// run serves until ctx is done, then shuts down gracefully. If ready is not
// nil it receives the listening address once the server accepts requests.
func run(ctx context.Context, cfg config, log *slog.Logger, ready chan<- string) error {
	s, err := newService(ctx, cfg, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		s.close()
		return err
	}
	api, err := s.handler()
	if err != nil {
		ln.Close()
		s.close()
		return err
	}
	srv := &http.Server{Handler: api, ReadHeaderTimeout: 5 * time.Second}
	srv.RegisterOnShutdown(s.live.endStreams)
	s.start(ctx)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	s.ready.Store(true)
	log.Info("quotes listening", "addr", ln.Addr().String(), "redis", cfg.redisAddr != "", "db", s.db.d.name, "feed_rate", cfg.feedRate)
	if ready != nil {
		ready <- ln.Addr().String()
	}

	select {
	case err = <-serveErr:
	case <-ctx.Done():
	}
	log.Info("quotes shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.ready.Store(false)
	s.stopIngest() // no new quotes from the feed
	if e := srv.Shutdown(shutCtx); e != nil && err == nil {
		err = e
	}
	if e := s.shutdown(shutCtx); e != nil && err == nil {
		err = e
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	log.Info("quotes stopped")
	return err
}

// start launches the feed, the consumers and the scheduler.
func (s *service) start(ctx context.Context) {
	s.feedCtx, s.stopFeed = context.WithCancel(context.WithoutCancel(ctx))
	s.live.start()
	s.work.Go(func() { runFeed(s.feedCtx, s.cfg.feedRate, s.cfg.feedCount, s.feedIDs, s.publish) })
	consumeCtx, stopConsume := context.WithCancel(context.WithoutCancel(ctx))
	s.consumers.Go(func() {
		defer stopConsume()
		s.consume(consumeCtx)
	})
	s.stopConsume = stopConsume
	if err := s.sched.Start(context.WithoutCancel(ctx)); err != nil {
		s.log.Error("scheduler start", "err", err)
	}
}

// stopIngest stops the feed and any burst, and waits for them.
func (s *service) stopIngest() {
	s.ingestMu.Lock()
	s.ingestStopped = true
	if s.stopFeed != nil {
		s.stopFeed()
	}
	s.ingestMu.Unlock()
	s.work.Wait()
}

// shutdown drains what is in flight, in order: consumers finish the
// messages they hold (their batches are flushed), the Batcher flushes the
// rest, jobs finish, then the backends close. Nothing acknowledged is lost.
func (s *service) shutdown(ctx context.Context) error {
	var errs []error
	if _, inProcess := s.queue.(*queue.Memory); inProcess {
		// The in-process queue dies with the process: finish it first.
		if err := s.drainQueue(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if s.stopConsume != nil {
		s.stopConsume()
	}
	s.consumers.Wait()
	if err := s.batcher.Close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("batcher: %w", err))
	}
	if err := s.sched.Stop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("scheduler: %w", err))
	}
	s.close()
	return errors.Join(errs...)
}

// drainQueue waits until the queue holds no message, or ctx is done.
func (s *service) drainQueue(ctx context.Context) error {
	for {
		st, err := s.queue.Stats(ctx)
		if err != nil {
			return fmt.Errorf("drain queue: %w", err)
		}
		if st.Ready+st.InFlight+st.Delayed == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drain queue: %d messages left: %w", st.Ready+st.InFlight+st.Delayed, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// close releases the backends; it is safe on a partly built service.
func (s *service) close() {
	if s.live != nil {
		s.live.close()
	}
	if s.cache != nil {
		_ = s.cache.Close()
	}
	if s.queue != nil {
		_ = s.queue.Close()
	}
	if c, ok := s.limiter.(interface{ Close() error }); ok {
		_ = c.Close()
	}
	if s.rdb != nil {
		_ = s.rdb.Close()
	}
	if s.db != nil {
		_ = s.db.close()
	}
	if s.tel != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.tel.close(ctx) // flushes the spans still batched
	}
}

// useKafka replaces the ingest queue with queue/kafka (-queue kafka): the
// same queue.Queue, on the -kafka-brokers cluster. Topic names cannot hold
// ':', so the key prefix's colons become dots.
func (s *service) useKafka() error {
	if s.queue != nil {
		_ = s.queue.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prefix := strings.ReplaceAll(s.cfg.keyPrefix, ":", ".")
	q, err := kafka.New(ctx, kafka.Config{
		Brokers:  s.cfg.kafkaBrokers,
		ClientID: "quotes-" + s.cfg.replica,
		// A replica that dies hands its partitions on after 10s.
		SessionTimeout: 10 * time.Second, HeartbeatInterval: time.Second,
	}, "ingest",
		queue.WithPrefix(prefix), queue.WithLogger(s.log), queue.WithHooks(s.queueHooks))
	if err != nil {
		return fmt.Errorf("quotes: kafka %v: %w", s.cfg.kafkaBrokers, err)
	}
	s.queue = q
	return nil
}
