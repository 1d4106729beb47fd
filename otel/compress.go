package otel

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/outrigger-dev/outrigger/compress"
)

// InstrumentCompress returns compress.Hooks that record, per content
// encoding (attribute http.response.content_encoding: zstd, br, gzip,
// identity), the responses, the body bytes the handlers wrote and the bytes
// sent, so that the compression ratio per encoding is out/in:
//
//	outrigger.compress.responses {response}
//	outrigger.compress.body.size By  (uncompressed)
//	outrigger.compress.sent.size By  (on the wire)
func InstrumentCompress(opts ...Option) (compress.Hooks, error) {
	cfg := newConfig(opts)
	m := cfg.meter()
	resp, err1 := m.Int64Counter("outrigger.compress.responses", metric.WithUnit("{response}"), metric.WithDescription("Responses by content encoding."))
	in, err2 := m.Int64Counter("outrigger.compress.body.size", metric.WithUnit("By"), metric.WithDescription("Body bytes the handlers wrote."))
	out, err3 := m.Int64Counter("outrigger.compress.sent.size", metric.WithUnit("By"), metric.WithDescription("Body bytes sent, after compression."))
	if err := errors.Join(err1, err2, err3); err != nil {
		return compress.Hooks{}, err
	}
	sets := map[compress.Encoding][]metric.AddOption{}
	for _, e := range []compress.Encoding{compress.Identity, compress.Gzip, compress.Brotli, compress.Zstd} {
		sets[e] = addOpts(attribute.String("http.response.content_encoding", e.String()))
	}
	ctx := context.Background()
	return compress.Hooks{OnResponse: func(enc compress.Encoding, i, o int64) {
		set, ok := sets[enc]
		if !ok {
			set = addOpts(attribute.String("http.response.content_encoding", enc.String()))
		}
		resp.Add(ctx, 1, set...)
		in.Add(ctx, i, set...)
		out.Add(ctx, o, set...)
	}}, nil
}
