package historytest

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Grant is one tenure of a lock as a holder saw it: the fencing token it
// got, when it started relying on the lock (acquired) and when it stopped
// (released, or gave up after losing it), and whether the fenced resource
// accepted its writes with that token. A holder that writes several times
// may record one Grant per write, with Start and End around that write.
type Grant struct {
	Token    uint64
	Holder   string
	Start    time.Time
	End      time.Time
	Accepted bool
}

// String returns "holder#token[start, end) accepted".
func (g Grant) String() string {
	acc := "rejected"
	if g.Accepted {
		acc = "accepted"
	}
	return fmt.Sprintf("%s#%d[%s, %s) %s", g.Holder, g.Token,
		g.Start.Format("15:04:05.000000"), g.End.Format("15:04:05.000000"), acc)
}

// Pair is two grants in conflict; A started first (or at the same time).
type Pair struct{ A, B Grant }

// LockHistory records lock tenures. The zero value is ready to use; it is
// safe for concurrent use.
type LockHistory struct {
	mu     sync.Mutex // protects grants
	grants []Grant
}

// Record adds a tenure to the history.
func (h *LockHistory) Record(g Grant) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.grants = append(h.grants, g)
}

// Grants returns a copy of the recorded tenures.
func (h *LockHistory) Grants() []Grant {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.grants)
}

// LockReport is the verdict of [LockHistory.Check].
type LockReport struct {
	// Grants and Accepted count the tenures recorded and those accepted.
	Grants, Accepted int
	// Overlaps: two accepted tenures (different holder or token) whose
	// [Start, End) intervals intersect: mutual exclusion failed where it
	// mattered.
	Overlaps []Pair
	// NonMonotonic: an accepted tenure started strictly after another accepted
	// one but carries a token that is not larger: the fence or the token
	// source went backwards.
	NonMonotonic []Pair
	// DuplicateTokens: one token handed to two holders.
	DuplicateTokens []Pair
	// GrantOverlaps: any two tenures of different holders that intersect,
	// accepted or not. Expected when a holder pauses past its TTL (that is
	// what fencing is for), so not a violation by itself.
	GrantOverlaps []Pair
	// Invalid: tenures that end before they start.
	Invalid []Grant
}

// Check judges the history. It costs O(n log n + k) for n tenures and k
// overlapping pairs.
func (h *LockHistory) Check() LockReport {
	gs := h.Grants()
	var r LockReport
	r.Grants = len(gs)
	valid := gs[:0:0]
	for _, g := range gs {
		if g.End.Before(g.Start) {
			r.Invalid = append(r.Invalid, g)
			continue
		}
		valid = append(valid, g)
	}
	slices.SortStableFunc(valid, func(a, b Grant) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return cmp.Compare(a.Token, b.Token)
	})
	var accepted []Grant
	for _, g := range valid {
		if g.Accepted {
			accepted = append(accepted, g)
		}
	}
	r.Accepted = len(accepted)
	r.Overlaps = overlaps(accepted, func(a, b Grant) bool { return a.Holder != b.Holder || a.Token != b.Token })
	r.GrantOverlaps = overlaps(valid, func(a, b Grant) bool { return a.Holder != b.Holder })

	// Tokens of accepted tenures must grow with their start time.
	var best Grant // accepted tenure with the largest token among earlier starts
	haveBest := false
	for i := 0; i < len(accepted); {
		j := i
		for j < len(accepted) && accepted[j].Start.Equal(accepted[i].Start) {
			j++
		}
		if haveBest {
			for _, g := range accepted[i:j] {
				if g.Token <= best.Token && (g.Token != best.Token || g.Holder != best.Holder) {
					r.NonMonotonic = append(r.NonMonotonic, Pair{best, g})
				}
			}
		}
		for _, g := range accepted[i:j] {
			if !haveBest || g.Token > best.Token {
				best, haveBest = g, true
			}
		}
		i = j
	}

	byToken := map[uint64]Grant{}
	reported := map[[2]string]bool{}
	for _, g := range valid {
		first, ok := byToken[g.Token]
		if !ok {
			byToken[g.Token] = g
			continue
		}
		key := [2]string{fmt.Sprint(g.Token), g.Holder}
		if first.Holder != g.Holder && !reported[key] {
			reported[key] = true
			r.DuplicateTokens = append(r.DuplicateTokens, Pair{first, g})
		}
	}
	return r
}

// overlaps returns the pairs of gs (sorted by Start) whose half-open
// intervals intersect and for which conflict is true.
func overlaps(gs []Grant, conflict func(a, b Grant) bool) []Pair {
	var out []Pair
	var active []Grant
	for _, g := range gs {
		active = slices.DeleteFunc(active, func(a Grant) bool { return !a.End.After(g.Start) })
		for _, a := range active {
			if conflict(a, g) && g.Start.Before(a.End) && a.Start.Before(g.End) {
				out = append(out, Pair{a, g})
			}
		}
		active = append(active, g)
	}
	return out
}

// Valid reports whether no accepted tenures overlap, accepted tokens never
// go backwards, no token went to two holders and every tenure is well
// formed.
func (r LockReport) Valid() bool {
	return len(r.Overlaps) == 0 && len(r.NonMonotonic) == 0 && len(r.DuplicateTokens) == 0 && len(r.Invalid) == 0
}

// Err returns nil when r is [LockReport.Valid], or an error that
// summarizes it.
func (r LockReport) Err() error {
	if r.Valid() {
		return nil
	}
	return fmt.Errorf("historytest: lock history invalid: %s", r)
}

// String summarizes the report, listing up to 5 pairs per anomaly.
func (r LockReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d tenures, %d accepted; overlapping accepted %d%s, non-monotonic tokens %d%s, duplicate tokens %d%s, invalid %d; overlapping grants %d (fenced or not)",
		r.Grants, r.Accepted, len(r.Overlaps), pairs(r.Overlaps), len(r.NonMonotonic), pairs(r.NonMonotonic),
		len(r.DuplicateTokens), pairs(r.DuplicateTokens), len(r.Invalid), len(r.GrantOverlaps))
	return b.String()
}

func pairs(ps []Pair) string {
	if len(ps) == 0 {
		return ""
	}
	var b strings.Builder
	for i, p := range ps {
		if i == 5 {
			b.WriteString(" …")
			break
		}
		fmt.Fprintf(&b, " (%s vs %s)", p.A, p.B)
	}
	return b.String()
}
