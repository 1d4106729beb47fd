package compress

import (
	"net/http"
	"strings"
)

// ETag handling. A compressed representation must not share a strong ETag
// with the uncompressed one (RFC 9110 §8.8.3), so the middleware rewrites the
// response ETag, and rewrites the conditional request headers back so the
// handler compares against its own tags.

// etagSuffix returns the suffix naming enc inside an entity-tag ("-gzip").
func etagSuffix(enc Encoding) string {
	switch enc {
	case Zstd:
		return "-zstd"
	case Brotli:
		return "-br"
	case Gzip:
		return "-gzip"
	}
	return ""
}

// compressedETag returns the ETag for the enc-compressed representation of a
// response whose ETag is tag, and false if the tag is malformed (the caller
// then drops it: a wrong validator is worse than none). Weak tags are
// returned unchanged: they already promise only semantic equivalence.
func compressedETag(tag string, enc Encoding, weak bool) (string, bool) {
	tag = trimOWS(tag)
	if strings.HasPrefix(tag, "W/") {
		return tag, true
	}
	if len(tag) < 2 || tag[0] != '"' || tag[len(tag)-1] != '"' || strings.IndexByte(tag[1:len(tag)-1], '"') >= 0 {
		return "", false
	}
	if weak {
		return "W/" + tag, true
	}
	return tag[:len(tag)-1] + etagSuffix(enc) + `"`, true
}

// translateConditional rewrites an If-None-Match or If-Match value so that
// the tags this middleware produced compare equal to the handler's own tags:
// in suffix mode a "-gzip"/"-br"/"-zstd" suffix is removed; in weak mode (and
// only for If-Match, whose comparison is strong) W/"x" becomes "x". It
// returns the rewritten value, the encoding whose suffix was seen first
// (Identity if none) and whether anything changed. Malformed input is passed
// through unchanged.
func translateConditional(v string, weak, ifMatch bool) (string, Encoding, bool) {
	seen := Identity
	var b strings.Builder
	changed := false
	rest := v
	for {
		// Skip separators.
		for len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t' || rest[0] == ',') {
			rest = rest[1:]
		}
		if rest == "" {
			break
		}
		if rest[0] == '*' {
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('*')
			rest = rest[1:]
			continue
		}
		weakTag := strings.HasPrefix(rest, "W/")
		t := rest
		if weakTag {
			t = t[2:]
		}
		if len(t) == 0 || t[0] != '"' {
			return v, Identity, false
		}
		end := strings.IndexByte(t[1:], '"')
		if end < 0 {
			return v, Identity, false
		}
		opaque := t[1 : 1+end]
		rest = t[2+end:]
		prefix := ""
		if weakTag {
			prefix = "W/"
		}
		switch {
		case weak:
			if ifMatch && weakTag {
				prefix = ""
				changed = true
			}
		default:
			for _, e := range [...]Encoding{Gzip, Brotli, Zstd} {
				if s := etagSuffix(e); strings.HasSuffix(opaque, s) && len(opaque) > len(s) {
					opaque = opaque[:len(opaque)-len(s)]
					if seen == Identity {
						seen = e
					}
					changed = true
					break
				}
			}
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(prefix)
		b.WriteByte('"')
		b.WriteString(opaque)
		b.WriteByte('"')
	}
	if !changed {
		return v, Identity, false
	}
	return b.String(), seen, true
}

// translateRequest returns r, or a shallow copy with its own header map when
// If-None-Match or If-Match must be rewritten (the incoming request is never
// modified). It also returns the encoding the client's If-None-Match tag
// named, so a 304 can carry the same ETag the client stored.
func translateRequest(r *http.Request, weak bool) (*http.Request, Encoding) {
	inm, im := r.Header["If-None-Match"], r.Header["If-Match"]
	if len(inm) == 0 && len(im) == 0 {
		return r, Identity
	}
	var newINM, newIM string
	var encINM Encoding = Identity
	var chINM, chIM bool
	if len(inm) > 0 {
		newINM, encINM, chINM = translateConditional(strings.Join(inm, ", "), weak, false)
	}
	if len(im) > 0 {
		newIM, _, chIM = translateConditional(strings.Join(im, ", "), weak, true)
	}
	if !chINM && !chIM {
		return r, Identity
	}
	r2 := new(http.Request)
	*r2 = *r
	r2.Header = r.Header.Clone()
	if chINM {
		r2.Header["If-None-Match"] = []string{newINM}
	}
	if chIM {
		r2.Header["If-Match"] = []string{newIM}
	}
	return r2, encINM
}

// varyHasAcceptEncoding reports whether Vary already lists Accept-Encoding
// (or "*").
func varyHasAcceptEncoding(h http.Header) bool {
	for _, v := range h["Vary"] {
		for v != "" {
			var f string
			if i := indexByte(v, ','); i >= 0 {
				f, v = v[:i], v[i+1:]
			} else {
				f, v = v, ""
			}
			f = trimOWS(f)
			if f == "*" || equalFold(f, "Accept-Encoding") {
				return true
			}
		}
	}
	return false
}

var varyAcceptEncoding = []string{"Accept-Encoding"}

// addVary merges Accept-Encoding into the Vary header without duplicating it
// or dropping what the handler set.
func addVary(h http.Header) {
	if varyHasAcceptEncoding(h) {
		return
	}
	if len(h["Vary"]) == 0 {
		h["Vary"] = varyAcceptEncoding[:1:1] // shared, capacity-capped: Add copies
		return
	}
	h["Vary"] = append(h["Vary"], "Accept-Encoding")
}
