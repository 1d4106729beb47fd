package compress

import (
	"testing"
)

// TestNegotiateConformance is the fixed RFC 9110 §12.5.3 conformance table.
func TestNegotiateConformance(t *testing.T) {
	all := []Encoding{Zstd, Brotli, Gzip}
	for _, tc := range []struct {
		name   string
		header string
		offers []Encoding
		want   Encoding
	}{
		{"empty header means identity", "", all, Identity},
		{"blank header", "   ", all, Identity},
		{"single gzip", "gzip", all, Gzip},
		{"x-gzip alias", "x-gzip", all, Gzip},
		{"single br", "br", all, Brotli},
		{"single zstd", "zstd", all, Zstd},
		{"server preference breaks ties", "gzip, br, zstd", all, Zstd},
		{"server preference, gzip first", "gzip, br, zstd", []Encoding{Gzip, Brotli, Zstd}, Gzip},
		{"browser header", "gzip, deflate, br, zstd", all, Zstd},
		{"browser header without zstd", "gzip, deflate, br", all, Brotli},
		{"q-values win over server order", "zstd;q=0.5, gzip;q=0.8, br;q=0.7", all, Gzip},
		{"q=0 excludes", "zstd;q=0, br;q=0, gzip", all, Gzip},
		{"all q=0", "zstd;q=0, br;q=0, gzip;q=0", all, Identity},
		{"q=1.000 equals q=1", "gzip;q=1.000, zstd;q=0.999", all, Gzip},
		{"three decimals", "gzip;q=0.001, br;q=0.002", all, Brotli},
		{"star accepts all", "*", all, Zstd},
		{"star with q", "*;q=0.5", all, Zstd},
		{"star with explicit exclusion", "*, zstd;q=0", all, Brotli},
		{"star with explicit exclusions", "*;q=1, zstd;q=0, br;q=0", all, Gzip},
		{"star q=0 excludes unlisted", "*;q=0, gzip", all, Gzip},
		{"star q=0 and nothing else", "*;q=0", all, Identity},
		{"explicit beats star", "*;q=0.1, br;q=0.9", all, Brotli},
		{"identity only", "identity", all, Identity},
		{"identity;q=0 with gzip", "identity;q=0, gzip", all, Gzip},
		{"identity;q=0 and nothing acceptable", "identity;q=0", all, Identity},
		{"identity preferred over gzip", "gzip;q=0.5, identity", all, Identity},
		{"identity tie goes to compression", "gzip, identity", all, Gzip},
		{"unknown codings ignored", "compress, deflate, exi", all, Identity},
		{"unknown and known", "foo, gzip;q=0.2, bar", all, Gzip},
		{"case insensitive coding", "GZIP", all, Gzip},
		{"case insensitive mixed", "Br, X-GZip", all, Brotli},
		{"case insensitive q", "gzip;Q=0.5, br;q=0.4", all, Gzip},
		{"whitespace", "  gzip ; q=0.5 ,\tbr\t;\tq=0.6  ", all, Brotli},
		{"empty members", ",,, gzip ,,", all, Gzip},
		{"invalid q ignored (member dropped)", "br;q=2, gzip", all, Gzip},
		{"invalid q garbage", "br;q=abc, gzip;q=0.1", all, Gzip},
		{"q too many decimals", "br;q=0.0001, gzip;q=0.1", all, Gzip},
		{"q=1.5 invalid", "zstd;q=1.5, gzip", all, Gzip},
		{"negative q invalid", "zstd;q=-1, gzip", all, Gzip},
		{"extra params ignored", "br;level=5;q=0.9, gzip;q=0.8", all, Brotli},
		{"param without value invalid", "br;foo, gzip", all, Gzip},
		{"bad token", "g zip, br", all, Brotli},
		{"quoted garbage", `"gzip", br`, all, Brotli},
		{"only offered encodings", "br", []Encoding{Gzip}, Identity},
		{"offer order restricted", "br, gzip", []Encoding{Gzip}, Gzip},
		{"no offers", "gzip", nil, Identity},
		{"duplicate takes highest", "gzip;q=0, gzip;q=0.5, br;q=0.4", all, Gzip},
		{"x-gzip q=0 and gzip", "x-gzip;q=0, gzip", all, Gzip},
		{"deflate only", "deflate", all, Identity},
		{"star excludes identity no effect", "*;q=0, identity;q=0", all, Identity},
		{"trailing semicolon", "gzip;", all, Gzip},
		{"q= empty invalid", "br;q=, gzip;q=0.3", all, Gzip},
		{"q=0. valid", "br;q=0., gzip;q=0.3", all, Gzip},
		{"q=1. valid", "br;q=1., gzip;q=0.3", all, Brotli},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Negotiate(tc.header, tc.offers...); got != tc.want {
				t.Errorf("Negotiate(%q) = %q, want %q", tc.header, got, tc.want)
			}
		})
	}
}

func TestNegotiateAllocs(t *testing.T) {
	offers := []Encoding{Zstd, Brotli, Gzip}
	allocs := testing.AllocsPerRun(100, func() {
		Negotiate("gzip, deflate, br;q=0.9, zstd;q=0.8, *;q=0.1", offers...)
	})
	if allocs != 0 {
		t.Errorf("got %v allocs, want 0", allocs)
	}
}

func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{"", "gzip", "gzip, deflate, br, zstd", "*;q=0.5, gzip;q=0", "identity;q=0",
		"br;q=0.001", "x-gzip;Q=1.0", ",;;=,", "gzip;q=1.", "\t*\t;\tq=0"} {
		f.Add(s)
	}
	offers := []Encoding{Zstd, Brotli, Gzip}
	f.Fuzz(func(t *testing.T, s string) {
		got := Negotiate(s, offers...)
		switch got {
		case Identity, Zstd, Brotli, Gzip:
		default:
			t.Fatalf("Negotiate(%q) = %q, not an offer or identity", s, got)
		}
		if got != Identity {
			// The chosen encoding must be acceptable: weight > 0.
			q := -1
			star := -1
			parseAcceptEncoding(s, func(c string, w int) {
				if c == "*" {
					star = max(star, w)
				} else if i := encodingIndexToken(c); i >= 0 && [...]Encoding{Zstd, Brotli, Gzip}[i] == got {
					q = max(q, w)
				}
			})
			if q < 0 {
				q = star
			}
			if q <= 0 {
				t.Fatalf("Negotiate(%q) = %q with weight %d", s, got, q)
			}
		}
		// Restricting the offers to the winner keeps it.
		if got != Identity && Negotiate(s, got) != got {
			t.Fatalf("Negotiate(%q, %q) != %q", s, got, got)
		}
	})
}
