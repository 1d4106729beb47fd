package ratelimit

import "fmt"

// Fallback is what a Redis limiter does while Redis cannot answer (an error,
// or the circuit breaker is open): [FailOpen], [FailClosed] or [FailLocal].
// Results it decides carry Source = [SourceFallback].
type Fallback struct {
	mode   fallbackMode
	limits []Limit
}

type fallbackMode uint8

const (
	fallbackLocal fallbackMode = iota
	fallbackOpen
	fallbackClosed
)

var (
	// FailOpen allows every request while Redis is unavailable.
	FailOpen = Fallback{mode: fallbackOpen}
	// FailClosed denies every request while Redis is unavailable, with
	// RetryAfter set to the breaker's open time.
	FailClosed = Fallback{mode: fallbackClosed}
)

// FailLocal enforces limits in process, per replica, while Redis is
// unavailable: typically the global limit divided by the expected number of
// replicas, e.g. FailLocal(PerSecond(1000 / 4)). With no limits, the
// limiter's own limits are used (each replica then allows up to the whole
// global limit). A multi-limit limiter needs the same number of limits here.
func FailLocal(limits ...Limit) Fallback {
	return Fallback{mode: fallbackLocal, limits: append([]Limit(nil), limits...)}
}

// String returns "fail-open", "fail-closed" or "fail-local".
func (f Fallback) String() string {
	switch f.mode {
	case fallbackOpen:
		return "fail-open"
	case fallbackClosed:
		return "fail-closed"
	}
	return "fail-local"
}

func (f Fallback) validate() error {
	for i, l := range f.limits {
		if err := l.Validate(); err != nil {
			return fmt.Errorf("FailLocal limit %d: %w", i, err)
		}
	}
	return nil
}
