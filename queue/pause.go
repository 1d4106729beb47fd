package queue

import (
	"context"
	"time"
)

// Pausing. [Inspector.Pause] sets the flag p{name}:paused; every Consume
// call of the queue, on every replica, checks it before it fetches (at most
// every pauseCheckEvery, so a running consumer costs one EXISTS per quarter
// second), and while it is set fetches nothing: no new deliveries, no
// reclaims. Handlers already running finish and are acknowledged;
// publishes and the delayed-message mover go on. Resume deletes the flag.
// A consumer blocked in a read when the flag is set may still receive what
// arrives during that read (at most the read's block time, 300 ms), so a
// pause takes effect within about half a second on every replica.

// pauseCheckEvery is how long a consumer trusts its last look at the flag.
const pauseCheckEvery = 250 * time.Millisecond

// pauseGate is one Consume call's view of the pause flag. Used by the
// fetch goroutine only.
type pauseGate struct {
	checked time.Time
	paused  bool
}

func pauseKey(prefix, name string) string { return prefix + "{" + name + "}:paused" }

// hold reports whether the queue is paused and, if so, waits a little (the
// read's block time, or until ctx is done) so that the caller can return
// nothing and be called again.
func (c *redisConsumer) hold(ctx context.Context) bool {
	g := &c.pause
	if time.Since(g.checked) >= pauseCheckEvery {
		n, err := c.q.client.Exists(ctx, pauseKey(c.q.cfg.prefix, c.q.name)).Result()
		if err != nil {
			// Redis is unreachable or ctx is done: let the fetch find out.
			return false
		}
		g.checked = time.Now()
		if paused := n > 0; paused != g.paused {
			g.paused = paused
			if paused {
				c.q.cfg.logger.Info("queue: paused; not fetching", "queue", c.q.name, "consumer", c.cc.consumer)
			} else {
				c.q.cfg.logger.Info("queue: resumed", "queue", c.q.name, "consumer", c.cc.consumer)
			}
		}
	}
	if !g.paused {
		return false
	}
	t := time.NewTimer(c.cc.block)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	return true
}
