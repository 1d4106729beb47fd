package kafka

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/outrigger-dev/outrigger/queue"
)

// driver is the Kafka side of one Consume call: one group member (its own
// franz-go client) that polls records into per-partition state, gates them
// by key, holds retries until they are due, hands them to the consume
// engine, and commits up to the first unfinished record of each partition.
//
// Goroutines: the poller (PollRecords, routing), the committer, the prober
// of parked retry partitions (park.go), the engine's fetcher (Fetch) and
// settler (Settle), franz-go's group loop (the partition callbacks) and the
// handlers (Enter, or enter for a batch handler). They share the state
// below under mu; the handlers only take msgMu, for a batch handler.
type driver struct {
	q        *Queue
	cl       *kgo.Client
	limit    int // most records admitted (not waiting) at once
	tierOf   map[string]int
	stopping atomic.Bool // Consume's ctx is done

	mu    sync.Mutex // protects the fields below and every pstate and rec
	parts map[tp]*pstate
	ready []*rec // FIFO of records that may run
	// FIFO of records that may run, handed out before ready: the next
	// records of keys, older than most of ready. Running them first keeps
	// what finishes close to offset order, so a stop leaves few finished
	// records behind an unstarted one (those run again on the next owner).
	succ        []*rec
	due         dueHeap
	active      int    // records admitted and not settled, all partitions
	waitingTier []int  // waiting records per tier
	paused      []bool // tiers paused for holding too many waiting records

	// A batch handler gets messages, not deliveries: the wrapper finds
	// their records in byMsg (kept only then).
	batch bool
	msgMu sync.Mutex              // protects byMsg; taken after mu when both are
	byMsg map[*queue.Message]*rec // dispatched records by message, for a batch handler

	wake chan struct{} // cap 1: ready or due changed
	room chan struct{} // cap 1: active dropped below limit

	commitMu   sync.Mutex          // orders snapshot-and-commit of the committer and of revokes
	ids        map[string][16]byte // topic IDs for commitDirect (protected by commitMu)
	commitKick chan struct{}       // cap 1: commit now (a rebalance just ended)
	pollDone   chan struct{}
	commitStop chan struct{}
	commitDone chan struct{}
	probeKick  chan struct{} // cap 1: probe now (retry partitions were assigned)
	probeStop  chan struct{}
	probeDone  chan struct{}
	stopPause  func() bool
}

func newDriver(q *Queue, limit int) *driver {
	d := &driver{
		q:           q,
		limit:       limit,
		tierOf:      map[string]int{q.name: -1},
		parts:       make(map[tp]*pstate),
		byMsg:       make(map[*queue.Message]*rec),
		waitingTier: make([]int, len(q.tiers)),
		paused:      make([]bool, len(q.tiers)),
		wake:        make(chan struct{}, 1),
		room:        make(chan struct{}, 1),
		commitKick:  make(chan struct{}, 1),
		pollDone:    make(chan struct{}),
		commitStop:  make(chan struct{}),
		commitDone:  make(chan struct{}),
		probeKick:   make(chan struct{}, 1),
		probeStop:   make(chan struct{}),
		probeDone:   make(chan struct{}),
	}
	for i, t := range q.tiers {
		d.tierOf[t.topic] = i
	}
	return d
}

