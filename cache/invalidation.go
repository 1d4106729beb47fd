package cache

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Invalidation messages are published on the channel <prefix>~invalidate
// whenever a cache writes or deletes a key in Redis (a load's write of an
// absent key only if another replica marked its lease as waited for). The
// payload is the writer's 8-byte origin id followed by the key (without the
// prefix). Every other cache on the prefix drops the key from its local
// tier; any cache waiting for another replica's load of the key wakes up and
// re-reads it.

// notifier wakes the loads waiting for a key to be written elsewhere. Safe for
// concurrent use.
type notifier struct {
	mu sync.Mutex // protects m
	m  map[string]chan struct{}
}

// wait returns a channel closed at the next message for key.
func (n *notifier) wait(key string) <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ch, ok := n.m[key]; ok {
		return ch
	}
	if n.m == nil {
		n.m = make(map[string]chan struct{})
	}
	ch := make(chan struct{})
	n.m[key] = ch
	return ch
}

// forget unregisters ch if no message closed it (the waiter gave up).
func (n *notifier) forget(key string, ch <-chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if cur, ok := n.m[key]; ok && (<-chan struct{})(cur) == ch {
		delete(n.m, key)
	}
}

func (n *notifier) notify(key string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ch, ok := n.m[key]; ok {
		close(ch)
		delete(n.m, key)
	}
}

// notifyAll wakes every waiter (messages may have been lost).
func (n *notifier) notifyAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for k, ch := range n.m {
		close(ch)
		delete(n.m, k)
	}
}

// message builds an invalidation message for key.
func (c *Cache[V]) message(key string) string { return c.origin + key }

// subscribe starts the invalidation subscription. It waits briefly for
// Redis to confirm it, so that messages published after New returns are
// seen; if Redis does not answer, the subscription keeps retrying in the
// background.
func (c *Cache[V]) subscribe() {
	ps := c.rdb.client.Subscribe(c.base, c.rdb.channel)
	confirmed := false
	if m, err := ps.ReceiveTimeout(c.base, 2*time.Second); err == nil {
		if s, ok := m.(*redis.Subscription); ok && s.Kind == "subscribe" {
			confirmed = true
		}
	}
	c.subscribed.Store(confirmed)
	c.ps = ps
	c.wg.Add(1)
	go c.receive(ps)
}

// receive is the subscription's goroutine, stopped by Close.
func (c *Cache[V]) receive(ps *redis.PubSub) {
	defer c.wg.Done()
	const idle = 2 * time.Second
	backoff := 50 * time.Millisecond
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(c.base, idle)
		if c.base.Err() != nil {
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if !pinged {
					pinged = true
					_ = ps.Ping(c.base)
					continue
				}
				// No answer to a ping: the connection is stalled.
				c.lostSubscription(err)
				continue
			}
			c.lostSubscription(err)
			t := time.NewTimer(backoff)
			select {
			case <-c.base.Done():
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(backoff*2, time.Second)
			continue
		}
		backoff, pinged = 50*time.Millisecond, false
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				// Subscribed after a drop (or late): messages may have
				// been missed meanwhile.
				c.flushLocal("invalidation subscription restored")
				c.subscribed.Store(true)
			}
		case *redis.Message:
			c.onMessage(m.Payload)
		}
	}
}

// lostSubscription flushes the local tier once per outage: invalidations
// published while the subscription is down are lost.
func (c *Cache[V]) lostSubscription(err error) {
	if c.subscribed.Swap(false) {
		c.log.Warn("cache: invalidation subscription lost", "prefix", c.cfg.prefix, "err", err)
		c.flushLocal("invalidation subscription lost")
	}
}

func (c *Cache[V]) flushLocal(reason string) {
	c.notif.notifyAll()
	if c.local != nil {
		c.local.clear()
		c.st.localFlushes.Add(1)
		if h := c.cfg.hooks.OnInvalidation; h != nil {
			h("")
		}
		c.log.Debug("cache: local tier flushed", "prefix", c.cfg.prefix, "reason", reason)
	}
}

func (c *Cache[V]) onMessage(payload string) {
	if len(payload) < len(c.origin) {
		return
	}
	origin, key := payload[:len(c.origin)], payload[len(c.origin):]
	c.notif.notify(key)
	if origin == c.origin {
		return
	}
	c.st.invalidations.Add(1)
	if c.local != nil {
		c.local.invalidate(key)
	}
	if h := c.cfg.hooks.OnInvalidation; h != nil {
		h(key) // after the local tier dropped the key
	}
}

// loadContext returns the context a load runs under: the caller's values
// without its cancellation, the cache's load timeout, and cancelled by Close.
func (c *Cache[V]) loadContext(ctx context.Context) (context.Context, context.CancelFunc) {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.loadTimeout)
	stop := context.AfterFunc(c.base, cancel)
	return lctx, func() { stop(); cancel() }
}
