package scheduler

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"
)

func mustLoad(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return loc
}

// randField returns a random cron field over [lo, hi].
func randField(r *rand.Rand, lo, hi int, starBias bool) string {
	n := hi - lo + 1
	switch k := r.IntN(8); {
	case k == 0 || (starBias && k < 3):
		return "*"
	case k == 1:
		return fmt.Sprintf("*/%d", 1+r.IntN(min(n, 20)))
	case k == 2:
		a := lo + r.IntN(n)
		return fmt.Sprintf("%d/%d", a, 1+r.IntN(min(n, 15)))
	case k == 3:
		a := lo + r.IntN(n)
		b := a + r.IntN(hi-a+1)
		return fmt.Sprintf("%d-%d", a, b)
	case k == 4:
		return fmt.Sprintf("%d,%d", lo+r.IntN(n), lo+r.IntN(n))
	default:
		return fmt.Sprint(lo + r.IntN(n))
	}
}

func randSpec(r *rand.Rand, seconds bool) string {
	f := []string{
		randField(r, 0, 59, false), // minute
		randField(r, 0, 23, false), // hour
		randField(r, 1, 31, true),  // dom
		randField(r, 1, 12, true),  // month
		randField(r, 0, 6, true),   // dow
	}
	// Bias hours towards the DST-relevant early morning.
	if r.IntN(2) == 0 {
		f[1] = []string{"2", "1", "3", "1-3", "2,3", "0-4/2", "*/2", "*"}[r.IntN(8)]
	}
	if seconds {
		f = append([]string{randField(r, 0, 59, false)}, f...)
	}
	return strings.Join(f, " ")
}

// offsetAt returns the UTC offset of u (unix seconds) in loc.
func offsetAt(loc *time.Location, u int64) int64 {
	_, off := time.Unix(u, 0).In(loc).Zone()
	return int64(off)
}

func naive(loc *time.Location, u int64) time.Time {
	return time.Unix(u+offsetAt(loc, u), 0).UTC()
}

// bruteNext is the oracle: it walks the real timeline step by step (a minute
// for 5-field specs, a second for 6-field ones) and applies the DST policy
// by its definition. It returns false when nothing fires before limit.
func bruteNext(cs *cronSchedule, t time.Time, step int64, limit time.Time) (time.Time, bool) {
	gapRuns, twice := cs.modes()
	loc := cs.loc
	u := t.Unix() - t.Unix()%step
	if u > t.Unix() {
		u -= step
	}
	for ; u <= limit.Unix(); u += step {
		// A forward transition at u: civil times in the gap may fire at u.
		if gapRuns && offsetAt(loc, u) > offsetAt(loc, u-1) {
			from, to := naive(loc, u-1).Add(time.Second), naive(loc, u)
			for c := from; c.Before(to); c = c.Add(time.Duration(step) * time.Second) {
				if cs.matchesCivil(c) && time.Unix(u, 0).After(t) {
					return time.Unix(u, 0), true
				}
			}
		}
		c := naive(loc, u)
		if !cs.matchesCivil(c) || !time.Unix(u, 0).After(t) {
			continue
		}
		if twice {
			return time.Unix(u, 0), true
		}
		// Once: fire only at the first occurrence of this civil time.
		first := true
		for _, d := range []int64{1800, 3600, 7200} {
			if naive(loc, u-d).Equal(c) {
				first = false
			}
		}
		if first {
			return time.Unix(u, 0), true
		}
	}
	return time.Time{}, false
}

var transitions = []string{
	"2024-03-10T02:00:00-05:00", "2024-11-03T01:00:00-04:00", // New York
	"2025-03-09T02:00:00-05:00", "2025-11-02T01:00:00-04:00",
	"2025-03-30T02:00:00+01:00", "2025-10-26T02:00:00+02:00", // Berlin
	"2026-03-29T02:00:00+01:00", "2026-10-25T02:00:00+02:00",
	"2025-04-06T02:00:00+11:00", "2025-10-05T02:00:00+10:30", // Lord Howe (30 min DST)
}

