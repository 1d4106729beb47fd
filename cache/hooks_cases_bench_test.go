package cache_test

import (
	"time"

	"github.com/outrigger-dev/outrigger/cache"
)

type hookCase struct {
	name string
	opts []cache.Option
}

// hookCases are BenchmarkHooks' variants: no hooks, and every hook a no-op.
func hookCases() []hookCase {
	noop := cache.Hooks{
		OnHit:          func(string, cache.Tier, bool) {},
		OnMiss:         func(string) {},
		OnLoad:         func(int, time.Duration, error) {},
		OnRefresh:      func(string, bool) {},
		OnError:        func(string, error, bool) {},
		OnInvalidation: func(string) {},
	}
	return []hookCase{{name: "unset"}, {name: "noop", opts: []cache.Option{cache.WithHooks(noop)}}}
}
