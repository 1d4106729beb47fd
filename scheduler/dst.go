package scheduler

import (
	"fmt"
	"time"
)

// DSTPolicy says how a cron job behaves when a daylight-saving transition
// skips or repeats the wall-clock time it is scheduled at. Interval jobs
// (Every, @every) count real elapsed time and are never affected.
type DSTPolicy int

const (
	// DSTVixie is the default, as in Vixie/ISC cron. A fixed-time job (minute
	// and hour fields not starting with '*') whose local time is skipped by a
	// spring-forward runs once, at the instant of the change; one whose time
	// repeats in a fall-back hour runs once, at the first occurrence.
	// Wildcard jobs (minute or hour starting with '*', e.g. "*/30 * * * *",
	// "15 * * * *", @hourly) follow the real clock: skipped times do not
	// run, repeated times run twice.
	DSTVixie DSTPolicy = iota
	// DSTRunOnce treats every job like a fixed-time job under DSTVixie: each
	// matching local time runs exactly once, skipped times at the instant of
	// the change, repeated times at their first occurrence.
	DSTRunOnce
	// DSTSkip never runs at a time the spec does not name: skipped local
	// times do not run; repeated ones run once, at their first occurrence.
	DSTSkip
	// DSTRealClock follows the real clock for every job: skipped local times
	// do not run, repeated ones run twice (robfig/cron's behaviour).
	DSTRealClock
)

// String returns the policy's name.
func (p DSTPolicy) String() string {
	switch p {
	case DSTVixie:
		return "vixie"
	case DSTRunOnce:
		return "run-once"
	case DSTSkip:
		return "skip"
	case DSTRealClock:
		return "real-clock"
	}
	return fmt.Sprintf("DSTPolicy(%d)", int(p))
}

func (p DSTPolicy) valid() bool { return p >= DSTVixie && p <= DSTRealClock }

// modes returns whether skipped times run at the change (else they are
// dropped) and whether repeated times run at both occurrences.
func (cs *cronSchedule) modes() (gapRuns, repeatTwice bool) {
	switch cs.policy {
	case DSTRunOnce:
		return true, false
	case DSTSkip:
		return false, false
	case DSTRealClock:
		return false, true
	default: // DSTVixie
		if cs.wildcard {
			return false, true
		}
		return true, false
	}
}

// window is how far around an instant we look for zone transitions; wider
// than any UTC offset difference.
const window = 30 * 3600

// instants maps the civil time c (a UTC instant standing for a wall-clock
// time in cs.loc) to the instants it denotes: one normally, two in a
// repeated hour (earlier first), none in a skipped one, in which case gap is
// the instant of the change.
func instants(loc *time.Location, c time.Time, buf []int64) (out []int64, gap int64, isGap bool) {
	n := c.Unix()
	out = buf[:0]
	t := time.Unix(n-window, 0).In(loc)
	for {
		_, off := t.Zone()
		start, end := t.ZoneBounds()
		u := n - int64(off)
		if (start.IsZero() || u >= start.Unix()) && (end.IsZero() || u < end.Unix()) {
			if len(out) == 0 || out[len(out)-1] != u {
				out = append(out, u)
			}
		}
		if end.IsZero() || end.Unix() > n+window {
			break
		}
		nt := end.In(loc)
		_, noff := nt.Zone()
		if e := end.Unix(); e+int64(off) <= n && n < e+int64(noff) {
			gap, isGap = e, true
		}
		t = nt
	}
	if len(out) > 0 {
		isGap = false
	}
	return out, gap, isGap
}

// offsetRange returns the smallest and largest UTC offsets in effect in loc
// within window seconds of u.
func offsetRange(loc *time.Location, u int64) (lo, hi int64) {
	t := time.Unix(u-window, 0).In(loc)
	_, off := t.Zone()
	lo, hi = int64(off), int64(off)
	for {
		_, end := t.ZoneBounds()
		if end.IsZero() || end.Unix() > u+window {
			return lo, hi
		}
		t = end.In(loc)
		_, off := t.Zone()
		lo, hi = min(lo, int64(off)), max(hi, int64(off))
	}
}

// next returns the first tick strictly after t.
//
// Civil matches are enumerated in wall-clock order from the earliest civil
// time that could map to an instant after t; because repeated and skipped
// hours make the civil-to-instant mapping non-monotonic, the search
// continues until no later civil time can map to an earlier instant.
func (cs *cronSchedule) next(t time.Time) (time.Time, bool) {
	gapRuns, twice := cs.modes()
	lo, _ := offsetRange(cs.loc, t.Unix())
	fl := t.Unix()
	if t.Before(time.Unix(fl, 0)) { // negative fractional part cannot happen, but be safe
		fl--
	}
	c := time.Unix(fl+lo-1, 0).UTC()
	var (
		best    int64
		found   bool
		bestHi  int64
		buf     [4]int64
		limitYr = t.UTC().Year() + horizonYears + 1
	)
	for {
		var ok bool
		c, ok = cs.nextCivil(c)
		if !ok || c.Year() > limitYr {
			break
		}
		if found && c.Unix() >= best+bestHi {
			break
		}
		us, gap, isGap := instants(cs.loc, c, buf[:])
		var cand []int64
		switch {
		case isGap:
			if gapRuns {
				cand = []int64{gap}
			}
		case len(us) == 2 && !twice:
			cand = us[:1]
		default:
			cand = us
		}
		for _, u := range cand {
			if time.Unix(u, 0).After(t) && (!found || u < best) {
				best, found = u, true
				_, bestHi = offsetRange(cs.loc, best)
			}
		}
	}
	if !found {
		return time.Time{}, false
	}
	return time.Unix(best, 0).In(cs.loc), true
}