// clientOpts are the consumer client's options.
func (d *driver) clientOpts(consumer string) []kgo.Opt {
	q := d.q
	o := append(q.baseOpts(consumer),
		kgo.ConsumerGroup(q.group),
		kgo.ConsumeTopics(q.topics(false)...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		// Kafka's fetch.max.wait.ms default. franz-go's 5s also delays by
		// up to 5s the first records of partitions whose start offset is
		// resolved while a fetch is already waiting.
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.RebalanceTimeout(q.cfg.RebalanceTimeout),
		kgo.OnPartitionsAssigned(d.onAssigned),
		kgo.OnPartitionsRevoked(d.onRevoked),
		kgo.OnPartitionsLost(d.onLost),
	)
	if q.cfg.SessionTimeout > 0 {
		o = append(o, kgo.SessionTimeout(q.cfg.SessionTimeout))
	}
	if q.cfg.HeartbeatInterval > 0 {
		o = append(o, kgo.HeartbeatInterval(q.cfg.HeartbeatInterval))
	}
	return append(o, q.cfg.Opts...)
}

// start runs the poller, the committer and the prober until ctx is done
// (poller) or Leave (committer, prober).
func (d *driver) start(ctx context.Context) {
	d.stopPause = context.AfterFunc(ctx, func() {
		// No fetch starts after the cancel is seen.
		d.stopping.Store(true)
		d.cl.PauseFetchTopics(d.q.topics(false)...)
		d.signal(d.room)
	})
	go d.pollLoop(ctx)
	go d.commitLoop()
	go d.probeLoop()
}

func (d *driver) signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// pollLoop polls records while there is room, until ctx is done.
func (d *driver) pollLoop(ctx context.Context) {
	defer close(d.pollDone)
	var backoff time.Duration
	for ctx.Err() == nil {
		d.mu.Lock()
		room := d.limit - d.active
		d.mu.Unlock()
		if room <= 0 {
			select {
			case <-d.room:
			case <-ctx.Done():
			}
			continue
		}
		fs := d.cl.PollRecords(ctx, room)
		if fs.IsClientClosed() {
			d.cl.AllowRebalance()
			return
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			if ferr == nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				ferr = fmt.Errorf("kafka: fetch %s[%d]: %w", t, p, err)
			}
		})
		if ctx.Err() == nil {
			d.route(fs)
		}
		d.cl.AllowRebalance()
		d.applyPauses()
		if ferr == nil || ctx.Err() != nil {
			backoff = 0
			continue
		}
		backoff = min(max(2*backoff, 50*time.Millisecond), 2*time.Second)
		d.q.log.Warn("kafka: fetch failed", "err", ferr, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
}

// route adds polled records to their partitions.
func (d *driver) route(fs kgo.Fetches) {
	now := time.Now()
	added := false
	d.mu.Lock()
	fs.EachPartition(func(fp kgo.FetchTopicPartition) {
		if len(fp.Records) == 0 {
			return
		}
		p := d.parts[tp{fp.Topic, fp.Partition}]
		if p == nil || p.revoking || p.gone.Load() {
			return // not ours (any more)
		}
		last := p.lastOffset()
		for _, r := range fp.Records {
			if r.Offset <= last {
				continue // a repeat
			}
			last = r.Offset
			x := &rec{p: p, r: r, heapAt: -1}
			x.d = decodeInto(r, &x.msg)
			p.recs = append(p.recs, x)
			p.epoch = r.LeaderEpoch
			added = true
			if p.tier >= 0 && !x.isDue(now) {
				x.st = stWaiting
				p.waiting++
				d.waitingTier[p.tier]++
				heap.Push(&d.due, x)
				continue
			}
			d.admit(x)
		}
	})
	d.mu.Unlock()
	if added {
		d.signal(d.wake)
	}
}

// admit makes x runnable, behind the running record of its key if any.
// Called with mu held.
func (d *driver) admit(x *rec) {
	p := x.p
	p.active++
	d.active++
	if x.keyed() {
		if kq := p.keys[x.d.key]; kq != nil {
			kq.tail.next = x
			kq.tail = x
			x.st = stBlocked
			return
		}
		p.keys[x.d.key] = &keyq{head: x, tail: x}
	}
	x.st = stReady
	d.ready = append(d.ready, x)
}

// promote admits the waiting records that are due. Called with mu held.
func (d *driver) promote(now time.Time) {
	for len(d.due) > 0 && d.due[0].isDue(now) {
		x := heap.Pop(&d.due).(*rec)
		p := x.p
		p.waiting--
		d.waitingTier[p.tier]--
		d.admit(x)
	}
}

// applyPauses pauses the retry topics whose consumer holds too many waiting
// records, and resumes them below half of that.
func (d *driver) applyPauses() {
	d.mu.Lock()
	pause, resume := d.pauseChanges()
	d.mu.Unlock()
	d.setPauses(pause, resume)
}

// pauseChanges returns the retry topics to pause and to resume for the
// records they hold waiting. Called with mu held.
func (d *driver) pauseChanges() (pause, resume []string) {
	buf := d.q.cfg.DelayedBuffer
	for i, n := range d.waitingTier {
		switch {
		case !d.paused[i] && n >= buf:
			d.paused[i] = true
			pause = append(pause, d.q.tiers[i].topic)
		case d.paused[i] && n < max(buf/2, 1):
			d.paused[i] = false
			resume = append(resume, d.q.tiers[i].topic)
		}
	}
	return pause, resume
}

// setPauses applies pauseChanges.
func (d *driver) setPauses(pause, resume []string) {
	if len(pause) > 0 {
		d.cl.PauseFetchTopics(pause...)
	}
	if len(resume) > 0 && !d.stopping.Load() {
		d.cl.ResumeFetchTopics(resume...)
	}
}

// Fetch implements queue.Driver: it hands out runnable records, waiting for
// one (or for the next due time) until ctx is done.
func (d *driver) Fetch(ctx context.Context, most int) ([]*queue.Delivery, error) {
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		if ctx.Err() != nil {
			return nil, nil
		}
		now := time.Now()
		d.mu.Lock()
		if len(d.due) > 0 {
			d.promote(now)
		}
		var out []*queue.Delivery
		if len(d.succ)+len(d.ready) > 0 {
			out = make([]*queue.Delivery, 0, min(most, len(d.succ)+len(d.ready)))
			d.lockMsgs()
			out = d.dispatch(&d.succ, out, most)
			out = d.dispatch(&d.ready, out, most)
			d.unlockMsgs()
		}
		wait := time.Duration(-1)
		if len(d.due) > 0 {
			wait = max(time.UnixMilli(d.due[0].d.dueMs).Sub(now), time.Millisecond)
		}
		pause, resume := d.pauseChanges()
		d.mu.Unlock()
		d.setPauses(pause, resume)
		if len(out) > 0 {
			return out, nil
		}
		var tc <-chan time.Time
		if wait >= 0 {
			if t == nil {
				t = time.NewTimer(wait)
			} else {
				t.Reset(wait)
			}
			tc = t.C
		}
		select {
		case <-d.wake:
		case <-tc:
		case <-ctx.Done():
			return nil, nil
		}
	}
}

