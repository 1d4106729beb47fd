package lock_test

import (
	"time"

	"github.com/outrigger-dev/outrigger/lock"
)

type hookCase struct {
	name string
	opts []lock.Option
}

// hookCases are BenchmarkHooks' variants: no hooks, and every hook a no-op.
func hookCases() []hookCase {
	noop := lock.Hooks{
		OnAcquire: func(string, time.Duration, uint64, error) {},
		OnRelease: func(string, time.Duration) {},
		OnLost:    func(string, error) {},
	}
	return []hookCase{{name: "unset"}, {name: "noop", opts: []lock.Option{lock.WithHooks(noop)}}}
}
