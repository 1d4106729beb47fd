package historytest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// g builds a grant from offsets in milliseconds.
func g(holder string, token uint64, start, end int, accepted bool) Grant {
	return Grant{Token: token, Holder: holder, Start: t0.Add(time.Duration(start) * time.Millisecond), End: t0.Add(time.Duration(end) * time.Millisecond), Accepted: accepted}
}

func TestLockCheck(t *testing.T) {
	tests := []struct {
		name          string
		grants        []Grant
		valid         bool
		overlaps      int
		nonMonotonic  int
		duplicates    int
		grantOverlaps int
		invalid       int
	}{
		{name: "empty", valid: true},
		{
			name:   "sequential tenures, growing tokens",
			grants: []Grant{g("a", 1, 0, 10, true), g("b", 2, 10, 20, true), g("a", 3, 25, 30, true)},
			valid:  true,
		},
		{
			name:   "recorded out of order",
			grants: []Grant{g("a", 3, 25, 30, true), g("a", 1, 0, 10, true), g("b", 2, 10, 20, true)},
			valid:  true,
		},
		{
			name:     "two accepted holders at once",
			grants:   []Grant{g("a", 1, 0, 10, true), g("b", 2, 5, 15, true)},
			overlaps: 1, grantOverlaps: 1,
		},
		{
			name: "paused holder fenced off: double grant but safe",
			// a pauses past its TTL; b gets the lock; a's late write is rejected.
			grants:        []Grant{g("a", 1, 0, 10, true), g("b", 2, 12, 30, true), g("a", 1, 10, 20, false)},
			valid:         true,
			grantOverlaps: 1,
		},
		{
			name: "paused holder not fenced",
			grants: []Grant{
				g("a", 1, 0, 10, true), g("b", 2, 12, 30, true), g("a", 1, 20, 21, true),
			},
			overlaps: 1, nonMonotonic: 1, grantOverlaps: 1,
		},
		{
			name:         "token goes backwards without overlap",
			grants:       []Grant{g("a", 5, 0, 10, true), g("b", 3, 20, 30, true)},
			nonMonotonic: 1,
		},
		{
			name:         "a restart empty reissues a token",
			grants:       []Grant{g("a", 7, 0, 10, true), g("b", 7, 20, 30, true)},
			nonMonotonic: 1, duplicates: 1,
		},
		{
			name:   "same holder, same token, several writes",
			grants: []Grant{g("a", 4, 0, 1, true), g("a", 4, 2, 3, true), g("a", 4, 5, 6, true)},
			valid:  true,
		},
		{
			name:   "touching intervals do not overlap",
			grants: []Grant{g("a", 1, 0, 10, true), g("b", 2, 10, 20, true)},
			valid:  true,
		},
		{
			name:    "ends before it starts",
			grants:  []Grant{g("a", 1, 10, 5, true)},
			invalid: 1,
		},
		{
			name: "three-way overlap",
			grants: []Grant{
				g("a", 1, 0, 100, true), g("b", 2, 10, 20, true), g("c", 3, 15, 30, true),
			},
			overlaps: 3, grantOverlaps: 3,
		},
		{
			name:       "duplicate token, second holder rejected",
			grants:     []Grant{g("a", 9, 0, 10, true), g("b", 9, 20, 30, false)},
			duplicates: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h LockHistory
			for _, gr := range tc.grants {
				h.Record(gr)
			}
			r := h.Check()
			require.Equal(t, tc.valid, r.Valid(), "report: %s", r)
			if tc.valid {
				require.NoError(t, r.Err())
			} else {
				require.Error(t, r.Err())
			}
			require.Len(t, r.Overlaps, tc.overlaps, "overlaps: %s", r)
			require.Len(t, r.NonMonotonic, tc.nonMonotonic, "non-monotonic: %s", r)
			require.Len(t, r.DuplicateTokens, tc.duplicates, "duplicate tokens: %s", r)
			require.Len(t, r.GrantOverlaps, tc.grantOverlaps, "grant overlaps: %s", r)
			require.Len(t, r.Invalid, tc.invalid, "invalid: %s", r)
			require.Equal(t, len(tc.grants), r.Grants)
		})
	}
}

func TestLockCheckReportsWhichPair(t *testing.T) {
	var h LockHistory
	a, b := g("a", 1, 0, 10, true), g("b", 2, 5, 15, true)
	h.Record(b)
	h.Record(a)
	r := h.Check()
	require.Equal(t, []Pair{{a, b}}, r.Overlaps)
	require.Contains(t, r.String(), "a#1[")
	require.Contains(t, r.Err().Error(), "overlapping accepted 1")
}
