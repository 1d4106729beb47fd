package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/broadcast"
	"github.com/outrigger-dev/outrigger/cache"
	"github.com/outrigger-dev/outrigger/console"
	"github.com/outrigger-dev/outrigger/lock"
	"github.com/outrigger-dev/outrigger/queue"
	"github.com/outrigger-dev/outrigger/ratelimit"
	"github.com/outrigger-dev/outrigger/scheduler"
)

// scene is a small service really running every package against Redis,
// so that the console has something true to show: queues with traffic and
// dead letters, jobs on a scheduler, held and awaited locks, limited keys
// and a cache.
type scene struct {
	rdb    redis.UniversalClient
	prefix string

	orders, emails, webhooks *queue.Redis
	// Broken makes the orders consumer fail every order with a payment
	// gateway timeout (until the "bug" is fixed: Broken.Store(false)).
	Broken  atomic.Bool
	Handled atomic.Int64

	sched   *scheduler.Scheduler
	locker  *lock.RedisLocker
	held    []*lock.Lock
	limiter *ratelimit.RedisLimiter
	quotes  *cache.Cache[string]
	hubs    []*broadcast.Hub
	subs    []*broadcast.Subscription

	stop func()
	wg   sync.WaitGroup
}

// sceneOptions shapes the traffic.
type sceneOptions struct {
	Orders   int           // orders published at start
	Traffic  time.Duration // publish an order this often (0: none)
	Failures bool          // some orders fail for good (declined cards)
}

func newScene(ctx context.Context, rdb redis.UniversalClient, prefix string, o sceneOptions) (*scene, error) {
	s := &scene{rdb: rdb, prefix: prefix}
	var err error
	qopt := queue.WithPrefix(prefix)
	if s.orders, err = queue.NewRedis(rdb, "orders", qopt); err != nil {
		return nil, err
	}
	if s.emails, err = queue.NewRedis(rdb, "emails", qopt); err != nil {
		return nil, err
	}
	if s.webhooks, err = queue.NewRedis(rdb, "webhooks", qopt); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = cancel

	// orders: a consumer that fails some orders for good
	s.wg.Go(func() {
		_ = s.orders.Consume(runCtx, func(ctx context.Context, m *queue.Message) error {
			defer s.Handled.Add(1)
			time.Sleep(time.Duration(5+rand.IntN(20)) * time.Millisecond) // the work
			if s.Broken.Load() {
				return queue.Permanent(errors.New("payment gateway timeout after 30s (POST /v1/charges)"))
			}
			if o.Failures && rand.IntN(25) == 0 {
				return queue.Permanent(errors.New("card declined by issuer: insufficient funds"))
			}
			return nil
		}, queue.Concurrency(4), queue.ConsumerName("api-7d9f-1"))
	})
	// webhooks: consumed, but paused by an operator (see below)
	s.wg.Go(func() {
		_ = s.webhooks.Consume(runCtx, func(ctx context.Context, m *queue.Message) error { return nil },
			queue.ConsumerName("api-7d9f-2"))
	})
	for i := range o.Orders {
		if _, err := s.orders.Publish(ctx, fmt.Appendf(nil, `{"order":%d,"sku":"SKU-%03d","qty":%d}`, 1000+i, i%37, 1+i%4)); err != nil {
			return nil, err
		}
	}
	for i := range 40 { // no consumer: a backlog
		if _, err := s.emails.Publish(ctx, fmt.Appendf(nil, `{"to":"user%d@example.com","template":"welcome"}`, i)); err != nil {
			return nil, err
		}
	}
	for i := range 3 {
		if _, err := s.emails.Publish(ctx, fmt.Appendf(nil, `{"to":"later%d@example.com","template":"digest"}`, i), queue.WithDelay(time.Hour)); err != nil {
			return nil, err
		}
	}
	qi, err := queue.NewInspector(rdb, qopt)
	if err != nil {
		return nil, err
	}
	if err := qi.Pause(ctx, "webhooks", "alice"); err != nil {
		return nil, err
	}
	for i := range 7 {
		if _, err := s.webhooks.Publish(ctx, fmt.Appendf(nil, `{"event":"invoice.paid","id":"evt_%d"}`, i)); err != nil {
			return nil, err
		}
	}
	if o.Traffic > 0 {
		s.wg.Go(func() {
			t := time.NewTicker(o.Traffic)
			defer t.Stop()
			for i := 0; ; i++ {
				select {
				case <-runCtx.Done():
					return
				case <-t.C:
				}
				_, _ = s.orders.Publish(runCtx, fmt.Appendf(nil, `{"order":%d,"sku":"SKU-%03d","qty":1}`, 5000+i, i%37))
			}
		})
	}

	// jobs
	if s.sched, err = scheduler.New(rdb, scheduler.WithNamespace(prefix+"jobs:"), scheduler.WithNodeID("api-7d9f-1")); err != nil {
		return nil, err
	}
	add := func(err error) error { return err }
	if err := errors.Join(
		add(s.sched.Every("rollup-quotes", 5*time.Second, func(ctx context.Context, r scheduler.Run) error {
			time.Sleep(40 * time.Millisecond)
			return nil
		}, scheduler.Timeout(time.Minute))),
		add(s.sched.Every("sync-fx-rates", 3*time.Second, func(ctx context.Context, r scheduler.Run) error {
			return errors.New("fx provider: 503 Service Unavailable")
		})),
		add(s.sched.Cron("nightly-report", "0 30 3 * * *", func(ctx context.Context, r scheduler.Run) error { return nil },
			scheduler.CatchUp(6*time.Hour), scheduler.Timeout(10*time.Minute))),
		add(s.sched.Cron("purge-sessions", "@hourly", func(ctx context.Context, r scheduler.Run) error { return nil })),
	); err != nil {
		return nil, err
	}
	if err := s.sched.Start(ctx); err != nil {
		return nil, err
	}
	ji, err := scheduler.NewInspector(rdb, scheduler.WithNamespace(prefix+"jobs:"))
	if err != nil {
		return nil, err
	}
	if err := ji.Pause(ctx, "purge-sessions", "bob"); err != nil {
		return nil, err
	}

	// locks: two held, one with a waiter
	if s.locker, err = lock.New(rdb, lock.WithPrefix(prefix+"lock:")); err != nil {
		return nil, err
	}
	li, err := lock.NewInspector(rdb, lock.WithPrefix(prefix+"lock:"))
	if err != nil {
		return nil, err
	}
	for _, k := range []string{"reports:daily", "billing:invoice-run"} {
		// a previous run of the demo that was killed may still hold it
		if _, err := li.ForceRelease(ctx, k); err != nil && !errors.Is(err, lock.ErrNotHeld) {
			return nil, err
		}
		l, err := s.locker.TryAcquire(ctx, k, 10*time.Minute)
		if err != nil {
			return nil, err
		}
		s.held = append(s.held, l)
	}
	s.wg.Go(func() {
		l, err := s.locker.Acquire(runCtx, "billing:invoice-run", time.Minute)
		if err == nil {
			_ = l.Release(context.Background())
		}
	})

	// rate limits: a few clients of the API
	if s.limiter, err = ratelimit.NewRedis(rdb, ratelimit.PerMinute(60).WithBurst(20), ratelimit.WithPrefix(prefix+"rl:")); err != nil {
		return nil, err
	}
	for key, n := range map[string]int{"user:42": 7, "user:77": 20, "203.0.113.9": 3} {
		for range n {
			if _, err := s.limiter.Allow(ctx, key); err != nil {
				return nil, err
			}
		}
	}

	// a cache in front of the quotes
	if s.quotes, err = cache.New[string](cache.WithRedis(rdb), cache.WithPrefix(prefix+"cache:"), cache.WithLocal(1000, time.Minute)); err != nil {
		return nil, err
	}
	for _, sym := range []string{"ACME", "GLOBEX", "INITECH", "UMBRELLA"} {
		if _, err := s.quotes.Fetch(ctx, "quote:"+sym, func(context.Context) (string, error) {
			return fmt.Sprintf(`{"symbol":%q,"price":%d.25}`, sym, 40+len(sym)), nil
		}); err != nil {
			return nil, err
		}
	}
	// live channels on two replicas, with people present
	for r, node := range []string{"api-7d9f-1", "api-7d9f-2"} {
		h, err := broadcast.New(rdb, broadcast.WithPrefix(prefix+"bc:"), broadcast.WithNodeID(node),
			broadcast.WithPresenceTTL(2*time.Second))
		if err != nil {
			return nil, err
		}
		s.hubs = append(s.hubs, h)
		for i, ch := range []string{"quotes:ACME", "quotes:ACME", "quotes:GLOBEX", "alerts"} {
			if r == 1 && i == 3 {
				continue
			}
			var opts []broadcast.SubscribeOption
			if ch == "quotes:ACME" {
				opts = append(opts, broadcast.AsMember(broadcast.Member{ClientID: fmt.Sprintf("tab-%d-%d", r, i), UserID: []string{"ann", "bob", "eve", "joe"}[r*2+i%2]}))
			}
			sub, err := h.Subscribe(ctx, ch, opts...)
			if err != nil {
				return nil, err
			}
			s.subs = append(s.subs, sub)
		}
	}
	return s, nil
}

