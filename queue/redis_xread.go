package queue

import (
	"bytes"
	"context"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/internal/rediserr"
)

// The consumer's reads of new entries take the reply of XREADGROUP as raw
// RESP bytes (go-redis's RawCmd) and parse it here, instead of letting
// go-redis build an XMessage with a map per entry: a read then costs a few
// allocations whatever the number of entries, rather than eight or so per
// entry. The messages are the same as those parseEntry makes from the
// XMessage (TestRawReadMatchesParseEntry).
//
// go-redis does not look into a raw reply: an error reply is not an error
// to it, so it neither follows a Cluster redirect (MOVED, ASK) nor retries
// after LOADING or TRYAGAIN. An error reply means that Redis ran nothing,
// so the read is then sent again as an ordinary XReadGroup, which does all
// that, and its result (entries or error) is the read's. A raw command also
// has no read timeout of its own, as go-redis gives a blocking XReadGroup
// (its BLOCK plus 10s): the raw form is used only with a client whose read
// timeout is at least the BLOCK plus rawReadMargin (see rawReadsOK).

// rawReadMargin is how much longer than a read's BLOCK the client's read
// timeout must be for the read to be sent as a raw command.
const rawReadMargin = time.Second

// rawReadsOK reports whether the blocking reads of c can be raw commands
// (see above): c is a *redis.Client or *redis.ClusterClient whose read
// timeout is off or at least block plus rawReadMargin.
func rawReadsOK(c redis.UniversalClient, block time.Duration) bool {
	rt, ok := readTimeout(c)
	return ok && (rt <= 0 || rt >= block+rawReadMargin)
}

// readRaw is the XREADGROUP of read as a raw command, parsed by
// parseXRead; an error reply sends it again with XReadGroup (see above).
func (c *redisConsumer) readRaw(ctx context.Context, a *redis.XReadGroupArgs) ([]*delivery, error) {
	cmd := redis.NewRawCmd(ctx, "xreadgroup", "group", a.Group, a.Consumer, "count", a.Count,
		"block", a.Block.Milliseconds(), "streams", a.Streams[0], a.Streams[1], a.Streams[2], a.Streams[3])
	_ = c.q.client.Process(ctx, cmd)
	raw, err := cmd.Result()
	if err != nil {
		return nil, err
	}
	if len(raw) > 0 && (raw[0] == '-' || raw[0] == '!') {
		res, err := c.q.client.XReadGroup(ctx, a).Result()
		if err != nil {
			return nil, err
		}
		for _, st := range res {
			if st.Stream == c.q.stream {
				return c.deliveries(ctx, st.Messages), nil
			}
		}
		return nil, nil
	}
	ds, ghosts, err := parseXRead(raw, c.q.stream)
	if err != nil {
		return nil, err
	}
	c.ackGhosts(ctx, ghosts)
	return ds, nil
}

// parseXRead returns the deliveries of the entries of stream in raw, the
// RESP2 or RESP3 reply of an XREADGROUP, and the IDs of those of its
// entries that have no fields (deleted while pending). Entries of other
// streams are skipped. A reply that is not one of XREADGROUP's shape is an
// error matching rediserr.ErrBadReply.
//
// The entry and message IDs share one string, the bodies one array: five
// allocations per call (six with ghosts), plus the headers and last errors
// of the entries that have them.
func parseXRead(raw []byte, stream string) ([]*delivery, []string, error) {
	// Pass 1 checks the shape and sizes the allocations; pass 2 fills them.
	var n, idBytes, bodyBytes, nghosts int
	err := walkXRead(raw, stream, func(id []byte, r *respReader, pairs int) {
		idBytes += len(id)
		if pairs == 0 {
			nghosts++
			return
		}
		n++
		for range pairs {
			k, v := r.bulk(), r.bulk()
			switch string(k) {
			case "id":
				idBytes += len(v)
			case "body":
				bodyBytes += len(v)
			}
		}
	})
	if err != nil || n+nghosts == 0 {
		return nil, nil, err
	}
	type entryDelivery struct {
		d delivery
		m Message
	}
	all := make([]entryDelivery, n)
	ds := make([]*delivery, n)
	var ghosts []string
	if nghosts > 0 {
		ghosts = make([]string, 0, nghosts)
	}
	var ids strings.Builder
	ids.Grow(idBytes)
	str := func(b []byte) string {
		start := ids.Len()
		ids.Write(b)
		return ids.String()[start:]
	}
	arena := make([]byte, 0, bodyBytes)
	i := 0
	_ = walkXRead(raw, stream, func(id []byte, r *respReader, pairs int) {
		eid := str(id)
		if pairs == 0 {
			ghosts = append(ghosts, eid)
			return
		}
		ed := &all[i]
		m := &ed.m
		*m = Message{ID: eid, Attempt: 1}
		for range pairs {
			k, v := r.bulk(), r.bulk()
			switch string(k) {
			case "id":
				m.ID = str(v)
			case "body":
				m.Body = appendBody(&arena, v)
			default:
				setEntryField(m, k, v)
			}
		}
		finishEntry(m, eid)
		ed.d.msg, ed.d.entry = m, eid
		ds[i] = &ed.d
		i++
	})
	return ds, ghosts, nil
}

