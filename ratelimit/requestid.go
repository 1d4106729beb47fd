package ratelimit

import (
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// RequestIDTTLFor returns a request-ID TTL (WithRequestIDTTL) that covers
// every copy client may send of one command: attempts × (ReadTimeout +
// WriteTimeout + MaxRetryBackoff) + 1s, where attempts is MaxRetries+1 (for
// a cluster client, also times MaxRedirects+1), between 1s and 5 minutes;
// 0 when the client never re-sends (MaxRetries: -1), and 30s for client
// types it cannot inspect.
func RequestIDTTLFor(client redis.UniversalClient) time.Duration {
	var attempts int
	var read, write, backoff time.Duration
	switch c := client.(type) {
	case interface{ Options() *redis.Options }:
		o := c.Options()
		attempts = max(o.MaxRetries, 0) + 1
		read, write, backoff = o.ReadTimeout, o.WriteTimeout, o.MaxRetryBackoff
	case interface{ Options() *redis.ClusterOptions }:
		o := c.Options()
		// the cluster client retries (MaxRedirects) around node clients
		// that may retry themselves (MaxRetries)
		attempts = (max(o.MaxRedirects, 0) + 1) * (max(o.MaxRetries, 0) + 1)
		read, write, backoff = o.ReadTimeout, o.WriteTimeout, o.MaxRetryBackoff
	default:
		return 30 * time.Second
	}
	if attempts <= 1 {
		return 0
	}
	per := max(read, 0) + max(write, 0) + max(backoff, 0)
	ttl := time.Duration(attempts)*per + time.Second
	return min(max(ttl, time.Second), 5*time.Minute)
}

// sendMark is the request-ID TTL argument of one script call. go-redis
// marshals a command's arguments each time it writes them, so the mark
// knows a re-sent copy (a retry after a timeout or a broken connection)
// from the first: it writes the TTL, and "r" + the TTL on every later
// write. The script refuses a re-sent copy when request IDs are off, since
// the first copy may have run.
//
// A copy that the server refused without running it (a Cluster MOVED or
// ASK redirect, TRYAGAIN, CLUSTERDOWN, LOADING, READONLY, MASTERDOWN, or
// NOSCRIPT) does not make the next one a re-send: the mark watches the
// command (Watch) and, at each write, looks at the error the previous write
// got. go-redis sets that error only between the attempts on different
// nodes, not between the retries on one node, so an error already seen at
// the previous write means nothing new is known, and the copy counts as
// re-sent. The mark errs on the side of refusing: the fallback then decides.
//
// One command's writes are sequential (go-redis writes, waits for the
// reply, then writes again), so the fields need no lock.
type sendMark struct {
	lim     *RedisLimiter
	cmd     *redis.Cmd // the EVALSHA command, when watched
	written bool       // a copy was written since the start (or a NOSCRIPT)
	last    error      // cmd.Err() at the previous write
	resent  bool       // a copy may have run: every later write is marked
}

// MarshalBinary implements encoding.BinaryMarshaler for go-redis.
func (m *sendMark) MarshalBinary() ([]byte, error) {
	var err error
	if m.cmd != nil {
		err = m.cmd.Err()
	}
	if m.written && !m.resent && (err == nil || err == m.last || !notRun(err)) {
		m.resent = true
	}
	m.written, m.last = true, err
	if m.resent {
		return m.lim.ridAgain, nil
	}
	return m.lim.ridFirst, nil
}

// Watch implements coalesce.CmdWatcher.
func (m *sendMark) Watch(cmd *redis.Cmd) { m.cmd = cmd }

// notRun reports whether err is a reply with which Redis refused a command
// without running it, and after which go-redis sends it again.
func notRun(err error) bool {
	for _, p := range [...]string{"MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN", "LOADING", "READONLY", "MASTERDOWN"} {
		if redis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}

// String returns the TTL argument as first sent (for logging hooks).
func (m *sendMark) String() string { return string(m.lim.ridFirst) }

// NoScript is called when Redis answered NOSCRIPT: if no copy that may
// have run was written, the next send is a first one.
func (m *sendMark) NoScript() {
	if !m.resent {
		m.written, m.last = false, nil
	}
}

// ErrResent is returned (wrapped) by a Redis limiter call whose script
// go-redis re-sent after a timeout or a broken connection, when request IDs
// are off (WithRequestIDTTL(0), the default): the re-sent copy is refused,
// because the first may already have counted. Like any Redis failure, the
// decision then comes from the fallback.
var ErrResent = errors.New("ratelimit: go-redis re-sent the script and the copy was refused, so that the request does not count twice")

// resentErr maps the script's refusal to ErrResent.
func resentErr(err error) error {
	if err != nil && redis.HasErrorPrefix(err, "OUTRIGGER_RESENT") {
		return fmt.Errorf("%w (%v)", ErrResent, err)
	}
	return err
}