// lockMsgs takes msgMu if byMsg is kept.
func (d *driver) lockMsgs() {
	if d.batch {
		d.msgMu.Lock()
	}
}

// unlockMsgs releases what lockMsgs took.
func (d *driver) unlockMsgs() {
	if d.batch {
		d.msgMu.Unlock()
	}
}

// dispatch moves records of the FIFO q to out, up to most in all. Called
// with mu held, and msgMu (lockMsgs).
func (d *driver) dispatch(q *[]*rec, out []*queue.Delivery, most int) []*queue.Delivery {
	n := 0
	for n < len(*q) && len(out) < most {
		x := (*q)[n]
		n++
		if x.st != stReady {
			continue // dropped
		}
		x.st = stDispatched
		if d.batch {
			d.byMsg[x.d.msg] = x
		}
		out = append(out, x.delivery())
	}
	left := copy(*q, (*q)[n:])
	clear((*q)[left:])
	*q = (*q)[:left]
	return out
}

// Enter implements queue.Gate: it returns the ctx the handler of dl runs
// with and the function to call (if not nil) when the handler returns, or
// false when the message's partition was given up (its result would be
// dropped: do not run it).
func (d *driver) Enter(ctx context.Context, dl *queue.Delivery) (context.Context, func(), bool) {
	x := dl.Handle.(*rec)
	if x.p.gone.Load() {
		return nil, nil, false
	}
	ctx, done := x.p.handlerCtx(&d.mu, ctx)
	return ctx, done, true
}

// enter is Enter for the batch handler wrapper, by message.
func (d *driver) enter(hctx context.Context, m *queue.Message) (p *pstate, ctx context.Context, done func(), ok bool) {
	d.msgMu.Lock()
	x := d.byMsg[m]
	d.msgMu.Unlock()
	if x == nil || x.p.gone.Load() {
		return nil, nil, nil, false
	}
	ctx, done = x.p.handlerCtx(&d.mu, hctx)
	return x.p, ctx, done, true
}

