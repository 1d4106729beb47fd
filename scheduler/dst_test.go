package scheduler_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/outrigger-dev/outrigger/scheduler"
)

func nop(context.Context, scheduler.Run) error { return nil }

// ticksFrom returns the first n ticks of spec after from, formatted in loc.
func ticksFrom(t *testing.T, loc *time.Location, policy scheduler.DSTPolicy, spec string, from time.Time, n int) []string {
	t.Helper()
	s, err := scheduler.NewLocal(scheduler.WithLocation(loc), scheduler.WithDST(policy))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop(context.Background())
	if err := s.Cron("j", spec, nop); err != nil {
		t.Fatal(err)
	}
	var out []string
	at := from
	for range n {
		next, err := s.NextAfter("j", at)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, next.In(loc).Format("01-02 15:04:05 MST"))
		at = next
	}
	return out
}

// TestDST checks every policy on the spring-forward and fall-back days of
// America/New_York and Europe/Berlin (2025).
func TestDST(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	V, O, S, R := scheduler.DSTVixie, scheduler.DSTRunOnce, scheduler.DSTSkip, scheduler.DSTRealClock
	tests := []struct {
		loc      *time.Location
		policies []scheduler.DSTPolicy
		spec     string
		from     time.Time
		want     string
	}{
		// New York spring forward: 2025-03-09 02:00 EST -> 03:00 EDT.
		{ny, ps(V, O), "30 2 * * *", time.Date(2025, 3, 8, 12, 0, 0, 0, ny),
			"03-09 03:00:00 EDT, 03-10 02:30:00 EDT"}, // runs once right after the change
		{ny, ps(S, R), "30 2 * * *", time.Date(2025, 3, 8, 12, 0, 0, 0, ny),
			"03-10 02:30:00 EDT, 03-11 02:30:00 EDT"}, // skipped
		{ny, ps(V, O), "0,15,30 2 * * *", time.Date(2025, 3, 8, 12, 0, 0, 0, ny),
			"03-09 03:00:00 EDT, 03-10 02:00:00 EDT"}, // several skipped times: once
		{ny, ps(V, S, R), "15 * * * *", time.Date(2025, 3, 9, 0, 30, 0, 0, ny),
			"03-09 01:15:00 EST, 03-09 03:15:00 EDT, 03-09 04:15:00 EDT"}, // wildcard: real clock
		{ny, ps(O), "15 * * * *", time.Date(2025, 3, 9, 0, 30, 0, 0, ny),
			"03-09 01:15:00 EST, 03-09 03:00:00 EDT, 03-09 03:15:00 EDT"},
		{ny, ps(V, O, S, R), "0 30 2 * * *", time.Date(2025, 3, 10, 0, 0, 0, 0, ny),
			"03-10 02:30:00 EDT, 03-11 02:30:00 EDT"}, // ordinary day, 6 fields
		// New York fall back: 2025-11-02 02:00 EDT -> 01:00 EST.
		{ny, ps(V, O, S), "30 1 * * *", time.Date(2025, 11, 1, 12, 0, 0, 0, ny),
			"11-02 01:30:00 EDT, 11-03 01:30:00 EST"}, // once
		{ny, ps(R), "30 1 * * *", time.Date(2025, 11, 1, 12, 0, 0, 0, ny),
			"11-02 01:30:00 EDT, 11-02 01:30:00 EST, 11-03 01:30:00 EST"}, // twice
		{ny, ps(V, R), "*/30 * * * *", time.Date(2025, 11, 2, 0, 45, 0, 0, ny),
			"11-02 01:00:00 EDT, 11-02 01:30:00 EDT, 11-02 01:00:00 EST, 11-02 01:30:00 EST, 11-02 02:00:00 EST"},
		{ny, ps(O, S), "*/30 * * * *", time.Date(2025, 11, 2, 0, 45, 0, 0, ny),
			"11-02 01:00:00 EDT, 11-02 01:30:00 EDT, 11-02 02:00:00 EST, 11-02 02:30:00 EST"},
		{ny, ps(V, O, S, R), "@daily", time.Date(2025, 11, 1, 12, 0, 0, 0, ny),
			"11-02 00:00:00 EDT, 11-03 00:00:00 EST"},
		{ny, ps(V), "0 0 1 * * *", time.Date(2025, 11, 1, 12, 0, 0, 0, ny),
			"11-02 01:00:00 EDT, 11-03 01:00:00 EST"},
		// Berlin spring forward: 2025-03-30 02:00 CET -> 03:00 CEST.
		{berlin, ps(V, O), "30 2 * * *", time.Date(2025, 3, 29, 12, 0, 0, 0, berlin),
			"03-30 03:00:00 CEST, 03-31 02:30:00 CEST"},
		{berlin, ps(S, R), "30 2 * * *", time.Date(2025, 3, 29, 12, 0, 0, 0, berlin),
			"03-31 02:30:00 CEST, 04-01 02:30:00 CEST"},
		{berlin, ps(V, R, S), "*/30 * * * *", time.Date(2025, 3, 30, 1, 15, 0, 0, berlin),
			"03-30 01:30:00 CET, 03-30 03:00:00 CEST, 03-30 03:30:00 CEST"},
		// Berlin fall back: 2025-10-26 03:00 CEST -> 02:00 CET.
		{berlin, ps(V, O, S), "30 2 * * *", time.Date(2025, 10, 25, 12, 0, 0, 0, berlin),
			"10-26 02:30:00 CEST, 10-27 02:30:00 CET"},
		{berlin, ps(R), "30 2 * * *", time.Date(2025, 10, 25, 12, 0, 0, 0, berlin),
			"10-26 02:30:00 CEST, 10-26 02:30:00 CET, 10-27 02:30:00 CET"},
		{berlin, ps(V, R), "0 * * * *", time.Date(2025, 10, 26, 1, 30, 0, 0, berlin),
			"10-26 02:00:00 CEST, 10-26 02:00:00 CET, 10-26 03:00:00 CET"},
		{berlin, ps(O, S), "0 * * * *", time.Date(2025, 10, 26, 1, 30, 0, 0, berlin),
			"10-26 02:00:00 CEST, 10-26 03:00:00 CET"},
		// A spec's own zone overrides the scheduler's.
		{ny, ps(V), "TZ=Europe/Berlin 30 2 * * *", time.Date(2025, 3, 29, 12, 0, 0, 0, berlin),
			"03-29 21:00:00 EDT, 03-30 20:30:00 EDT"},
	}
	for _, tc := range tests {
		for _, p := range tc.policies {
			want := strings.Split(tc.want, ", ")
			got := ticksFrom(t, tc.loc, p, tc.spec, tc.from, len(want))
			if strings.Join(got, ", ") != tc.want {
				t.Errorf("%s %q policy %v from %v:\n got %v\nwant %v", tc.loc, tc.spec, p, tc.from, got, want)
			}
		}
	}
}

func ps(p ...scheduler.DSTPolicy) []scheduler.DSTPolicy { return p }

// TestDSTJobOptionOverrides checks that the DST job option wins over WithDST.
func TestDSTJobOptionOverrides(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	s, err := scheduler.NewLocal(scheduler.WithLocation(ny), scheduler.WithDST(scheduler.DSTSkip))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Cron("a", "30 2 * * *", nop); err != nil {
		t.Fatal(err)
	}
	if err := s.Cron("b", "30 2 * * *", nop, scheduler.DST(scheduler.DSTVixie)); err != nil {
		t.Fatal(err)
	}
	from := time.Date(2025, 3, 8, 12, 0, 0, 0, ny)
	a, _ := s.NextAfter("a", from)
	b, _ := s.NextAfter("b", from)
	if want := time.Date(2025, 3, 10, 2, 30, 0, 0, ny); !a.Equal(want) {
		t.Errorf("DSTSkip: got %v, want %v", a, want)
	}
	if want := time.Date(2025, 3, 9, 3, 0, 0, 0, ny); !b.Equal(want) {
		t.Errorf("DST(DSTVixie): got %v, want %v", b, want)
	}
}
