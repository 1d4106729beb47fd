package compress_test

import "github.com/outrigger-dev/outrigger/compress"

type hookCase struct {
	name string
	opts []compress.Option
}

// hookCases are BenchmarkHooks' variants: no hooks, and OnResponse a no-op.
func hookCases() []hookCase {
	noop := compress.Hooks{OnResponse: func(compress.Encoding, int64, int64) {}}
	return []hookCase{{name: "unset"}, {name: "noop", opts: []compress.Option{compress.WithHooks(noop)}}}
}
