package queue_test

import (
	"context"
	"time"

	"github.com/outrigger-dev/outrigger/queue"
)

type hookCase struct {
	name string
	opts []queue.Option
}

// hookCases are BenchmarkHooks' variants: no hooks, and every hook a no-op.
func hookCases() []hookCase {
	noop := queue.Hooks{
		OnPublish:   func(ctx context.Context, _ string, _ map[string]string) context.Context { return ctx },
		OnPublished: func(context.Context, string, string, error) {},
		OnProcess:   func(ctx context.Context, _ string, _ *queue.Message) context.Context { return ctx },
		OnProcessed: func(context.Context, string, *queue.Message, time.Duration, error, queue.Outcome) {},
		OnReclaim:   func(string, int) {},
	}
	return []hookCase{{name: "unset"}, {name: "noop", opts: []queue.Option{queue.WithHooks(noop)}}}
}
