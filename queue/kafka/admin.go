package kafka

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/outrigger-dev/outrigger/queue"
)

// deadRecord is the dead-letter record of m: keyed by the message ID (the
// topic is compacted, a requeue writes a tombstone for the ID), the
// ordering key in a header.
func (q *Queue) deadRecord(m *queue.Message, key string, o origin) *kgo.Record {
	r := encode(q.dead, []byte(m.ID), m, time.Time{}, o)
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: headerKey, Value: []byte(key)})
	return r
}

// isTombstone reports a requeue's tombstone in the dead-letter topic.
func isTombstone(r *kgo.Record) bool {
	for _, h := range r.Headers {
		if h.Key == headerRequeued {
			return true
		}
	}
	return false
}

// held is what this process's consumers hold of one partition.
type held struct {
	end      int64 // offset after the latest fetched record
	inflight int64 // admitted, not settled
	released int64 // handed back at shutdown, not yet left
	waiting  int64 // retries waiting for their due time
	oldest   time.Time
}

// localHeld sums what this process's consumers hold, by partition.
func (q *Queue) localHeld() map[tp]held {
	out := make(map[tp]held)
	for _, d := range q.drivers() {
		d.mu.Lock()
		for t, p := range d.parts {
			h := out[t]
			h.end = max(h.end, p.lastOffset()+1)
			h.waiting += int64(p.waiting)
			for _, x := range p.recs {
				switch x.st {
				case stBlocked, stReady, stDispatched:
					h.inflight++
					if at := x.d.msg.PublishedAt; h.oldest.IsZero() || at.Before(h.oldest) {
						h.oldest = at
					}
				case stReleased:
					h.released++
				}
			}
			out[t] = h
		}
		d.mu.Unlock()
	}
	return out
}

// Stats reports the queue's counts from the brokers' offsets and this
// process's consumers:
//   - Ready: messages of the main topic past the group's committed offset
//     that no consumer of this process has fetched (messages fetched by
//     consumers in other processes count as Ready).
//   - InFlight and Pending: messages this process's consumers fetched and
//     have not finished (running, queued behind their key, or due).
//   - Delayed: messages of the retry topics not yet delivered (WithDelay
//     messages and retries), wherever they wait.
//   - Dead: dead letters not requeued.
//   - OldestAge: the age of the oldest message in flight in this process
//     (Kafka does not tell the age of unread messages without reading
//     them).
func (q *Queue) Stats(ctx context.Context) (queue.Stats, error) {
	var st queue.Stats
	if q.isClosed() {
		return st, errClosed
	}
	topics := q.topics(false)
	ends, err := q.adm.ListEndOffsets(ctx, topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return st, fmt.Errorf("kafka: stats: end offsets: %w", err)
	}
	starts, err := q.adm.ListStartOffsets(ctx, topics...)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return st, fmt.Errorf("kafka: stats: start offsets: %w", err)
	}
	commits, err := q.adm.FetchOffsets(ctx, q.group)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return st, fmt.Errorf("kafka: stats: committed offsets: %w", err)
	}
	local := q.localHeld()
	var oldest time.Time
	ends.Each(func(lo kadm.ListedOffset) {
		c := int64(0)
		if s, ok := starts.Lookup(lo.Topic, lo.Partition); ok {
			c = s.Offset
		}
		if o, ok := commits.Lookup(lo.Topic, lo.Partition); ok && o.Err == nil && o.At >= 0 {
			c = max(c, o.At)
		}
		h := local[tp{lo.Topic, lo.Partition}]
		unread := max(0, lo.Offset-max(c, h.end))
		if lo.Topic == q.name {
			st.Ready += unread + h.released
		} else {
			st.Delayed += unread + h.released + h.waiting
		}
		st.InFlight += h.inflight
		if !h.oldest.IsZero() && (oldest.IsZero() || h.oldest.Before(oldest)) {
			oldest = h.oldest
		}
	})
	st.Pending = st.InFlight
	if !oldest.IsZero() {
		st.OldestAge = max(time.Since(oldest), 0)
	}
	if st.Dead, err = q.deadCount(ctx); err != nil {
		return st, err
	}
	return st, nil
}

// deadIndex follows the dead-letter topic to count live dead letters
// without reading it whole on every Stats call: it keeps the IDs of the
// dead letters not requeued (about 100 bytes each) and the next offset to
// read of each partition.
type deadIndex struct {
	cl   *kgo.Client
	pos  map[int32]int64
	live map[string]struct{}
}

