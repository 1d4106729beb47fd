package queue

import (
	"context"
	"sync"
)

// coalescer turns concurrent single publishes into shared pipelines. At most
// max pipelines are in flight; a request arriving while they are all busy
// waits in pending, and the goroutine whose pipeline completes hands the
// lead to the oldest waiter, which sends everything pending in one pipeline
// (at most maxBatch). No goroutine is started: callers do the work.
type coalescer struct {
	max, maxBatch int
	flush         func([]*pubReq)

	mu       sync.Mutex
	pending  []*pubReq // protected by mu
	inflight int       // pipelines in flight (protected by mu)
}

func (c *coalescer) lock()   { c.mu.Lock() }
func (c *coalescer) unlock() { c.mu.Unlock() }

// do publishes r; it returns an error only when ctx ended before r was
// sent, in which case r was not published.
func (c *coalescer) do(ctx context.Context, r *pubReq) error {
	c.lock()
	if c.inflight < c.max {
		c.inflight++
		c.unlock()
		c.lead(r)
		return nil
	}
	r.wake = make(chan struct{}, 1)
	c.pending = append(c.pending, r)
	c.unlock()
	select {
	case <-r.wake:
	case <-ctx.Done():
		c.lock()
		if r.state.Load() == pubQueued {
			for i, p := range c.pending {
				if p == r {
					c.pending = append(c.pending[:i], c.pending[i+1:]...)
					break
				}
			}
			c.unlock()
			return context.Cause(ctx)
		}
		c.unlock()
		<-r.wake // already sent or about to lead: see it through
	}
	if r.state.Load() == pubLead {
		c.lead(r)
	}
	return nil
}

// lead sends r and what is pending in one pipeline, then hands the lead on.
func (c *coalescer) lead(r *pubReq) {
	c.lock()
	n := min(len(c.pending), c.maxBatch-1)
	batch := make([]*pubReq, 0, n+1)
	batch = append(batch, r)
	for _, p := range c.pending[:n] {
		p.state.Store(pubTaken)
		batch = append(batch, p)
	}
	c.pending = c.pending[n:]
	if len(c.pending) == 0 {
		c.pending = nil
	}
	c.unlock()

	c.flush(batch)

	r.state.Store(pubDone)
	for _, p := range batch[1:] {
		p.state.Store(pubDone)
		p.wake <- struct{}{}
	}
	c.lock()
	if len(c.pending) == 0 {
		c.inflight--
		c.unlock()
		return
	}
	next := c.pending[0]
	c.pending = c.pending[1:]
	next.state.Store(pubLead)
	c.unlock()
	next.wake <- struct{}{}
}
