package cache_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/cache"
)

type User struct {
	ID   string
	Name string
}

// A local-only cache: no options.
func Example() {
	users, err := cache.New[User]()
	if err != nil {
		panic(err)
	}
	defer users.Close()

	ctx := context.Background()
	loads := 0
	load := func(ctx context.Context) (User, error) {
		loads++ // a database query
		return User{ID: "42", Name: "Ada"}, nil
	}
	for range 3 {
		u, err := users.Fetch(ctx, "user:42", load)
		if err != nil {
			panic(err)
		}
		fmt.Println(u.Name)
	}
	fmt.Println("loads:", loads)
	// Output:
	// Ada
	// Ada
	// Ada
	// loads: 1
}

// A two-tier cache shared by the replicas of a service: a bounded local tier
// in front of Redis, with early refresh, stale-while-revalidate and
// invalidation across replicas.
func Example_twoTier() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	users, err := cache.New[User](
		cache.WithRedis(rdb),
		cache.WithPrefix("svc:users:"),
		cache.WithLocal(10_000, 30*time.Second),
		cache.WithTTL(10*time.Minute, time.Minute),
		cache.WithStaleWhileRevalidate(time.Minute),
	)
	if err != nil {
		panic(err)
	}
	defer users.Close()

	ctx := context.Background()
	u, err := users.Fetch(ctx, "42", func(ctx context.Context) (User, error) {
		return User{ID: "42", Name: "Ada"}, nil
	})
	fmt.Println(u.Name, err)
	// After the source of truth changes, every replica drops its copy.
	_ = users.Delete(ctx, "42")
}

// A loader reports a missing row with ErrNotFound: the absence is cached for
// the negative TTL and the loader is not called again meanwhile.
func ExampleCache_Fetch_notFound() {
	users, _ := cache.New[User](cache.WithNegativeTTL(time.Minute))
	defer users.Close()
	ctx := context.Background()
	for range 2 {
		_, err := users.Fetch(ctx, "user:7", func(ctx context.Context) (User, error) {
			fmt.Println("query")
			return User{}, fmt.Errorf("user 7: %w", cache.ErrNotFound)
		})
		fmt.Println(errors.Is(err, cache.ErrNotFound))
	}
	// Output:
	// query
	// true
	// true
}

// FetchMany loads every missing key with one call of the loader.
func ExampleCache_FetchMany() {
	prices, _ := cache.New[int]()
	defer prices.Close()
	ctx := context.Background()
	_ = prices.Set(ctx, "apple", 3)
	m, err := prices.FetchMany(ctx, []string{"apple", "pear", "plum"}, func(ctx context.Context, missing []string) (map[string]int, error) {
		fmt.Println("load", missing)
		return map[string]int{"pear": 4}, nil // plum does not exist
	})
	fmt.Println(m, err)
	// Output:
	// load [pear plum]
	// map[apple:3 pear:4] <nil>
}

// Stats exposes counters for metrics.
func ExampleCache_Stats() {
	c, _ := cache.New[string]()
	defer c.Close()
	ctx := context.Background()
	for range 3 {
		_, _ = c.Fetch(ctx, "k", func(context.Context) (string, error) { return "v", nil })
	}
	st := c.Stats()
	fmt.Println(st.Loads, st.LocalHits, st.Misses)
	// Output:
	// 1 2 1
}