// Settle implements queue.Driver. Retry and dead-letter copies are written
// (acks=all) first, then every outcome is applied to its partition: the
// commit point moves past finished records, the next record of the same
// key becomes runnable. Records of partitions given up are ignored.
func (d *driver) Settle(ctx context.Context, ss []queue.Settlement) error {
	var first error
	if needCopies(ss) {
		first = d.writeCopies(ctx, ss)
	}
	d.mu.Lock()
	d.lockMsgs()
	succ := len(d.succ)
	for _, s := range ss {
		x := s.Delivery.Handle.(*rec)
		if x.st != stDispatched {
			continue // settled by an earlier try
		}
		if x.p.gone.Load() {
			// Given up in a rebalance: the new owner runs it again.
			x.st = stDropped
			d.active--
			if d.batch {
				delete(d.byMsg, x.d.msg)
			}
			d.q.stale[s.Outcome].Add(1)
			continue
		}
		switch s.Outcome {
		case queue.OutcomeAck:
			d.finish(x, stDone)
		case queue.OutcomeRelease:
			d.finish(x, stReleased)
		default:
			if x.copied {
				d.finish(x, stDone)
			}
		}
	}
	woke := len(d.succ) > succ // the next records of keys
	d.unlockMsgs()
	d.mu.Unlock()
	if woke {
		d.signal(d.wake)
	}
	d.signal(d.room) // wakes the poller only if it waits for room
	return first
}

// needCopies reports whether any settlement is a retry or a dead letter.
func needCopies(ss []queue.Settlement) bool {
	for _, s := range ss {
		if s.Outcome == queue.OutcomeRetry || s.Outcome == queue.OutcomeDeadLetter {
			return true
		}
	}
	return false
}

// writeCopies writes the retry and dead-letter copies of the settlements
// (acks=all) and marks those acknowledged as copied. Retry partitions
// written to that a consumer of this queue parked are resumed at once.
func (d *driver) writeCopies(ctx context.Context, ss []queue.Settlement) error {
	now := time.Now()
	var copies []*kgo.Record
	var owners []*rec
	d.mu.Lock()
	for _, s := range ss {
		x := s.Delivery.Handle.(*rec)
		if x.p.gone.Load() || x.st != stDispatched || x.copied {
			continue
		}
		m := *x.d.msg
		o := originOf(x.r, x.d)
		switch s.Outcome {
		case queue.OutcomeRetry:
			m.Attempt++
			m.LastError = s.Err
			t := d.q.tierFor(s.Delay)
			copies = append(copies, encode(d.q.tiers[t].topic, keyBytes(x.d.key), &m, now.Add(s.Delay), o))
		case queue.OutcomeDeadLetter:
			m.LastError = s.Err
			copies = append(copies, d.q.deadRecord(&m, x.d.key, o))
		default:
			continue
		}
		owners = append(owners, x)
	}
	d.mu.Unlock()
	if len(copies) == 0 {
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	errs, err := d.q.produce(pctx, copies...)
	cancel()
	d.mu.Lock()
	for i, x := range owners {
		if errs[i] == nil {
			x.copied = true
		}
	}
	d.mu.Unlock()
	for i, r := range copies {
		if errs[i] == nil && r.Topic != d.q.dead {
			d.q.wakeTier(r.Topic, r.Partition)
		}
	}
	return err
}

// finish settles dispatched record x into state st. Called with mu held,
// and msgMu (lockMsgs).
func (d *driver) finish(x *rec, st recState) {
	p := x.p
	x.st = st
	p.active--
	d.active--
	if d.batch {
		delete(d.byMsg, x.d.msg)
	}
	if x.keyed() {
		if kq := p.keys[x.d.key]; kq != nil && kq.head == x {
			nxt := x.next
			x.next = nil
			if nxt == nil {
				delete(p.keys, x.d.key)
			} else {
				kq.head = nxt
				if st == stDone && nxt.st == stBlocked {
					nxt.st = stReady
					d.succ = append(d.succ, nxt)
				}
			}
		}
	}
	p.advance()
	if p.active == 0 && p.idle != nil {
		close(p.idle)
		p.idle = nil
	}
}

// dropQueued drops p's records that are admitted but not dispatched.
// Called with mu held.
func (d *driver) dropQueued(p *pstate) {
	for _, x := range p.recs {
		switch x.st {
		case stBlocked, stReady:
			x.st = stDropped
			x.next = nil
			p.active--
			d.active--
		case stWaiting:
			heap.Remove(&d.due, int(x.heapAt))
			x.st = stDropped
			p.waiting--
			d.waitingTier[p.tier]--
		}
	}
	clear(p.keys)
	if p.active == 0 && p.idle != nil {
		close(p.idle)
		p.idle = nil
	}
}

// onAssigned starts the state of newly assigned partitions. It is called
// at the end of every rebalance (franz-go blocks commits during the join and
// sync before it), so it also has the committer commit at once what
// finished in the meantime.
func (d *driver) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	d.signal(d.commitKick)
	d.mu.Lock()
	defer d.mu.Unlock()
	for topic, parts := range assigned {
		tier, ok := d.tierOf[topic]
		if !ok {
			continue
		}
		for _, part := range parts {
			t := tp{topic, part}
			if old := d.parts[t]; old != nil {
				d.abandon(old)
			}
			d.parts[t] = newPState(t, tier)
			if tier >= 0 {
				d.signal(d.probeKick)
			}
		}
	}
}

