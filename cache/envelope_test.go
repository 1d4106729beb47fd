package cache

import (
	"bytes"
	"testing"
	"time"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	tests := []envelope{
		{flags: 0, soft: 1, hard: 2, delta: 3, nonce: 4, payload: []byte(`{"a":1}`)},
		{flags: flagNotFound, soft: 1 << 50, hard: 1 << 51, nonce: 1<<64 - 1},
		{flags: flagLease, nonce: 42},
		{flags: flagCompressed, payload: bytes.Repeat([]byte{0xff}, 4096)},
	}
	for _, want := range tests {
		b := want.marshal()
		got, err := parseEnvelope(b)
		if err != nil {
			t.Fatalf("parseEnvelope: %v", err)
		}
		if got.flags != want.flags || got.soft != want.soft || got.hard != want.hard ||
			got.delta != want.delta || got.nonce != want.nonce || !bytes.Equal(got.payload, want.payload) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
		if string(b[22:30]) != nonceBytes(want.nonce) {
			t.Fatalf("nonce bytes at 22..29 (read by the scripts): got %x, want %x", b[22:30], nonceBytes(want.nonce))
		}
	}
	for _, bad := range [][]byte{nil, {1}, make([]byte, headerLen-1), append([]byte{2}, make([]byte, headerLen)...)} {
		if _, err := parseEnvelope(bad); err == nil {
			t.Fatalf("parseEnvelope(%x): got nil error, want one", bad)
		}
	}
}

func FuzzParseEnvelope(f *testing.F) {
	f.Add((&envelope{flags: flagLease, nonce: 1}).marshal())
	f.Add((&envelope{soft: 5, hard: 6, payload: []byte("x")}).marshal())
	f.Add([]byte("not an envelope"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := parseEnvelope(b)
		if err != nil {
			return
		}
		if again := e.marshal(); !bytes.Equal(again, b) {
			t.Fatalf("marshal(parse(b)) = %x, want %x", again, b)
		}
	})
}

func TestDueXFetch(t *testing.T) {
	now := time.Unix(1000, 0)
	c, err := New[int](WithClock(func() time.Time { return now }), WithEarlyRefresh(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n := now.UnixNano()
	delta := int64(10 * time.Millisecond)
	tests := []struct {
		name string
		e    entry[int]
		want func(hits int) bool
	}{
		{"far from expiry never", entry[int]{soft: n + 50*delta, delta: delta}, func(h int) bool { return h == 0 }},
		{"within 2βδ always", entry[int]{soft: n + 2*delta, delta: delta}, func(h int) bool { return h == 1000 }},
		{"no delta never", entry[int]{soft: n + 1, delta: 0}, func(h int) bool { return h == 0 }},
		{"not-found never", entry[int]{soft: n + 1, delta: delta, notFound: true}, func(h int) bool { return h == 0 }},
		// P(δ·(-ln r) ≥ 5δ) = e^-5 ≈ 0.67%: about 7 of 1000.
		{"5δ before expiry rarely", entry[int]{soft: n + 5*delta, delta: delta}, func(h int) bool { return h < 40 }},
		// P(-ln r ≥ 2.5) = e^-2.5 ≈ 8%: about 82 of 1000.
		{"2.5δ before expiry sometimes", entry[int]{soft: n + 5*delta/2, delta: delta}, func(h int) bool { return h > 30 && h < 160 }},
	}
	for _, tt := range tests {
		hits := 0
		for range 1000 {
			if c.due(&tt.e, n) {
				hits++
			}
		}
		if !tt.want(hits) {
			t.Errorf("%s: %d refreshes of 1000 reads", tt.name, hits)
		}
	}
}
