package lock

import (
	"strconv"
	"testing"
)

// FuzzParseGrant: the wake-list message parser never panics, and accepts
// exactly the messages the release script writes.
func FuzzParseGrant(f *testing.F) {
	for _, s := range []string{"g|1764000000000001|1764000000000000", "n", "c", "g|", "g|1|2|3", "g|-1|5", "g|18446744073709551615|0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		tok, at, ok := parseGrant(msg)
		if !ok {
			return
		}
		want := "g|" + strconv.FormatUint(tok, 10) + "|" + strconv.FormatInt(at, 10)
		if _, _, ok2 := parseGrant(want); !ok2 {
			t.Fatalf("parseGrant(%q) = %d, %d; the canonical form %q does not parse", msg, tok, at, want)
		}
	})
}

func TestLockKeys(t *testing.T) {
	got := lockKeys("p:", "job")
	want := []string{"p:{job}", "p:{job}:fence", "p:{job}:q", "p:{job}:qi", "p:{job}:w:"}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("lockKeys[%d] = %q, want %q", i, got[i], want[i])
		}
	}
}
