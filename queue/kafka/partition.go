package kafka

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/outrigger-dev/outrigger/queue"
)

// recState is where a fetched record is in its life.
type recState uint8

const (
	stWaiting    recState = iota // a retry or delayed message waiting for its due time
	stBlocked                    // waiting behind an earlier message with the same key
	stReady                      // in driver.ready, not yet handed to the engine
	stDispatched                 // handed to the engine, not settled
	stDone                       // settled: acked, or its retry or dead-letter copy written
	stReleased                   // handed back at shutdown: stays uncommitted
	stDropped                    // its partition was given up before it finished
)

// rec is one fetched record, with its message and delivery (one allocation
// per record).
type rec struct {
	p      *pstate
	r      *kgo.Record
	d      decoded // d.msg is &msg
	msg    queue.Message
	dl     queue.Delivery
	next   *rec  // next record with the same key (FIFO), while gated
	heapAt int32 // index in the due heap while waiting
	st     recState
	copied bool // its retry or dead-letter copy was acknowledged
}

func (r *rec) keyed() bool { return r.d.key != "" }

// keyq is the FIFO of one key's records in one partition; head is the one
// running (or ready to run).
type keyq struct{ head, tail *rec }

// tp names a topic partition.
type tp struct {
	topic string
	part  int32
}

// pstate is one assigned partition of one consumer. Every field but gone
// and hc is protected by the driver's mu.
type pstate struct {
	tp    tp
	tier  int    // retry tier index, -1 for the main topic
	recs  []*rec // fetched and not yet passed by the commit point, in offset order
	next  int64  // the commit point when recs is empty (-1: nothing fetched yet)
	epoch int32  // leader epoch of the latest record
	keys  map[string]*keyq
	sent  int64 // offset last committed by this consumer (-1: none)

	active   int // records admitted (blocked, ready, dispatched) and not settled
	waiting  int // records in stWaiting
	revoking bool
	gone     atomic.Bool   // given up: written under mu, read anywhere
	idle     chan struct{} // closed when active reaches 0 while revoking

	// A retry tier's partition with nothing unread is parked: not fetched
	// until its end offset moves past base (see park.go).
	parked bool
	base   int64 // where fetching starts when nothing was fetched yet (-1: unknown)
	wakes  int   // records this process wrote to the partition (Queue.wakeTier)

	hc atomic.Pointer[handlerCtx] // handlers' shared ctx, set under mu

	// dropped is done once the partition is given up: every handler ctx
	// (see handlerCtx) is cancelled through it.
	dropped context.Context
	drop    context.CancelFunc
}

// handlerCtx is the ctx handlers of one partition run with: the engine's
// handler ctx hctx, cancelled early when the partition is given up.
type handlerCtx struct {
	hctx, ctx context.Context
}

func newPState(t tp, tier int) *pstate {
	p := &pstate{tp: t, tier: tier, next: -1, sent: -1, epoch: -1, base: -1, keys: make(map[string]*keyq)}
	p.dropped, p.drop = context.WithCancel(context.Background())
	return p
}

// commitPoint is the offset to commit: that of the first record not
// finished, or the one after the last record when all are.
func (p *pstate) commitPoint() int64 {
	if len(p.recs) > 0 {
		return p.recs[0].r.Offset
	}
	return p.next
}

// advance drops finished records from the front.
func (p *pstate) advance() {
	i := 0
	for i < len(p.recs) && p.recs[i].st == stDone {
		p.next = p.recs[i].r.Offset + 1
		i++
	}
	if i == 0 {
		return
	}
	n := copy(p.recs, p.recs[i:])
	clear(p.recs[n:])
	p.recs = p.recs[:n]
}

// lastOffset is the offset of the latest fetched record (-1: none).
func (p *pstate) lastOffset() int64 {
	if len(p.recs) > 0 {
		return p.recs[len(p.recs)-1].r.Offset
	}
	return p.next - 1
}

// position is the offset this consumer fetches the partition from next, as
// far as it knows: after the latest fetched record, or base (-1: unknown).
func (p *pstate) position() int64 {
	if last := p.lastOffset(); last >= 0 {
		return last + 1
	}
	return p.base
}

// handlerCtx returns the ctx a handler of this partition runs with: hctx,
// cancelled early if the partition is given up (through dropped), and the
// function to call when the handler returns (nil: none). Called without mu.
//
// The ctx for the first hctx seen is made once, under mu, and shared: the
// engine hands every handler the same hctx unless an OnProcess hook
// derives one per message. A handler with another hctx gets a ctx of its
// own, released by done.
func (p *pstate) handlerCtx(mu *sync.Mutex, hctx context.Context) (ctx context.Context, done func()) {
	c := p.hc.Load()
	if c == nil {
		mu.Lock()
		if c = p.hc.Load(); c == nil {
			// Never released: it lives as long as the partition.
			c = &handlerCtx{hctx: hctx}
			c.ctx, _ = p.ownCtx(hctx)
			p.hc.Store(c)
		}
		mu.Unlock()
	}
	if c.hctx == hctx {
		return c.ctx, nil
	}
	return p.ownCtx(hctx)
}

// ownCtx is hctx, cancelled early if the partition is given up, for one
// handler; done releases it.
func (p *pstate) ownCtx(hctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(hctx)
	stop := context.AfterFunc(p.dropped, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// dueHeap orders waiting records by due time.
type dueHeap []*rec

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].d.dueMs < h[j].d.dueMs }
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapAt, h[j].heapAt = int32(i), int32(j)
}
func (h *dueHeap) Push(x any) {
	r := x.(*rec)
	r.heapAt = int32(len(*h))
	*h = append(*h, r)
}
func (h *dueHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	r.heapAt = -1
	return r
}

// delivery returns the record's delivery.
func (r *rec) delivery() *queue.Delivery {
	r.dl = queue.Delivery{Message: r.d.msg, Handle: r}
	return &r.dl
}

// due reports whether r may run at now.
func (r *rec) isDue(now time.Time) bool { return r.d.dueMs <= now.UnixMilli() }
