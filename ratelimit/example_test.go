package ratelimit_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/outrigger-dev/outrigger/ratelimit"
	"github.com/redis/go-redis/v9"
)

func ExampleNewLocal() {
	l, err := ratelimit.NewLocal(ratelimit.PerMinute(2))
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	for range 3 {
		res, _ := l.Allow(ctx, "user:42")
		fmt.Println(res.Allowed, res.Remaining)
	}
	// Output:
	// true 1
	// true 0
	// false 0
}

func ExampleNewRedis() {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	l, err := ratelimit.NewRedis(client, ratelimit.PerSecond(100),
		ratelimit.WithPrefix("myapp:rl:"),
		ratelimit.WithFallback(ratelimit.FailLocal(ratelimit.PerSecond(100/4))), // 4 replicas
	)
	if err != nil {
		panic(err)
	}
	res, err := l.Allow(context.Background(), "user:42")
	if err != nil {
		return // bad arguments, or the context ended
	}
	if !res.Allowed {
		fmt.Println("retry in", res.RetryAfter)
	}
}

func ExampleNewMulti() {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	// 10 per second and 1000 per hour, checked in one round trip.
	l, err := ratelimit.NewMulti(client, []ratelimit.Limit{ratelimit.PerSecond(10), ratelimit.PerHour(1000)})
	if err != nil {
		panic(err)
	}
	res, _ := l.Allow(context.Background(), "api-key:abc")
	fmt.Println(res.Allowed, res.Limit)
}

func ExampleMiddleware() {
	l, err := ratelimit.NewLocal(ratelimit.PerMinute(100))
	if err != nil {
		panic(err)
	}
	mw := ratelimit.Middleware(l, ratelimit.KeyByIP("10.0.0.0/8"), ratelimit.SkipPaths("/healthz"))
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "hello") }))

	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "10.0.0.5:4711"                 // a trusted load balancer
	r.Header.Set("X-Forwarded-For", "203.0.113.7") // the real client
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	fmt.Println(w.Code)
	fmt.Println(w.Header().Get("RateLimit-Policy"))
	fmt.Println(w.Header().Get("RateLimit"))
	// Output:
	// 200
	// "default";q=100;w=60
	// "default";r=99;t=1
}

func ExampleWithCost() {
	l, _ := ratelimit.NewLocal(ratelimit.PerMinute(10))
	limited := ratelimit.Middleware(l, ratelimit.KeyByIP())(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	// Exports cost 5 requests' worth of quota.
	export := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limited.ServeHTTP(w, r.WithContext(ratelimit.WithCost(r.Context(), 5)))
	})
	w := httptest.NewRecorder()
	export.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/export", nil))
	fmt.Println(w.Header().Get("X-RateLimit-Remaining"))
	// Output: 5
}

func ExampleLocalLimiter_Wait() {
	l, _ := ratelimit.NewLocal(ratelimit.Limit{Rate: 100, Period: time.Second, Burst: 1})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for range 3 {
		if err := l.Wait(ctx, "job"); err != nil {
			fmt.Println(err)
			return
		}
	}
	fmt.Println("done")
	// Output: done
}
