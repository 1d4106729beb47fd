package cache

import "sync"

// call is one load (or refresh) of a key in this process; every caller
// waiting for the key waits on done and then reads e and err.
type call[V any] struct {
	done chan struct{}
	e    entry[V]
	err  error
}

// flights coalesces concurrent loads of a key in one process (a
// singleflight whose loads run on goroutines owned by the cache, so that a
// caller's cancellation abandons its wait, not the load). Safe for concurrent
// use.
type flights[V any] struct {
	mu sync.Mutex // protects m
	m  map[string]*call[V]
}

// claim returns the call in flight for key, or registers a new one; leader
// reports whether the caller registered it and must finish it.
func (f *flights[V]) claim(key string) (c *call[V], leader bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.m[key]; ok {
		return c, false
	}
	if f.m == nil {
		f.m = make(map[string]*call[V])
	}
	c = &call[V]{done: make(chan struct{})}
	f.m[key] = c
	return c, true
}

// finish publishes the result of c and unregisters it.
func (f *flights[V]) finish(key string, c *call[V], e entry[V], err error) {
	f.mu.Lock()
	if f.m[key] == c {
		delete(f.m, key)
	}
	f.mu.Unlock()
	c.e, c.err = e, err
	close(c.done)
}

// get returns the call in flight for key, or nil.
func (f *flights[V]) get(key string) *call[V] {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m[key]
}
