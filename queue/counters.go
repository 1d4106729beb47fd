package queue

import "sync/atomic"

// Counters are running totals kept by one queue value (this process only),
// for metrics: export them with your Prometheus or OpenTelemetry code. The
// queue-wide picture, across replicas, is [Redis.Stats].
type Counters struct {
	// Published counts messages Publish and PublishBatch added.
	Published int64
	// Duplicates counts publishes dropped by WithDedupKey.
	Duplicates int64
	// Full counts publishes refused with ErrFull (each try of a blocked
	// publish counts).
	Full int64
	// Acked counts messages handled successfully and acknowledged.
	Acked int64
	// Retried counts failed attempts scheduled for a retry.
	Retried int64
	// DeadLettered counts messages moved to the dead letters.
	DeadLettered int64
	// Released counts messages handed back unprocessed at shutdown.
	Released int64
	// Panics counts handler panics (each also counts as a failure).
	Panics int64
	// Reclaimed counts messages taken over from a stalled consumer.
	Reclaimed int64
	// LeasesLost counts running messages another consumer reclaimed
	// because their lease could not be renewed in time.
	LeasesLost int64
	// Invalid counts Redis answers that meant a bug or bad data (a script
	// error, WRONGTYPE on a queue key, NOAUTH): Consume returns on the first
	// one instead of retrying it forever, and Publish returns it.
	Invalid int64
}

// counters is the live, atomic form of Counters.
type counters struct {
	published, duplicates, full                    atomic.Int64
	acked, retried, deadLettered, released, panics atomic.Int64
	reclaimed, leasesLost, invalid                 atomic.Int64
}

func (c *counters) snapshot() Counters {
	return Counters{
		Published:    c.published.Load(),
		Duplicates:   c.duplicates.Load(),
		Full:         c.full.Load(),
		Acked:        c.acked.Load(),
		Retried:      c.retried.Load(),
		DeadLettered: c.deadLettered.Load(),
		Released:     c.released.Load(),
		Panics:       c.panics.Load(),
		Reclaimed:    c.reclaimed.Load(),
		LeasesLost:   c.leasesLost.Load(),
		Invalid:      c.invalid.Load(),
	}
}

// countPublish records the outcome of one publish.
func (c *counters) countPublish(err error) {
	switch {
	case err == nil:
		c.published.Add(1)
	case err == ErrDuplicate:
		c.duplicates.Add(1)
	case err == ErrFull:
		c.full.Add(1)
	}
}

// countSettled records settled deliveries.
func (c *counters) countSettled(ss []settlement) {
	for _, s := range ss {
		switch s.kind {
		case settleAck:
			c.acked.Add(1)
		case settleRetry:
			c.retried.Add(1)
		case settleDead:
			c.deadLettered.Add(1)
		case settleRelease:
			c.released.Add(1)
		}
	}
}
