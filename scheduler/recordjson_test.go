package scheduler

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestRecordJSON: appendJSON writes what json.Marshal writes, for plain
// records and for strings and times that need care.
func TestRecordJSON(t *testing.T) {
	loc := time.FixedZone("X", -(3*3600 + 30*60))
	base := RunRecord{
		Job: "job-1", Tick: time.Unix(1_700_000_000, 0).UTC(), Node: "host:42:ab",
		Start: time.Unix(1_700_000_000, 123_456_789).UTC(), End: time.Unix(1_700_000_001, 5_000).In(loc),
		Attempt: 1, Kind: KindTick,
	}
	cases := []struct {
		name string
		edit func(r *RunRecord)
	}{
		{name: "plain"},
		{name: "error-token-skipped", edit: func(r *RunRecord) {
			r.Error, r.Token, r.Skipped, r.Attempt = "boom", 1_764_000_000_000_000, true, 0
		}},
		{name: "escapes", edit: func(r *RunRecord) {
			r.Error = "quote \" backslash \\ tab \t nl \n <html> & \u2028 \x01 é \xff"
			r.Job = "a\"b"
		}},
		{name: "zero-times", edit: func(r *RunRecord) { r.Tick, r.Start, r.End = time.Time{}, time.Time{}, time.Time{} }},
		{name: "monotonic", edit: func(r *RunRecord) { r.End = time.Now() }},
		{name: "kinds", edit: func(r *RunRecord) { r.Kind = KindCatchUp }},
		{name: "year-out-of-range", edit: func(r *RunRecord) { r.End = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := base
			if tc.edit != nil {
				tc.edit(&r)
			}
			want, err := json.Marshal(r)
			if err != nil {
				want = nil // appendJSON fails as json.Marshal does
			}
			got := r.appendJSON(nil)
			assert.Equal(t, string(want), string(got))
		})
	}
}
