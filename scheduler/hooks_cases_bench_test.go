package scheduler_test

import (
	"time"

	"github.com/outrigger-dev/outrigger/scheduler"
)

type hookCase struct {
	name string
	opts []scheduler.Option
}

// hookCases are BenchmarkHooks' variants: no hooks, and every hook a no-op.
func hookCases() []hookCase {
	noop := scheduler.Hooks{
		OnClaim:    func(string, time.Time, scheduler.Kind, bool) {},
		OnRunStart: func(string, time.Time, scheduler.Kind, time.Duration) {},
		OnRunEnd:   func(string, time.Time, scheduler.Kind, time.Duration, int, error) {},
		OnSkip:     func(string, time.Time) {},
		OnMissed:   func(string, time.Time) {},
	}
	return []hookCase{{name: "unset"}, {name: "noop", opts: []scheduler.Option{scheduler.WithHooks(noop)}}}
}