// onRevoked gives up revoked partitions: the records already fetched from
// them may finish (for at most Config.RevokeWait; none when Consume is
// stopping), then the commit point of each is committed, with those of the
// partitions kept. franz-go calls it at the start of every rebalance (with
// nothing revoked under the cooperative protocol) before it joins the
// group, the last moment commits go through until the rebalance ends: so
// everything finished so far is committed then, and a consumer that dies
// during the rebalance only runs again what it finished during it.
func (d *driver) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	d.giveUp(ctx, revoked, true)
}

// onLost drops lost partitions at once: another member may own them
// already, so nothing is committed and running handlers' ctx is cancelled.
func (d *driver) onLost(ctx context.Context, _ *kgo.Client, lost map[string][]int32) {
	d.giveUp(ctx, lost, false)
}

func (d *driver) giveUp(ctx context.Context, m map[string][]int32, commit bool) {
	defer d.signal(d.room) // dropped records made room
	d.mu.Lock()
	var ps []*pstate
	for topic, parts := range m {
		for _, part := range parts {
			if p := d.parts[tp{topic, part}]; p != nil {
				ps = append(ps, p)
			}
		}
	}
	drain := commit && !d.stopping.Load()
	var idles []chan struct{}
	for _, p := range ps {
		p.revoking = true
		// Waiting retries are not worth the wait: the next owner reads them.
		for _, x := range p.recs {
			if x.st == stWaiting {
				heap.Remove(&d.due, int(x.heapAt))
				x.st = stDropped
				p.waiting--
				d.waitingTier[p.tier]--
			}
		}
		if !drain {
			d.dropQueued(p)
		}
		if p.active > 0 {
			p.idle = make(chan struct{})
			idles = append(idles, p.idle)
		}
	}
	d.mu.Unlock()
	if len(ps) == 0 && !commit {
		return
	}
	if commit && len(idles) > 0 {
		t := time.NewTimer(d.q.cfg.RevokeWait)
	wait:
		for _, c := range idles {
			select {
			case <-c:
			case <-t.C:
				d.q.log.Warn("kafka: revoked partitions' messages did not finish within RevokeWait; giving them up (their handlers' ctx is cancelled, the next owner runs them again)", "revoke_wait", d.q.cfg.RevokeWait)
				break wait
			}
		}
		t.Stop()
	}
	if commit {
		d.commitMu.Lock()
		defer d.commitMu.Unlock()
	}
	offsets := make(map[string]map[int32]kgo.EpochOffset)
	d.mu.Lock()
	if commit {
		// The partitions kept too: commits wait until the rebalance ends.
		d.commitPoints(offsets)
	}
	for _, p := range ps {
		if commit {
			if cp := p.commitPoint(); cp >= 0 && cp != p.sent {
				addOffset(offsets, p, cp)
			}
		}
		d.abandon(p)
	}
	d.mu.Unlock()
	if len(offsets) > 0 {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		switch err := d.commit(cctx, offsets); {
		case err == nil:
		case len(ps) == 0 && rebalancing(err):
			d.q.log.Debug("kafka: commit at the start of a rebalance refused; retried when it ends", "err", err)
		default:
			d.q.log.Warn("kafka: commit on revoke failed; the next owner runs the finished messages again", "err", err)
		}
	}
}

