package scheduler

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// schedule computes a job's ticks. Implementations are immutable and safe for
// concurrent use.
type schedule interface {
	// next returns the first tick strictly after t, or false when there is
	// none within the search horizon.
	next(t time.Time) (time.Time, bool)
}

// interval ticks on multiples of every since the Unix epoch, plus offset.
type interval struct {
	every  time.Duration
	offset time.Duration // normalised into [0, every)
}

func newInterval(every, offset time.Duration) interval {
	offset %= every
	if offset < 0 {
		offset += every
	}
	return interval{every: every, offset: offset}
}

func (iv interval) next(t time.Time) (time.Time, bool) {
	ns := t.UnixNano() - int64(iv.offset)
	d := int64(iv.every)
	k := ns / d
	if ns < 0 && ns%d != 0 {
		k-- // floor division
	}
	return time.Unix(0, (k+1)*d+int64(iv.offset)), true
}

// cronSchedule is a parsed cron spec evaluated in a location under a DST
// policy. Matching runs on civil (wall-clock) times represented as UTC
// instants, where there are no gaps or repeats; the civil times are then
// mapped to instants in loc (see dst.go).
type cronSchedule struct {
	spec *cron.SpecSchedule
	loc  *time.Location
	// wildcard reports whether the spec's minute or hour field starts with
	// '*' (Vixie cron's MIN_STAR|HR_STAR): such jobs follow the real clock
	// under DSTVixie.
	wildcard bool
	policy   DSTPolicy
}

var (
	parser5 = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	parser6 = cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
)

// parseSpec parses a 5-field (minute precision), 6-field (leading seconds
// field) or descriptor spec (@yearly, @annually, @monthly, @weekly, @daily,
// @midnight, @hourly, @every <duration>). A leading "TZ=<zone>" or
// "CRON_TZ=<zone>" overrides loc for this spec.
func parseSpec(spec string, loc *time.Location, policy DSTPolicy) (schedule, error) {
	s := strings.TrimSpace(spec)
	if s == "" {
		return nil, fmt.Errorf("empty spec")
	}
	if strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ=") {
		eq := strings.IndexByte(s, '=')
		sp := strings.IndexAny(s, " \t")
		if sp < 0 {
			return nil, fmt.Errorf("spec %q has a time zone but no schedule", spec)
		}
		l, err := time.LoadLocation(s[eq+1 : sp])
		if err != nil {
			return nil, fmt.Errorf("spec %q: bad time zone: %v", spec, err)
		}
		loc = l
		s = strings.TrimSpace(s[sp:])
	}
	if strings.HasPrefix(s, "@every") {
		rest := strings.TrimSpace(strings.TrimPrefix(s, "@every"))
		d, err := time.ParseDuration(rest)
		if err != nil {
			return nil, fmt.Errorf("spec %q: bad @every duration: %v", spec, err)
		}
		if d <= 0 {
			return nil, fmt.Errorf("spec %q: @every duration must be > 0, got %v", spec, d)
		}
		if d < time.Millisecond {
			return nil, fmt.Errorf("spec %q: @every duration must be >= 1ms, got %v", spec, d)
		}
		return newInterval(d, 0), nil
	}
	var (
		p      cron.Parser
		fields []string
	)
	if strings.HasPrefix(s, "@") {
		p = parser5
	} else {
		fields = strings.Fields(s)
		switch len(fields) {
		case 5:
			p = parser5
		case 6:
			p = parser6
		default:
			return nil, fmt.Errorf("spec %q: want 5 fields (minute hour dom month dow) or 6 (with leading seconds), got %d", spec, len(fields))
		}
		s = strings.Join(fields, " ")
	}
	sc, err := p.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("spec %q: %v", spec, err)
	}
	ss, ok := sc.(*cron.SpecSchedule)
	if !ok { // cannot happen: @every is handled above
		return nil, fmt.Errorf("spec %q: unsupported schedule type %T", spec, sc)
	}
	cs := &cronSchedule{spec: ss, loc: loc, policy: policy}
	switch {
	case s == "@hourly":
		cs.wildcard = true
	case fields != nil:
		minute, hour := fields[0], fields[1]
		if len(fields) == 6 {
			minute, hour = fields[1], fields[2]
		}
		cs.wildcard = strings.HasPrefix(minute, "*") || strings.HasPrefix(hour, "*") ||
			strings.HasPrefix(minute, "?") || strings.HasPrefix(hour, "?")
	}
	// Reject specs that can never fire (e.g. "0 0 30 2 *"): the horizon
	// covers the longest gap between leap days (8 years, 2096-2104).
	if _, ok := cs.nextCivil(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Add(-time.Second)); !ok {
		return nil, fmt.Errorf("spec %q never matches a date", spec)
	}
	return cs, nil
}

// horizonYears bounds the search for the next civil match.
const horizonYears = 9

const starBit = 1 << 63

// nextCivil returns the first civil time strictly after c (a UTC instant
// standing for a wall-clock time) that matches the spec, to the second.
func (cs *cronSchedule) nextCivil(c time.Time) (time.Time, bool) {
	s := cs.spec
	t := c.Truncate(time.Second).Add(time.Second)
	limit := t.Year() + horizonYears
	for t.Year() <= limit {
		if s.Month&(1<<uint(t.Month())) == 0 {
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC)
			continue
		}
		if !cs.dayMatches(t) {
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, time.UTC)
			continue
		}
		h, ok := nextBit(s.Hour, t.Hour(), 23)
		if !ok {
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, time.UTC)
			continue
		}
		if h != t.Hour() {
			t = time.Date(t.Year(), t.Month(), t.Day(), h, 0, 0, 0, time.UTC)
		}
		m, ok := nextBit(s.Minute, t.Minute(), 59)
		if !ok {
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour()+1, 0, 0, 0, time.UTC)
			continue
		}
		if m != t.Minute() {
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), m, 0, 0, time.UTC)
		}
		sec, ok := nextBit(s.Second, t.Second(), 59)
		if !ok {
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute()+1, 0, 0, time.UTC)
			continue
		}
		return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), sec, 0, time.UTC), true
	}
	return time.Time{}, false
}

// nextBit returns the lowest set bit of mask in [from, max].
func nextBit(mask uint64, from, max int) (int, bool) {
	for i := from; i <= max; i++ {
		if mask&(1<<uint(i)) != 0 {
			return i, true
		}
	}
	return 0, false
}

// dayMatches applies cron's day rule: when either day field is a plain '*',
// both must match; otherwise either may.
func (cs *cronSchedule) dayMatches(t time.Time) bool {
	s := cs.spec
	dom := s.Dom&(1<<uint(t.Day())) != 0
	dow := s.Dow&(1<<uint(t.Weekday())) != 0
	if s.Dom&starBit != 0 || s.Dow&starBit != 0 {
		return dom && dow
	}
	return dom || dow
}

// matchesCivil reports whether the civil time c matches the spec (used by
// tests and the brute-force oracle).
func (cs *cronSchedule) matchesCivil(c time.Time) bool {
	s := cs.spec
	return s.Second&(1<<uint(c.Second())) != 0 && s.Minute&(1<<uint(c.Minute())) != 0 &&
		s.Hour&(1<<uint(c.Hour())) != 0 && s.Month&(1<<uint(c.Month())) != 0 && cs.dayMatches(c)
}
