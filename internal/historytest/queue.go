package historytest

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
)

// QueueHistory records enqueue attempts and deliveries of uniquely
// identified messages. Give every message its own id; attempts that reuse
// an id (a retry by the application) count as one message, acknowledged if
// any attempt was. The zero value is ready to use; it is safe for concurrent
// use.
type QueueHistory struct {
	mu         sync.Mutex // protects the maps
	attempts   map[string]Outcome
	deliveries map[string]int
}

// Enqueue records an attempt to enqueue (or add) message id and the outcome
// the client saw. It panics on an invalid Outcome.
func (h *QueueHistory) Enqueue(id string, o Outcome) {
	if o < OK || o > Unknown {
		panic(fmt.Sprintf("historytest: invalid outcome %d for %q", int(o), id))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.attempts == nil {
		h.attempts = make(map[string]Outcome)
	}
	h.attempts[id] = merge(h.attempts[id], o)
}

// Dequeue records one delivery of message id (or its presence in a final
// read of a set).
func (h *QueueHistory) Dequeue(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.deliveries == nil {
		h.deliveries = make(map[string]int)
	}
	h.deliveries[id]++
}

// QueueReport is the verdict of [QueueHistory.Check]. Id lists are sorted.
type QueueReport struct {
	// Attempted is the number of distinct ids attempted; Acknowledged,
	// Failed and Unknown split them by outcome.
	Attempted, Acknowledged, Failed, Unknown int
	// Delivered is the number of distinct ids delivered; Deliveries counts
	// every delivery.
	Delivered, Deliveries int
	// Lost: acknowledged, never delivered.
	Lost []string
	// Duplicated: delivered more than once, with the number of deliveries.
	Duplicated map[string]int
	// Unexpected: delivered but never attempted.
	Unexpected []string
	// Recovered: attempted with outcome Failed or Unknown, delivered anyway.
	// Expected for Unknown; for Failed the error was misleading, and those ids
	// are also in FailedDelivered.
	Recovered []string
	// FailedDelivered: the subset of Recovered whose attempts all Failed.
	FailedDelivered []string
}

// Check compares attempts with deliveries.
func (h *QueueHistory) Check() QueueReport {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := QueueReport{Attempted: len(h.attempts), Delivered: len(h.deliveries), Duplicated: map[string]int{}}
	for id, o := range h.attempts {
		n := h.deliveries[id]
		switch o {
		case OK:
			r.Acknowledged++
			if n == 0 {
				r.Lost = append(r.Lost, id)
			}
		case Failed:
			r.Failed++
		case Unknown:
			r.Unknown++
		}
		if o != OK && n > 0 {
			r.Recovered = append(r.Recovered, id)
			if o == Failed {
				r.FailedDelivered = append(r.FailedDelivered, id)
			}
		}
	}
	for id, n := range h.deliveries {
		r.Deliveries += n
		if n > 1 {
			r.Duplicated[id] = n
		}
		if _, ok := h.attempts[id]; !ok {
			r.Unexpected = append(r.Unexpected, id)
		}
	}
	for _, s := range [][]string{r.Lost, r.Unexpected, r.Recovered, r.FailedDelivered} {
		slices.Sort(s)
	}
	return r
}

// Valid reports whether nothing was lost, duplicated or unexpected: the
// history of an exactly-once queue. An at-least-once queue may duplicate;
// check r.Lost and r.Unexpected alone.
func (r QueueReport) Valid() bool {
	return len(r.Lost) == 0 && len(r.Duplicated) == 0 && len(r.Unexpected) == 0
}

// Err returns nil when r is [QueueReport.Valid], or an error that
// summarizes it.
func (r QueueReport) Err() error {
	if r.Valid() {
		return nil
	}
	return fmt.Errorf("historytest: queue history invalid: %s", r)
}

// String summarizes the report, listing up to 10 ids per anomaly.
func (r QueueReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "attempted %d (ok %d, failed %d, unknown %d), delivered %d in %d deliveries; lost %d%s, duplicated %d%s, unexpected %d%s, recovered %d%s (failed but delivered %d)",
		r.Attempted, r.Acknowledged, r.Failed, r.Unknown, r.Delivered, r.Deliveries,
		len(r.Lost), ids(r.Lost), len(r.Duplicated), ids(slices.Sorted(maps.Keys(r.Duplicated))),
		len(r.Unexpected), ids(r.Unexpected), len(r.Recovered), ids(r.Recovered), len(r.FailedDelivered))
	return b.String()
}

func ids(s []string) string {
	if len(s) == 0 {
		return ""
	}
	if len(s) > 10 {
		return fmt.Sprintf(" %v…", s[:10])
	}
	return fmt.Sprintf(" %v", s)
}