// TestNextAfterMatchesBruteForce is the property test: for random specs,
// zones, policies and times around DST transitions, the schedule's next tick
// equals the brute-force enumeration's.
func TestNextAfterMatchesBruteForce(t *testing.T) {
	t.Parallel()
	zones := []*time.Location{
		mustLoad(t, "America/New_York"), mustLoad(t, "Europe/Berlin"),
		mustLoad(t, "Australia/Lord_Howe"), time.UTC,
	}
	r := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	n := 3000
	if testing.Short() {
		n = 500
	}
	for i := range n {
		seconds := i%5 == 4
		spec := randSpec(r, seconds)
		loc := zones[r.IntN(len(zones))]
		policy := DSTPolicy(r.IntN(4))
		sc, err := parseSpec(spec, loc, policy)
		if err != nil {
			continue // e.g. a day that never exists
		}
		cs := sc.(*cronSchedule)
		tr, _ := time.Parse(time.RFC3339, transitions[r.IntN(len(transitions))])
		span := 36 * time.Hour
		if r.IntN(2) == 0 {
			span = 4 * time.Hour // close to the transition
		}
		from := tr.Add(time.Duration(r.Int64N(int64(span))) - span*2/3).
			Add(time.Duration(r.IntN(1000)) * time.Millisecond)
		step, window := int64(60), 3*24*time.Hour
		if seconds {
			step, window = 1, 3*time.Hour
		}
		limit := from.Add(window)
		want, wok := bruteNext(cs, from, step, limit)
		got, gok := cs.next(from)
		if wok {
			if !gok || !got.Equal(want) {
				t.Fatalf("spec %q in %s, policy %v, after %v: got %v (%v), want %v",
					spec, loc, policy, from.In(loc), got.In(loc), gok, want.In(loc))
			}
		} else if gok && !got.After(limit) {
			t.Fatalf("spec %q in %s, policy %v, after %v: got %v, brute force found nothing before %v",
				spec, loc, policy, from.In(loc), got.In(loc), limit.In(loc))
		}
		// Chain: the tick after got is after got.
		if gok {
			if n2, ok := cs.next(got); ok && !n2.After(got) {
				t.Fatalf("spec %q: next(%v) = %v, not after it", spec, got, n2)
			}
		}
	}
}

// TestNextCivilMatchesRobfig checks the civil-time matcher against
// robfig/cron's Next in UTC, where it has no DST problems.
func TestNextCivilMatchesRobfig(t *testing.T) {
	r := rand.New(rand.NewPCG(2, uint64(time.Now().UnixNano())))
	for range 3000 {
		seconds := r.IntN(3) == 0
		spec := randSpec(r, seconds)
		checkCivil(t, spec, time.Date(2020+r.IntN(10), time.Month(1+r.IntN(12)), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), 0, time.UTC))
	}
}

func checkCivil(t *testing.T, spec string, from time.Time) {
	t.Helper()
	sc, err := parseSpec(spec, time.UTC, DSTVixie)
	if err != nil {
		return
	}
	cs := sc.(*cronSchedule)
	p := parser5
	if len(strings.Fields(spec)) == 6 {
		p = parser6
	}
	rs, err := p.Parse(spec)
	if err != nil {
		t.Fatalf("robfig rejects %q which we accepted: %v", spec, err)
	}
	rss := rs.(*cron.SpecSchedule)
	rss.Location = time.UTC
	want := rss.Next(from)
	got, ok := cs.nextCivil(from)
	if want.IsZero() {
		// robfig gives up after five years; we look nine.
		if ok && got.Before(from.AddDate(5, 0, 0)) {
			t.Fatalf("spec %q after %v: got %v, robfig found nothing", spec, from, got)
		}
		return
	}
	if !ok || !got.Equal(want) {
		t.Fatalf("spec %q after %v: got %v (%v), want %v", spec, from, got, ok, want)
	}
	if g2, ok := cs.next(from); !ok || !g2.Equal(want) {
		t.Fatalf("spec %q after %v in UTC: next = %v, want %v", spec, from, g2, want)
	}
}

