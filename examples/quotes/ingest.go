package main

import (
	"context"
	"errors"
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/outrigger-dev/outrigger/queue"
)

// publish is the feed's callback: it hands the quote to the queue and
// returns. Concurrent calls share Redis round trips (the queue coalesces
// them), so a burst does not cost one round trip per quote. Its span starts
// the quote's trace, which the queue carries to the consumer.
func (s *service) publish(ctx context.Context, q quote) {
	ctx, span := s.tel.tracer.Start(ctx, "feed callback", trace.WithAttributes(
		attribute.String("quote.id", q.ID), attribute.String("quote.symbol", q.Symbol)))
	_, err := s.quotes.Publish(ctx, q)
	endSpan(span, err)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("publish quote", "id", q.ID, "err", err)
		}
		return
	}
	s.metrics.quotesPublished.Inc()
}

// ingested is a quote on its way to the database, with the span of the
// consumer that handled it.
type ingested struct {
	q    quote
	span trace.SpanContext
}

// consume runs this replica's consumers until ctx is done, then lets the
// messages in hand finish. Each handler waits for the database write of the
// batch that carried its quote, so a message is acknowledged only once its
// row is stored.
func (s *service) consume(ctx context.Context) {
	for ctx.Err() == nil {
		err := s.quotes.Consume(ctx, func(ctx context.Context, q quote, _ *queue.Message) error {
			return s.batcher.AddWait(ctx, ingested{q, trace.SpanContextFromContext(ctx)})
		},
			queue.Concurrency(512), // handlers blocked in AddWait are what fill a batch
			queue.Prefetch(512),
			queue.VisibilityTimeout(10*time.Second),
			queue.MaxAttempts(10),
			queue.ConsumerName(s.cfg.replica),
			queue.ShutdownTimeout(20*time.Second),
		)
		if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, queue.ErrClosed) {
			return
		}
		s.log.Error("consume", "err", err)
		select { // a lost connection: back off and consume again
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// storeQuotes is the Batcher's flush: one multi-row INSERT for the batch,
// then the cached latest quote of each symbol in it is invalidated on every
// replica, and the new quotes are published to the live stream (staged in
// the same transaction as the INSERT, so a replica that dies before
// publishing leaves them to the live-outbox job: see live.go). The INSERT
// has a span in the trace of the batch's first quote, linked from the
// others'; each quote is published to the live stream in its own trace.
func (s *service) storeQuotes(ctx context.Context, batch []ingested) error {
	qs := make([]quote, len(batch))
	parents := make(map[string]trace.SpanContext, len(batch))
	for i, it := range batch {
		qs[i] = it.q
		if it.span.IsValid() {
			parents[it.q.ID] = it.span
		}
	}
	staged := time.Now()
	sctx, span := s.tel.startStore(ctx, dbSystem(s.db.d.name), batch)
	fresh, err := s.db.insertQuotesStaged(sctx, qs, s.cfg.replica, staged)
	endSpan(span, err)
	if err != nil {
		return err
	}
	inserted := int64(len(fresh))
	s.metrics.batchSize.Observe(float64(len(qs)))
	s.metrics.quotesStored.Add(float64(inserted))
	s.metrics.quotesDuplicate.Add(float64(int64(len(qs)) - inserted))
	syms := make([]string, 0, len(symbols))
	for _, q := range qs {
		if !slices.Contains(syms, q.Symbol) {
			syms = append(syms, q.Symbol)
		}
	}
	if err := s.cache.Delete(ctx, syms...); err != nil {
		// The rows are stored; a missed invalidation is bounded by the
		// cache's local TTL, so the batch still succeeded.
		s.log.Warn("invalidate cached quotes", "symbols", syms, "err", err)
	}
	s.live.publishStored(ctx, fresh, staged, parents)
	return nil
}
