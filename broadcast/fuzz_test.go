package broadcast

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzDecodeClientFrame: any bytes give a frame or a frame error, never a
// panic; an accepted frame satisfies every check, and the error frame
// built from a refused one is valid JSON.
func FuzzDecodeClientFrame(f *testing.F) {
	for _, s := range []string{
		`{"op":"subscribe","id":"1","channel":"c","since":{"epoch":"e","offset":12}}`,
		`{"op":"unsubscribe","channel":"c"}`,
		`{"op":"publish","channel":"c","data":{"a":[1,2,3]}}`,
		`{"op":"presence","id":"2","channel":"c"}`,
		`{"op":"subscribe","channel":"c","presence":true}`,
		`{`, `[]`, `null`, `{"op":1}`, `{"op":"publish","channel":"c"}`,
		"{\"op\":\"subscribe\",\"channel\":\"a\\u0000b\"}",
		`{"op":"subscribe","channel":"c","since":{"offset":-1}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, ferr := decodeClientFrame(b, 1024)
		if ferr != nil {
			out := encodeError(fr.ID, fr.Channel, ferr.code, ferr.msg)
			if !json.Valid(out) {
				t.Fatalf("error frame is not JSON: %s", out)
			}
			return
		}
		if err := checkChannel(fr.Channel); err != nil {
			t.Fatalf("accepted a bad channel %q: %v", fr.Channel, err)
		}
		if len(fr.ID) > maxIDLen {
			t.Fatalf("accepted an id of %d bytes", len(fr.ID))
		}
		switch fr.Op {
		case opSubscribe, opUnsubscribe, opPresence:
			if len(fr.Data) != 0 {
				t.Fatalf("accepted data on %s", fr.Op)
			}
		case opPublish:
			if len(fr.Data) == 0 || len(fr.Data) > 1024 || !json.Valid(fr.Data) {
				t.Fatalf("accepted bad publish data %q", fr.Data)
			}
		default:
			t.Fatalf("accepted op %q", fr.Op)
		}
		for _, out := range [][]byte{
			encodeSubscribed(fr.ID, fr.Channel, Position{Epoch: "e", Offset: 1}, true),
			encodeError(fr.ID, fr.Channel, codeBadRequest, string(b)),
		} {
			if !json.Valid(out) {
				t.Fatalf("server frame is not JSON: %s", out)
			}
		}
	})
}

// FuzzParseSSEID: any Last-Event-ID parses or is refused, never panics,
// and what parses encodes back to the same string.
func FuzzParseSSEID(f *testing.F) {
	for _, s := range []string{"", "3f9a0c21be-12", "3f9a0c21be-12.77d1e0a4c3-0", ".", "a-1..b-2", "x", "-1", "a-", "a-18446744073709551616", "a_b-5"} {
		f.Add(s, 2)
	}
	f.Fuzz(func(t *testing.T, id string, n int) {
		if n < 1 || n > 64 {
			return
		}
		ps, err := parseSSEID(id, n)
		if err != nil {
			return
		}
		if len(ps) != n {
			t.Fatalf("got %d positions for %d channels", len(ps), n)
		}
		back := encodeSSEID(ps)
		ps2, err := parseSSEID(back, n)
		if err != nil {
			t.Fatalf("re-encoded ID %q does not parse: %v", back, err)
		}
		for i := range ps {
			if ps[i] != ps2[i] {
				t.Fatalf("position %d: %v then %v", i, ps[i], ps2[i])
			}
		}
		if strings.ContainsAny(back, "\r\n") {
			t.Fatalf("ID %q holds a line break", back)
		}
	})
}

// FuzzDecodeFrame: pub/sub frames from Redis (anyone may PUBLISH there)
// never panic, and what is accepted is safe to forward.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{"p1:abc:{}", "p12:e:[1,2]", `j{"client":"a"}`, `l{"client":"a","info":{}}`, "p0:e:1", "p1::1", "q", "p1:e:{",
		`h3:e:15:{"traceparent":"x"}{"bid":1}`, `h3:e:2:{}1`, `h3:e:99:{}1`, `h3:e:-1:{}1`, `h1:e:5:{"a":1}2`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		e, ok := decodeFrame("c", payload)
		if !ok {
			return
		}
		if e.kind == Publication && (!json.Valid(e.data) || e.pos.Offset == 0) {
			t.Fatalf("accepted %q", payload)
		}
		if e.headers != nil && len(e.headers) == 0 {
			t.Fatalf("empty headers of %q are not nil", payload)
		}
		if out := e.wsFrame(); !json.Valid(out) {
			t.Fatalf("frame of %q is not JSON: %s", payload, out)
		}
	})
}