// deadReader returns a client reading the dead-letter topic from its start.
func (q *Queue) deadReader() (*kgo.Client, error) {
	opts := append(q.baseOpts("dead"),
		kgo.ConsumeTopics(q.dead),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)
	cl, err := kgo.NewClient(append(opts, q.cfg.Opts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: dead-letter reader: %w", err)
	}
	return cl, nil
}

// deadCount returns the number of live dead letters.
func (q *Queue) deadCount(ctx context.Context) (int64, error) {
	q.deadMu.Lock()
	defer q.deadMu.Unlock()
	if q.deadIdx == nil {
		cl, err := q.deadReader()
		if err != nil {
			return 0, err
		}
		q.deadIdx = &deadIndex{cl: cl, pos: map[int32]int64{}, live: map[string]struct{}{}}
	}
	ix := q.deadIdx
	complete, err := q.readDead(ctx, ix.cl, ix.pos, func(r *kgo.Record) {
		if isTombstone(r) {
			delete(ix.live, string(r.Key))
		} else {
			ix.live[string(r.Key)] = struct{}{}
		}
	})
	n := int64(len(ix.live))
	if err != nil || !complete {
		// Start over with a fresh reader next time (a reader that timed
		// out, or a topic whose last records were compacted away).
		ix.cl.Close()
		q.deadIdx = nil
	}
	return n, err
}

// readDead polls cl (a reader of the dead-letter topic) until every
// partition's position in pos reached its end offset, calling fn on each
// record. It reports whether it got there: a poll that brings nothing for
// 2s ends it early.
func (q *Queue) readDead(ctx context.Context, cl *kgo.Client, pos map[int32]int64, fn func(*kgo.Record)) (bool, error) {
	ends, err := q.adm.ListEndOffsets(ctx, q.dead)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return false, fmt.Errorf("kafka: dead letters: end offsets: %w", err)
	}
	behind := func() bool {
		caught := true
		ends.Each(func(lo kadm.ListedOffset) {
			if pos[lo.Partition] < lo.Offset {
				caught = false
			}
		})
		return !caught
	}
	for behind() {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fs := cl.PollFetches(pctx)
		timedOut := pctx.Err() != nil
		cancel()
		if err := ctx.Err(); err != nil {
			return false, fmt.Errorf("kafka: dead letters: %w", err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) {
			if ferr == nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				ferr = err
			}
		})
		if ferr != nil {
			return false, fmt.Errorf("kafka: dead letters: %w", ferr)
		}
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			pos[r.Partition] = r.Offset + 1
			fn(r)
			n++
		})
		if n == 0 && timedOut {
			// Nothing more to read although the end offset is further:
			// the last records were compacted away (or the reader is slow).
			return false, nil
		}
	}
	return true, nil
}

// deadLetter is one live dead letter read back.
type deadLetter struct {
	r *kgo.Record
	d decoded
}

// scanDead reads the whole dead-letter topic and returns the live dead
// letters, oldest first.
func (q *Queue) scanDead(ctx context.Context) ([]deadLetter, error) {
	cl, err := q.deadReader()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	live := map[string]deadLetter{}
	if _, err := q.readDead(ctx, cl, map[int32]int64{}, func(r *kgo.Record) {
		if isTombstone(r) {
			delete(live, string(r.Key))
			return
		}
		live[string(r.Key)] = deadLetter{r: r, d: decode(r)}
	}); err != nil {
		return nil, err
	}
	out := make([]deadLetter, 0, len(live))
	for _, dl := range live {
		out = append(out, dl)
	}
	slices.SortFunc(out, func(a, b deadLetter) int {
		if c := a.r.Timestamp.Compare(b.r.Timestamp); c != 0 {
			return c
		}
		if c := cmp.Compare(a.r.Partition, b.r.Partition); c != 0 {
			return c
		}
		return cmp.Compare(a.r.Offset, b.r.Offset)
	})
	return out, nil
}

// DeadLetters returns up to n dead letters, oldest first (n <= 0: all of
// them). It reads the whole dead-letter topic (dead letters requeued since
// are skipped), so it costs as much as the topic holds.
func (q *Queue) DeadLetters(ctx context.Context, n int) ([]*queue.Message, error) {
	if q.isClosed() {
		return nil, errClosed
	}
	dls, err := q.scanDead(ctx)
	if err != nil {
		return nil, err
	}
	if n > 0 && len(dls) > n {
		dls = dls[:n]
	}
	out := make([]*queue.Message, len(dls))
	for i, dl := range dls {
		out[i] = dl.d.msg
	}
	return out, nil
}

// Requeue republishes the dead letters with the given IDs to the main topic
// (with their ordering key) with a fresh attempt count (LastError keeps the
// error that killed them); with no IDs it requeues all of them. Each copy is
// acknowledged before the dead letter's tombstone is written, so a failure
// in between duplicates a message rather than losing it; two Requeue calls
// at once may both requeue a message. IDs that are not dead letters are
// reported with queue.ErrNotFound after the others were requeued.
func (q *Queue) Requeue(ctx context.Context, ids ...string) error {
	if q.isClosed() {
		return errClosed
	}
	dls, err := q.scanDead(ctx)
	if err != nil {
		return err
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	var copies, tombs []*kgo.Record
	for _, dl := range dls {
		m := *dl.d.msg
		if len(ids) > 0 && !want[m.ID] {
			continue
		}
		delete(want, m.ID)
		m.Attempt = 1
		copies = append(copies, encode(q.name, keyBytes(dl.d.key), &m, time.Time{}, originOf(dl.r, dl.d)))
		tombs = append(tombs, &kgo.Record{
			Topic:   q.dead,
			Key:     dl.r.Key,
			Headers: []kgo.RecordHeader{{Key: headerRequeued, Value: []byte("1")}},
		})
	}
	if _, err := q.produce(ctx, copies...); err != nil {
		return err
	}
	if _, err := q.produce(ctx, tombs...); err != nil {
		return err
	}
	if len(ids) > 0 && len(want) > 0 {
		missing := make([]string, 0, len(want))
		for id := range want {
			missing = append(missing, id)
		}
		slices.Sort(missing)
		return fmt.Errorf("%w: %s", queue.ErrNotFound, strings.Join(missing, ", "))
	}
	return nil
}