// FuzzParseSpec: parsing never panics, and whatever parses agrees with
// robfig in UTC and yields strictly increasing ticks in New York.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{
		"* * * * *", "0 30 2 * * *", "*/30 * * * *", "@daily", "@every 90s", "TZ=Europe/Berlin 0 9 * * 1-5",
		"0 0 29 2 *", "5 4 * * sun", "0 0 30 2 *", "CRON_TZ=", "TZ=X", "@every -1s", "1-2/0 * * * *",
		"0 0 1,15 * 1", "59 23 31 12 *", "*/7 */5 */3 */2 */4",
	} {
		f.Add(s, int64(1735689600))
	}
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, spec string, at int64) {
		at = 946684800 + (at%(40*365*86400)+40*365*86400)%(40*365*86400) // 2000..2040
		sc, err := parseSpec(spec, ny, DSTVixie)
		if err != nil {
			return
		}
		from := time.Unix(at, 0)
		n1, ok := sc.next(from)
		if !ok {
			return
		}
		if !n1.After(from) {
			t.Fatalf("spec %q: next(%v) = %v, not after", spec, from, n1)
		}
		if n2, ok := sc.next(n1); ok && !n2.After(n1) {
			t.Fatalf("spec %q: next(%v) = %v, not after", spec, n1, n2)
		}
		if cs, ok := sc.(*cronSchedule); ok && !strings.HasPrefix(strings.TrimSpace(spec), "@") &&
			!strings.Contains(spec, "TZ=") {
			checkCivil(t, strings.Join(strings.Fields(spec), " "), from.UTC())
			_ = cs
		}
	})
}

func TestIntervalTicksOnEpochMultiples(t *testing.T) {
	tests := []struct {
		every, offset time.Duration
		at, want      time.Time
	}{
		{time.Second, 0, time.Unix(10, 500), time.Unix(11, 0)},
		{time.Second, 0, time.Unix(10, 0), time.Unix(11, 0)},
		{time.Minute, 15 * time.Second, time.Unix(60, 0), time.Unix(75, 0)},
		{time.Minute, 15 * time.Second, time.Unix(75, 0), time.Unix(135, 0)},
		{time.Hour, -time.Minute, time.Unix(0, 0), time.Unix(3540, 0)},
		{30 * time.Second, 0, time.Unix(-31, 0), time.Unix(-30, 0)},
		{30 * time.Second, 0, time.Unix(-30, 0), time.Unix(0, 0)},
		{3 * time.Second, 0, time.Unix(-1, 0), time.Unix(0, 0)},
	}
	for _, tc := range tests {
		got, _ := newInterval(tc.every, tc.offset).next(tc.at)
		if !got.Equal(tc.want) {
			t.Errorf("every %v offset %v after %v: got %v, want %v", tc.every, tc.offset, tc.at.Unix(), got.Unix(), tc.want.Unix())
		}
	}
}

func TestJitterIsDeterministicAndSpread(t *testing.T) {
	mk := func(name string) *job {
		return &job{name: name, cfg: jobConfig{jitter: time.Minute}}
	}
	tick := time.Unix(1_700_000_000, 0)
	seen := map[time.Duration]bool{}
	for i := range 100 {
		a, b := mk(fmt.Sprint("job-", i)), mk(fmt.Sprint("job-", i))
		ja, jb := jitterFor(a, tick), jitterFor(b, tick)
		if ja != jb {
			t.Fatalf("jitter of the same job and tick differs: %v vs %v", ja, jb)
		}
		if ja < 0 || ja >= time.Minute {
			t.Fatalf("jitter %v outside [0, 1m)", ja)
		}
		seen[ja.Truncate(time.Second)] = true
	}
	if len(seen) < 40 {
		t.Errorf("100 jobs got only %d distinct jitter seconds out of 60", len(seen))
	}
	if j := mk("x"); jitterFor(j, tick) == jitterFor(j, tick.Add(time.Hour)) && jitterFor(j, tick) == jitterFor(j, tick.Add(2*time.Hour)) {
		t.Errorf("jitter does not depend on the tick")
	}
	if d := jitterFor(&job{name: "none"}, tick); d != 0 {
		t.Errorf("jitter without Jitter: got %v, want 0", d)
	}
}
