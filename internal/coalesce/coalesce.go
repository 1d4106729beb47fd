// Package coalesce groups concurrent calls into shared batches, as a
// database's group commit does: while the maximum number of batches is in
// flight, arriving calls wait, and the caller whose batch completes carries
// everything that waited in the next one. No goroutine is started: callers
// do the work. Packages use it to send many concurrent single Redis
// commands as a few pipelines.
package coalesce

import (
	"context"
	"sync"
)

// Group batches concurrent calls to one flush function. It is safe for
// concurrent use. Build it with New.
type Group[T any] struct {
	maxInFlight int
	maxBatch    int
	flush       func(ctx context.Context, items []T)

	mu       sync.Mutex   // protects pending, inflight and every waiter's state
	pending  []*waiter[T] // calls waiting for a batch, oldest first
	inflight int          // batches being flushed

	// waiters holds free waiters with their wake channels: a call takes
	// one and puts it back when it returns (nothing refers to it then).
	waiters sync.Pool
}

type state uint8

const (
	queued state = iota // in pending
	taken               // in a batch another caller flushes
	lead                // handed the lead: must flush a batch itself
	done                // its batch was flushed
)

type waiter[T any] struct {
	item  T
	ctx   context.Context
	wake  chan struct{} // receives once: on taken→done or on lead
	state state
}

// New returns a Group that keeps at most maxInFlight batches in flight and
// puts at most maxBatch calls in one batch (both at least 1). flush is called
// with a batch of one or more items; it must set each item's result itself
// (items are typically pointers) and return only when all are set. Its
// context carries the values of the batch's first call and none of its
// cancellation, so one caller giving up does not fail the others.
func New[T any](maxInFlight, maxBatch int, flush func(ctx context.Context, items []T)) *Group[T] {
	return &Group[T]{maxInFlight: max(1, maxInFlight), maxBatch: max(1, maxBatch), flush: flush}
}

// Do flushes item, alone or in a batch with other concurrent calls, and
// returns once its batch was flushed. It returns ctx's cause, without
// flushing item, if ctx is done on entry or ends while item is still
// waiting for a batch; once item is in a batch, Do waits for that batch.
func (g *Group[T]) Do(ctx context.Context, item T) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	w, _ := g.waiters.Get().(*waiter[T])
	if w == nil {
		w = &waiter[T]{wake: make(chan struct{}, 1)}
	}
	w.item, w.ctx, w.state = item, ctx, queued
	defer g.free(w)
	g.mu.Lock()
	if g.inflight < g.maxInFlight {
		g.inflight++
		g.mu.Unlock()
		g.lead(w)
		return nil
	}
	g.pending = append(g.pending, w)
	g.mu.Unlock()
	select {
	case <-w.wake:
	case <-ctx.Done():
		g.mu.Lock()
		if w.state == queued {
			for i, p := range g.pending {
				if p == w {
					g.pending = append(g.pending[:i], g.pending[i+1:]...)
					break
				}
			}
			g.mu.Unlock()
			return context.Cause(ctx)
		}
		g.mu.Unlock()
		<-w.wake // taken or handed the lead already: see it through
	}
	g.mu.Lock()
	st := w.state
	g.mu.Unlock()
	if st == lead {
		g.lead(w)
	}
	return nil
}

// free puts w back for another call. Its wake channel is empty: every
// send on it is received before Do returns.
func (g *Group[T]) free(w *waiter[T]) {
	var zero T
	w.item, w.ctx = zero, nil
	g.waiters.Put(w)
}

// lead flushes w with what is pending, then hands the lead to the oldest
// waiter, or gives the in-flight slot back.
func (g *Group[T]) lead(w *waiter[T]) {
	g.mu.Lock()
	n := min(len(g.pending), g.maxBatch-1)
	batch := make([]*waiter[T], 0, n+1)
	batch = append(batch, w)
	for _, p := range g.pending[:n] {
		p.state = taken
		batch = append(batch, p)
	}
	g.pending = g.pending[n:]
	if len(g.pending) == 0 {
		g.pending = nil
	}
	g.mu.Unlock()

	items := make([]T, len(batch))
	for i, b := range batch {
		items[i] = b.item
	}
	g.flush(context.WithoutCancel(w.ctx), items)

	g.mu.Lock()
	for _, b := range batch {
		b.state = done
	}
	var next *waiter[T]
	if len(g.pending) > 0 {
		next = g.pending[0]
		g.pending = g.pending[1:]
		next.state = lead
	} else {
		g.inflight--
	}
	g.mu.Unlock()
	for _, b := range batch[1:] {
		b.wake <- struct{}{}
	}
	if next != nil {
		next.wake <- struct{}{}
	}
}