// config is the console's configuration for the scene.
func (s *scene) config() (console.Config, error) {
	qi, err := queue.NewInspector(s.rdb, queue.WithPrefix(s.prefix))
	if err != nil {
		return console.Config{}, err
	}
	ji, err := scheduler.NewInspector(s.rdb, scheduler.WithNamespace(s.prefix+"jobs:"))
	if err != nil {
		return console.Config{}, err
	}
	li, err := lock.NewInspector(s.rdb, lock.WithPrefix(s.prefix+"lock:"))
	if err != nil {
		return console.Config{}, err
	}
	ci, err := cache.NewInspector(s.rdb, cache.WithPrefix(s.prefix+"cache:"))
	if err != nil {
		return console.Config{}, err
	}
	bi, err := broadcast.NewInspector(s.rdb, broadcast.WithPrefix(s.prefix+"bc:"))
	if err != nil {
		return console.Config{}, err
	}
	return console.Config{
		Title:  "Quotes",
		Queues: qi, Jobs: ji, Locks: li,
		Limiters:   []console.Limiter{{Name: "api", Inspector: s.limiter.Inspector()}},
		Caches:     []console.Cache{{Name: "quotes", Inspector: ci, Stats: s.quotes.Stats}},
		Channels:   bi,
		AuditRedis: s.rdb, AuditKey: s.prefix + "audit",
		User: func(r *http.Request) string {
			if u := r.Header.Get("X-Demo-User"); u != "" {
				return u
			}
			return "alice@ops"
		},
	}, nil
}

// Close stops the scene's consumers, scheduler and traffic.
func (s *scene) Close() {
	s.stop()
	s.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.sched.Stop(ctx)
	for _, l := range s.held {
		_ = l.Release(ctx)
	}
	for _, sub := range s.subs {
		_ = sub.Close()
	}
	for _, h := range s.hubs {
		_ = h.Close()
	}
	_ = s.quotes.Close()
	_ = s.orders.Close()
	_ = s.emails.Close()
	_ = s.webhooks.Close()
}