// abandon forgets p: its queued records are dropped, running handlers' ctx
// cancelled and their results ignored. Called with mu held.
func (d *driver) abandon(p *pstate) {
	d.dropQueued(p)
	p.gone.Store(true)
	p.drop()
	d.unpark(p)
	if d.parts[p.tp] == p {
		delete(d.parts, p.tp)
	}
}

// commitLoop commits finished work every Config.CommitInterval until Leave.
func (d *driver) commitLoop() {
	defer close(d.commitDone)
	t := time.NewTicker(d.q.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-d.commitStop:
			return
		case <-t.C:
		case <-d.commitKick:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := d.commitNow(ctx); err != nil && !d.stopping.Load() {
			if rebalancing(err) {
				d.q.log.Debug("kafka: commit refused during a rebalance; retried next interval", "err", err)
			} else {
				d.q.log.Warn("kafka: commit failed; retried next interval", "err", err)
			}
		}
		cancel()
	}
}

// rebalancing reports commit errors that only mean a rebalance is under way.
func rebalancing(err error) bool {
	return errors.Is(err, kerr.RebalanceInProgress) || errors.Is(err, kerr.IllegalGeneration) ||
		errors.Is(err, kerr.UnknownMemberID) || errors.Is(err, kerr.FencedInstanceID) ||
		errors.Is(err, kerr.StaleMemberEpoch) // KIP-848 groups (kgo.ServerSideBalancer in Config.Opts)
}

// commitNow commits the commit point of every owned partition that moved.
func (d *driver) commitNow(ctx context.Context) error {
	d.commitMu.Lock()
	defer d.commitMu.Unlock()
	offsets := make(map[string]map[int32]kgo.EpochOffset)
	d.mu.Lock()
	d.commitPoints(offsets)
	d.mu.Unlock()
	if len(offsets) == 0 {
		return nil
	}
	return d.commitDirect(ctx, offsets)
}

// commitPoints adds to offsets the commit point of every owned partition
// that moved since its last commit. Called with mu held.
func (d *driver) commitPoints(offsets map[string]map[int32]kgo.EpochOffset) {
	for _, p := range d.parts {
		if p.revoking || p.gone.Load() {
			continue
		}
		if cp := p.commitPoint(); cp >= 0 && cp > p.sent {
			addOffset(offsets, p, cp)
		}
	}
}

func addOffset(offsets map[string]map[int32]kgo.EpochOffset, p *pstate, cp int64) {
	if offsets[p.tp.topic] == nil {
		offsets[p.tp.topic] = make(map[int32]kgo.EpochOffset)
	}
	offsets[p.tp.topic][p.tp.part] = kgo.EpochOffset{Epoch: p.epoch, Offset: cp}
}

// commit commits offsets synchronously and records what was committed.
func (d *driver) commit(ctx context.Context, offsets map[string]map[int32]kgo.EpochOffset) error {
	var rerr error
	d.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			rerr = err
			return
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					if rerr == nil {
						rerr = fmt.Errorf("kafka: commit %s[%d]: %w", t.Topic, p.Partition, err)
					}
					continue
				}
				if ps := d.parts[tp{t.Topic, p.Partition}]; ps != nil {
					ps.sent = offsets[t.Topic][p.Partition].Offset
				}
			}
		}
	})
	return rerr
}

// Leave implements queue.Driver: it stops the poller and the committer,
// commits the finished work, leaves the group (revoking every partition:
// records fetched but not run are dropped, uncommitted, for the next owner)
// and closes the client.
func (d *driver) Leave(ctx context.Context) {
	d.stopping.Store(true)
	d.stopPause()
	<-d.pollDone
	close(d.commitStop)
	<-d.commitDone
	close(d.probeStop)
	<-d.probeDone
	if err := d.commitNow(ctx); err != nil {
		d.q.log.Warn("kafka: final commit failed; the next owner runs the finished messages again", "err", err)
	}
	if err := d.cl.LeaveGroupContext(ctx); err != nil {
		d.q.log.Debug("kafka: leave group", "err", err)
	}
	d.cl.Close()
}
