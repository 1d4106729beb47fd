package queue

import "sync"

// workQueue hands fetched deliveries to the engine's workers (a Handler's;
// a BatchHandler's workers read a channel). It wakes parked workers one at
// a time: a push wakes one if no wake is already on its way, and a woken
// worker that leaves deliveries behind wakes the next before it runs its
// own. So a burst of quick messages is worked off by the few workers
// already awake instead of waking one goroutine per message (a channel
// send to a parked receiver always wakes it), while a burst of slow ones
// still fans out to every worker, one wake-up apart.
type workQueue struct {
	mu     sync.Mutex
	items  []*delivery // waiting deliveries, items[head:] in fetch order
	head   int
	closed bool
	idle   int  // workers parked in pop
	waking bool // a wake is on its way to a parked worker
	wake   chan struct{}
}

// newWorkQueue returns a queue for workers workers.
func newWorkQueue(workers int) *workQueue {
	// Never more wakes outstanding than parked workers: sends never block.
	return &workQueue{wake: make(chan struct{}, workers)}
}

// push appends ds, in order.
func (q *workQueue) push(ds []*delivery) {
	if len(ds) == 0 {
		return
	}
	q.mu.Lock()
	if q.head > 0 && q.head >= len(q.items)/2 {
		// Slide the waiting ones down rather than let append grow the
		// array behind a queue that never empties.
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, ds...)
	w := q.wakeOne()
	q.mu.Unlock()
	if w {
		q.wake <- struct{}{}
	}
}

// wakeOne reports whether the caller is to send a wake: a worker is parked
// and none is already being woken. Called with mu held.
func (q *workQueue) wakeOne() bool {
	if q.idle == 0 || q.waking {
		return false
	}
	q.idle--
	q.waking = true
	return true
}

// pop returns the oldest waiting delivery, waiting for one; false once the
// queue is closed and empty.
func (q *workQueue) pop() (*delivery, bool) {
	q.mu.Lock()
	woken := false
	for q.head == len(q.items) {
		if woken {
			q.waking = false // nothing left for it: another worker took it
			woken = false
		}
		if q.closed {
			q.mu.Unlock()
			return nil, false
		}
		q.idle++
		q.mu.Unlock()
		<-q.wake
		q.mu.Lock()
		woken = true
	}
	if woken {
		q.waking = false
	}
	d := q.items[q.head]
	q.items[q.head] = nil
	q.head++
	if q.head == len(q.items) {
		q.items, q.head = q.items[:0], 0
	}
	w := q.head < len(q.items) && q.wakeOne() // pass the wake on
	q.mu.Unlock()
	if w {
		q.wake <- struct{}{}
	}
	return d, true
}

// close ends the queue: pop returns what is left, then false.
func (q *workQueue) close() {
	q.mu.Lock()
	q.closed = true
	n := q.idle
	q.idle = 0
	q.mu.Unlock()
	for range n {
		q.wake <- struct{}{}
	}
}
