package kafka

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// Parking idle retry partitions.
//
// A consumer reads the main topic and every retry tier through one client,
// so every fetch request would carry every retry partition it owns (with the
// default four tiers, four times as many partitions as the main topic),
// although retry topics are empty most of the time. The prober therefore
// lists the retry topics' end offsets every probeInterval and parks (pauses
// fetching of) each owned retry partition this consumer has read up to its
// end, and resumes it as soon as its end moves past that. A retry or delayed
// message written by this process resumes its partition at once
// (Queue.wakeTier); one written by another process waits at most one probe
// interval more, and only if its partition was parked. A parked partition
// never has unread records: it is parked only when its position (after the
// latest record fetched, or the committed offset when nothing was fetched)
// is at its end offset, and franz-go does not advance a paused partition.

// The prober also runs as soon as retry partitions are assigned, so that a
// new member stops fetching its empty ones within a round trip or two rather
// than one probe interval later: until they are parked, every fetch request
// and response carries them (and the broker reads them).

// probeInterval is how often the prober looks at the retry topics: half the
// first tier, between 20ms and 500ms.
func (q *Queue) probeInterval() time.Duration {
	if q.probeEvery > 0 {
		return q.probeEvery
	}
	return min(max(q.tiers[0].delay/2, 20*time.Millisecond), 500*time.Millisecond)
}

// probeLoop probes every probeInterval until Leave.
func (d *driver) probeLoop() {
	defer close(d.probeDone)
	if len(d.q.tiers) == 0 {
		<-d.probeStop
		return
	}
	every := d.q.probeInterval()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-d.probeStop:
			return
		case <-t.C:
		case <-d.probeKick:
		}
		if d.stopping.Load() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), max(4*every, 5*time.Second))
		if err := d.probe(ctx); err != nil && !d.stopping.Load() {
			// Nothing is parked on a failed probe; parked partitions stay
			// parked until one succeeds.
			d.q.log.Debug("kafka: probing the retry topics failed", "err", err)
		}
		cancel()
	}
}

// probe parks the owned retry partitions read to their end and resumes the
// parked ones whose end moved.
func (d *driver) probe(ctx context.Context) error {
	type cand struct {
		p     *pstate
		pos   int64
		wakes int
	}
	var cs []cand
	unknown := false
	d.mu.Lock()
	for _, p := range d.parts {
		if p.tier < 0 || p.revoking || p.gone.Load() {
			continue
		}
		pos := p.position()
		cs = append(cs, cand{p, pos, p.wakes})
		unknown = unknown || pos < 0
	}
	d.mu.Unlock()
	if len(cs) == 0 {
		return nil
	}
	topics := d.q.topics(false)[1:]
	ends, err := d.q.adm.ListEndOffsets(ctx, topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return err
	}
	if unknown {
		// Where fetching starts for partitions nothing was fetched from:
		// the committed offset, or the start when there is none (or it is
		// out of range: franz-go resets to the start).
		commits, err := d.q.adm.FetchOffsets(ctx, d.q.group)
		if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
			return err
		}
		starts, err := d.q.adm.ListStartOffsets(ctx, topics...)
		if err == nil {
			err = starts.Error()
		}
		if err != nil {
			return err
		}
		for i, c := range cs {
			if c.pos >= 0 {
				continue
			}
			s, ok := starts.Lookup(c.p.tp.topic, c.p.tp.part)
			if !ok {
				continue
			}
			pos := s.Offset
			if o, ok := commits.Lookup(c.p.tp.topic, c.p.tp.part); ok && o.Err == nil && o.At >= s.Offset {
				pos = o.At
			}
			cs[i].pos = pos
		}
	}
	pause := map[string][]int32{}
	resume := map[string][]int32{}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range cs {
		p := c.p
		if d.parts[p.tp] != p || p.revoking || p.gone.Load() {
			continue
		}
		pos := p.position()
		if pos < 0 {
			if c.pos < 0 {
				continue
			}
			// Nothing fetched and nothing committed since: the committed
			// offset stays where fetching starts while p is owned.
			p.base, pos = c.pos, c.pos
		}
		end, ok := ends.Lookup(p.tp.topic, p.tp.part)
		if !ok || end.Err != nil {
			continue
		}
		switch {
		case !p.parked && pos >= end.Offset && p.wakes == c.wakes:
			// (A write this process made since the end offsets were listed
			// may be past end.)
			p.parked = true
			pause[p.tp.topic] = append(pause[p.tp.topic], p.tp.part)
		case p.parked && end.Offset > pos:
			p.parked = false
			resume[p.tp.topic] = append(resume[p.tp.topic], p.tp.part)
		}
	}
	// Under mu, so that a partition given up meanwhile is not paused after
	// abandon resumed it.
	if len(pause) > 0 {
		d.cl.PauseFetchPartitions(pause)
	}
	if len(resume) > 0 {
		d.cl.ResumeFetchPartitions(resume)
	}
	return nil
}

// unpark resumes fetching p if it is parked: pauses outlive assignments in
// franz-go. Called with mu held.
func (d *driver) unpark(p *pstate) {
	if p.parked {
		p.parked = false
		d.cl.ResumeFetchPartitions(map[string][]int32{p.tp.topic: {p.tp.part}})
	}
}

// wakePartition resumes the partition if this consumer owns it parked.
func (d *driver) wakePartition(t tp) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p := d.parts[t]; p != nil && !p.gone.Load() {
		p.wakes++
		d.unpark(p)
	}
}

// wakeTier tells this process's consumers that a record was written to a
// retry topic's partition, so that one that parked it reads it without
// waiting for its next probe.
func (q *Queue) wakeTier(topic string, part int32) {
	for _, d := range q.drivers() {
		d.wakePartition(tp{topic, part})
	}
}
