package historytest

import "errors"

// Outcome is what a client was told about an operation.
type Outcome int

// Outcomes, from the client's point of view.
const (
	// OK: the operation was acknowledged.
	OK Outcome = iota + 1
	// Failed: the server answered with an error; the operation should not
	// have taken effect.
	Failed
	// Unknown: no answer (timeout, connection lost, cancelled): the operation
	// may or may not have taken effect.
	Unknown
)

// String returns "ok", "failed" or "unknown".
func (o Outcome) String() string {
	switch o {
	case OK:
		return "ok"
	case Failed:
		return "failed"
	case Unknown:
		return "unknown"
	}
	return "invalid"
}

// OutcomeOf classifies an operation's error: nil is [OK]; an error reply
// from the server (an error in the chain with a RedisError method, as
// go-redis replies have) is [Failed]; anything else — timeouts, connection
// errors, context errors, errors of unknown origin — is [Unknown], the only
// safe reading when the client cannot know.
func OutcomeOf(err error) Outcome {
	if err == nil {
		return OK
	}
	var reply interface{ RedisError() }
	if errors.As(err, &reply) {
		return Failed
	}
	return Unknown
}

// merge returns the most informative of two outcomes of attempts with the
// same id: an acknowledgement beats everything, then uncertainty.
func merge(a, b Outcome) Outcome {
	rank := func(o Outcome) int {
		switch o {
		case OK:
			return 3
		case Unknown:
			return 2
		case Failed:
			return 1
		}
		return 0
	}
	if rank(b) > rank(a) {
		return b
	}
	return a
}