// walkXRead calls f for each entry of stream in raw (see parseXRead) with
// its ID, and r at its field/value pairs, pairs of them (0 for an entry
// without fields); f reads all of them with r.bulk.
func walkXRead(raw []byte, stream string, f func(id []byte, r *respReader, pairs int)) error {
	r := &respReader{b: raw}
	r.attributes()
	var streams int
	isMap := false
	switch t := r.peek(); t {
	case '%':
		isMap = true
		streams = r.header('%')
	default:
		streams = r.header('*')
	}
	for range max(streams, 0) {
		if !isMap && r.header('*') != 2 && r.err == nil {
			r.fail("a stream that is not a name and its entries")
		}
		name := r.bulk()
		entries := r.header('*')
		mine := string(name) == stream
		for range max(entries, 0) {
			if r.header('*') != 2 && r.err == nil {
				r.fail("an entry that is not an ID and its fields")
			}
			id := r.bulk()
			fields := r.header('*')
			if fields%2 != 0 && r.err == nil {
				r.fail("an odd number of fields")
			}
			if r.err != nil {
				break
			}
			if mine {
				f(id, r, max(fields, 0)/2)
			} else {
				for range max(fields, 0) {
					r.bulk()
				}
			}
		}
		if r.err != nil {
			break
		}
	}
	if r.err == nil && len(r.b) > 0 {
		r.fail("bytes after the reply")
	}
	return r.err
}

// respReader reads RESP2 and RESP3 values from b, the first error it
// meets sticking in err (after which every read returns zero values).
type respReader struct {
	b   []byte
	err error
}

func (r *respReader) fail(what string) {
	if r.err == nil {
		r.err = rediserr.BadReply("xreadgroup: %s", what)
	}
	r.b = nil
}

func (r *respReader) peek() byte {
	if len(r.b) == 0 {
		return 0
	}
	return r.b[0]
}

// line returns the next line's type byte and the rest of it.
func (r *respReader) line() (byte, []byte) {
	end := bytes.IndexByte(r.b, '\r') // not in a line (only in a bulk string's data)
	if end < 1 || end+1 >= len(r.b) || r.b[end+1] != '\n' {
		r.fail("a truncated reply")
		return 0, nil
	}
	t, rest := r.b[0], r.b[1:end]
	r.b = r.b[end+2:]
	return t, rest
}

// length parses a line's length; -1 is a null (RESP2).
func (r *respReader) length(s []byte) int {
	if string(s) == "-1" {
		return -1
	}
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' || n > 1<<40 {
			n = -1
			break
		}
		n = n*10 + int(c-'0')
	}
	if len(s) == 0 || n < 0 {
		r.fail("a bad length")
		return 0
	}
	return n
}

// attributes skips RESP3 attributes, which may come before a reply.
func (r *respReader) attributes() {
	for r.err == nil && r.peek() == '|' {
		for range r.header('|') * 2 {
			r.skip()
		}
	}
}

// header reads the header of an aggregate of type t ('*' or '%') and
// returns how many elements (or pairs) it has: 0 for a null.
func (r *respReader) header(t byte) int {
	if r.err != nil {
		return 0
	}
	typ, s := r.line()
	switch {
	case r.err != nil:
		return 0
	case typ == '_' && len(s) == 0:
		return 0
	case typ != t:
		r.fail("an aggregate of another type")
		return 0
	}
	n := r.length(s)
	if n > len(r.b)/3 { // every element takes at least 3 bytes
		r.fail("an aggregate longer than the reply")
		return 0
	}
	return max(n, 0)
}

// bulk reads a string (bulk or simple).
func (r *respReader) bulk() []byte {
	if r.err != nil {
		return nil
	}
	typ, s := r.line()
	switch typ {
	case '+':
		return s
	case '$':
		n := r.length(s)
		if r.err != nil || n < 0 || len(r.b) < n+2 || r.b[n] != '\r' || r.b[n+1] != '\n' {
			r.fail("a bad string")
			return nil
		}
		v := r.b[:n:n]
		r.b = r.b[n+2:]
		return v
	}
	if r.err == nil {
		r.fail("a value that is not a string")
	}
	return nil
}

// skip reads any value (for attributes).
func (r *respReader) skip() {
	if r.err != nil {
		return
	}
	switch t := r.peek(); t {
	case '$', '=', '!':
		_, s := r.line()
		if n := r.length(s); r.err == nil && n >= 0 {
			if len(r.b) < n+2 {
				r.fail("a bad string")
				return
			}
			r.b = r.b[n+2:]
		}
	case '*', '~', '>':
		for range r.header(t) {
			r.skip()
		}
	case '%', '|':
		for range r.header(t) * 2 {
			r.skip()
		}
	case '+', '-', ':', '_', ',', '#', '(':
		r.line()
	default:
		r.fail("a value of an unknown type")
	}
}
