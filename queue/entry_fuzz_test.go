package queue

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// FuzzEntryRoundTrip: a message written as stream fields (entryFields) and
// read back (parseEntry) is the same message, whatever its bytes.
func FuzzEntryRoundTrip(f *testing.F) {
	f.Add("m1", []byte("body"), "k", "v", 1, "", int64(1732540000123))
	f.Add("", []byte{}, "h:x", "", 3, "boom\nline", int64(0))
	f.Add("id with spaces", []byte{0, 255, 10}, "", "v", 10, "e", int64(-1))
	f.Fuzz(func(t *testing.T, id string, body []byte, hk, hv string, attempt int, lastErr string, ms int64) {
		if attempt < 1 || ms < 0 || ms > 1<<50 {
			t.Skip()
		}
		m := &Message{ID: id, Body: body, Attempt: attempt, PublishedAt: time.UnixMilli(ms), LastError: lastErr}
		if hk != "" {
			m.Headers = map[string]string{hk: hv}
		}
		f := entryFields(m, attempt, lastErr)
		values := make(map[string]any, len(f)/2)
		for i := 0; i < len(f); i += 2 {
			v := f[i+1]
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			values[f[i].(string)] = v
		}
		got := parseEntry("1-0", values)
		if got.ID != id || !bytes.Equal(got.Body, body) || got.Attempt != attempt || got.LastError != lastErr ||
			!got.PublishedAt.Equal(m.PublishedAt) || fmt.Sprint(got.Headers) != fmt.Sprint(m.Headers) {
			t.Fatalf("got %+v, want %+v", got, m)
		}
	})
}

// FuzzParseEntry: parseEntry accepts any fields (entries written by other
// tools) without panicking, and always yields a usable message.
func FuzzParseEntry(f *testing.F) {
	f.Add("1-0", "id", "x", "a", "-5", "t", "zz")
	f.Add("17-3", "body", "", "h:", "v", "e", "err")
	f.Fuzz(func(t *testing.T, eid, k1, v1, k2, v2, k3, v3 string) {
		m := parseEntry(eid, map[string]any{k1: v1, k2: v2, k3: v3})
		if m.Attempt < 1 || m.Body == nil || m.ID == "" && eid != "" && k1 != "id" && k2 != "id" && k3 != "id" {
			t.Fatalf("unusable message %+v", m)
		}
	})
}
