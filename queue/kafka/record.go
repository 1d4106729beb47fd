package kafka

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/outrigger-dev/outrigger/queue"
)

// Reserved record headers. User headers must not start with headerPrefix.
const (
	headerPrefix    = "x-outrigger-"
	headerID        = headerPrefix + "id"
	headerAttempt   = headerPrefix + "attempt"
	headerError     = headerPrefix + "error"
	headerPublished = headerPrefix + "published" // unix nanoseconds
	headerDue       = headerPrefix + "due"       // unix milliseconds
	headerTopic     = headerPrefix + "topic"     // where the message was first published
	headerPartition = headerPrefix + "partition"
	headerOffset    = headerPrefix + "offset"
	headerKey       = headerPrefix + "key"      // ordering key, on dead letters (whose record key is the ID)
	headerRequeued  = headerPrefix + "requeued" // a dead-letter tombstone
)

// origin is where a message was first published.
type origin struct {
	topic     string
	partition int32
	offset    int64
}

// decoded is a record read back: the message and our metadata. It is
// kept small: the consumer holds one per fetched record.
type decoded struct {
	msg   *queue.Message
	dueMs int64   // due time, unix milliseconds (0: due now)
	key   string  // ordering key ("" none)
	orig  *origin // nil: this record is the original
}

// encode builds the record of message m for topic, with ordering key key
// (nil: none), due time due (zero: none) and origin o (zero topic: none).
// Attempt, LastError and PublishedAt are written only when they say more
// than the record itself.
func encode(topic string, key []byte, m *queue.Message, due time.Time, o origin) *kgo.Record {
	n := 2 + len(m.Headers) // the ID, and room for deadRecord's key
	if m.Attempt > 1 {
		n++
	}
	if m.LastError != "" {
		n++
	}
	if !due.IsZero() {
		n++
	}
	if o.topic != "" {
		n += 4
	}
	hs := make([]kgo.RecordHeader, 0, n)
	if m.ID != "" {
		hs = append(hs, kgo.RecordHeader{Key: headerID, Value: []byte(m.ID)})
	}
	for k, v := range m.Headers {
		hs = append(hs, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	if m.Attempt > 1 {
		hs = append(hs, kgo.RecordHeader{Key: headerAttempt, Value: strconv.AppendInt(nil, int64(m.Attempt), 10)})
	}
	if m.LastError != "" {
		hs = append(hs, kgo.RecordHeader{Key: headerError, Value: []byte(m.LastError)})
	}
	if !due.IsZero() {
		hs = append(hs, kgo.RecordHeader{Key: headerDue, Value: strconv.AppendInt(nil, due.UnixMilli(), 10)})
	}
	if o.topic != "" {
		hs = append(hs,
			kgo.RecordHeader{Key: headerPublished, Value: strconv.AppendInt(nil, m.PublishedAt.UnixNano(), 10)},
			kgo.RecordHeader{Key: headerTopic, Value: []byte(o.topic)},
			kgo.RecordHeader{Key: headerPartition, Value: strconv.AppendInt(nil, int64(o.partition), 10)},
			kgo.RecordHeader{Key: headerOffset, Value: strconv.AppendInt(nil, o.offset, 10)},
		)
	}
	body := m.Body
	if body == nil {
		body = []byte{}
	}
	// The record's timestamp is its write time (retention counts from it):
	// a copy of an old message must not expire at once.
	ts := m.PublishedAt
	if o.topic != "" {
		ts = time.Now()
	}
	return &kgo.Record{Topic: topic, Key: key, Value: body, Headers: hs, Timestamp: ts}
}

// decode reads a record written by encode or by another producer. Records
// without an ID header (originals) get the ID of their position.
func decode(r *kgo.Record) decoded { return decodeInto(r, new(queue.Message)) }

// decodeInto is decode into m.
func decodeInto(r *kgo.Record, m *queue.Message) decoded {
	*m = queue.Message{Body: r.Value, Attempt: 1, PublishedAt: r.Timestamp}
	if m.Body == nil {
		m.Body = []byte{}
	}
	d := decoded{msg: m}
	if r.Key != nil {
		d.key = string(r.Key)
	}
	var topic, part, off string
	for _, h := range r.Headers {
		if !strings.HasPrefix(h.Key, headerPrefix) {
			if m.Headers == nil {
				m.Headers = make(map[string]string, len(r.Headers))
			}
			m.Headers[h.Key] = string(h.Value)
			continue
		}
		v := string(h.Value)
		switch h.Key {
		case headerID:
			m.ID = v
		case headerAttempt:
			if n, err := strconv.Atoi(v); err == nil && n >= 1 {
				m.Attempt = n
			}
		case headerError:
			m.LastError = v
		case headerPublished:
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				m.PublishedAt = time.Unix(0, n)
			}
		case headerDue:
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				d.dueMs = n
			}
		case headerTopic:
			topic = v
		case headerPartition:
			part = v
		case headerOffset:
			off = v
		case headerKey:
			d.key = v
		}
	}
	if topic != "" {
		p, _ := strconv.ParseInt(part, 10, 32)
		o, _ := strconv.ParseInt(off, 10, 64)
		d.orig = &origin{topic: topic, partition: int32(p), offset: o}
	}
	if m.ID == "" {
		m.ID = positionID(r)
	}
	return d
}

// positionID is the ID of a message first written as record r (after the
// broker acknowledged it, or as read back): "<topic>/<partition>/<offset>".
// Its copies (retries, dead letters) carry it in their ID header.
func positionID(r *kgo.Record) string {
	var buf [128]byte
	b := append(buf[:0], r.Topic...)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(r.Partition), 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, r.Offset, 10)
	return string(b)
}

// originOf is the origin of a record: its own position, or the one it
// carries if it is a copy.
func originOf(r *kgo.Record, d decoded) origin {
	if d.orig != nil {
		return *d.orig
	}
	return origin{topic: r.Topic, partition: r.Partition, offset: r.Offset}
}

// checkHeaders rejects user headers in the reserved namespace.
func checkHeaders(h map[string]string) error {
	for k := range h {
		if strings.HasPrefix(k, headerPrefix) {
			return fmt.Errorf("kafka: WithHeaders key %q uses the reserved prefix %q", k, headerPrefix)
		}
	}
	return nil
}

// keyBytes is the record key of an ordering key ("" none).
func keyBytes(k string) []byte {
	if k == "" {
		return nil
	}
	return []byte(k)
}
