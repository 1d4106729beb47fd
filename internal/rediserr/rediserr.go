// Package rediserr classifies the errors a Redis call returns, once, for every
// Outrigger package.
//
// A package that degrades gracefully when Redis fails (a circuit breaker, a
// fallback limiter, loading without the cache) must do so only when Redis is
// unavailable: the network failed, the server is loading, failing over or
// refusing writes for a while. An error that Redis answered and that means our
// code or the caller's data is wrong (a script that does not run, WRONGTYPE, a
// reply of the wrong shape) must reach the caller instead, or a bug hides
// behind the fallback for as long as nobody looks. [Classify] draws that line;
// [Reporter] logs each kind of such error once.
package rediserr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
)

// Class is what an error says about Redis and about the call.
type Class uint8

const (
	// OK is no error, or redis.Nil (a missing key is an answer).
	OK Class = iota
	// Unavailable means Redis could not answer now: a network error or
	// timeout, a closed or exhausted connection pool, unreachable sentinels,
	// or a server reply that says "not now" (LOADING, BUSY, CLUSTERDOWN,
	// TRYAGAIN, MASTERDOWN, READONLY after a failover, NOREPLICAS, MISCONF,
	// OOM, max clients, a MOVED or ASK left over after the client's
	// redirects), or an open circuit breaker. A fallback may answer instead.
	Unavailable
	// Canceled means the caller's context ended: nobody waits for an answer.
	Canceled
	// Invalid means Redis answered and the answer says that the code or the
	// data is wrong: a script error (ERR user_script, ERR Error running
	// script), WRONGTYPE, an unknown command or argument, an auth or
	// permission error, or a reply of the wrong shape ([ErrBadReply]). It must
	// be returned to the caller, never hidden by a fallback, and must not open
	// a circuit breaker (Redis is up).
	Invalid
)

// String returns "ok", "unavailable", "canceled" or "invalid".
func (c Class) String() string {
	switch c {
	case OK:
		return "ok"
	case Unavailable:
		return "unavailable"
	case Canceled:
		return "canceled"
	case Invalid:
		return "invalid"
	}
	return fmt.Sprintf("Class(%d)", uint8(c))
}

// ErrBadReply marks a reply that Redis sent but that does not have the shape
// the code expects (a script's reply that does not parse, a value that does
// not decode). Wrap it with [BadReply]; [Classify] reports it as [Invalid].
var ErrBadReply = errors.New("unexpected reply from redis")

// BadReply returns an error wrapping [ErrBadReply] with a description.
func BadReply(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadReply, fmt.Sprintf(format, args...))
}

// unavailableReplies are the prefixes of the server replies that mean "not
// now": the command did not run because of the server's state, and the same
// command may succeed later or elsewhere.
var unavailableReplies = []string{
	"LOADING ",     // restarting, loading its data set
	"BUSY ",        // running a long script
	"CLUSTERDOWN ", // the slot is not served
	"TRYAGAIN ",    // a slot migration is in progress
	"MASTERDOWN ",  // a replica that lost its master
	"READONLY ",    // a replica (a failover demoted the node)
	"NOREPLICAS ",  // min-replicas-to-write not met
	"MISCONF ",     // cannot persist, refuses writes
	"OOM ",         // maxmemory reached
	"MOVED ",       // redirects left after the client's MaxRedirects
	"ASK ",
	"ERR max number of clients reached",
	"UNBLOCKED ", // a blocked client unblocked by a failover
}

// shapeErrors are the prefixes of go-redis' own errors for a reply of a type
// the command did not expect: they say the code is wrong, not the network.
var shapeErrors = []string{
	"redis: unexpected type",
	"redis: got ",
	"redis: can't parse",
	"redis: invalid ",
	"redis: unexpected response",
}

// Classify returns the class of err, an error returned by go-redis or by a
// package around a Redis call.
func Classify(err error) Class {
	if err == nil || errors.Is(err, redis.Nil) {
		return OK
	}
	var num *strconv.NumError
	if errors.Is(err, ErrBadReply) || errors.As(err, &num) {
		// a reply that does not parse as the number it must be
		return Invalid
	}
	// A dial that timed out under a context deadline is the network's
	// failure, not the caller's: go-redis wraps both.
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return Unavailable
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return Canceled
	}
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return Unavailable
	}
	var re redis.Error
	if errors.As(err, &re) {
		msg := re.Error()
		for _, p := range unavailableReplies {
			if strings.HasPrefix(msg, p) {
				return Unavailable
			}
		}
		return Invalid
	}
	if isShapeError(err) {
		return Invalid
	}
	// Everything else go-redis returns without a server reply is about
	// reaching a server: net errors, EOF, resets, pool timeouts, a closed
	// client, unreachable sentinels, a cluster with no nodes.
	return Unavailable
}

// isShapeError reports whether err, or an error it wraps, is go-redis' own
// error for a reply of a type the command did not expect. The whole chain
// is looked at: a package wraps the error with its context ("queue: renew
// leases: redis: unexpected type=int64 for Slice"), which hides the prefix
// from the outer message.
func isShapeError(err error) bool {
	for err != nil {
		msg := err.Error()
		for _, p := range shapeErrors {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if isShapeError(e) {
					return true
				}
			}
			return false
		default:
			return false
		}
	}
	return false
}

// ClassifyCtx is Classify for an error of a call made with ctx: when ctx has
// ended, the error is the caller's ([Canceled]) whatever it looks like (with
// ContextTimeoutEnabled go-redis turns the deadline into a read timeout).
func ClassifyCtx(ctx context.Context, err error) Class {
	if err != nil && !errors.Is(err, redis.Nil) && done(ctx) {
		return Canceled
	}
	return Classify(err)
}

// done reports whether ctx is cancelled or past its deadline. A read timeout
// that go-redis derived from ctx's deadline can return a moment before ctx's
// own timer has run, while ctx.Err() is still nil; the clock decides then.
func done(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// IsUnavailable reports whether err means that Redis could not answer now, so
// that a fallback may answer instead.
func IsUnavailable(err error) bool { return Classify(err) == Unavailable }

// IsInvalid reports whether err means that the code or the data is wrong.
func IsInvalid(err error) bool { return Classify(err) == Invalid }

// isNetwork reports whether err is a network-level failure; used by Kind.
func isNetwork(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// Kind returns a short label for err's kind, to log one line per kind: the
// server reply's code ("WRONGTYPE", "ERR user_script", "NOSCRIPT"), "bad
// reply", "network", "canceled", or "other".
func Kind(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrBadReply):
		return "bad reply"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	}
	var re redis.Error
	if errors.As(err, &re) {
		msg := re.Error()
		code, rest, _ := strings.Cut(msg, " ")
		if code == "ERR" {
			// "ERR user_script:125: ..." or "ERR Error running script ...":
			// the word after ERR names the failure well enough
			word, _, _ := strings.Cut(rest, " ")
			word, _, _ = strings.Cut(word, ":")
			return code + " " + word
		}
		return code
	}
	if isNetwork(err) {
		return "network"
	}
	return "other"
}
