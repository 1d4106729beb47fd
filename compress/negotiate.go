package compress

// Accept-Encoding negotiation per RFC 9110 §12.5.3, without allocations.

// Negotiate returns the content coding to use for a response, given the
// request's Accept-Encoding field value and the encodings the server offers in
// its order of preference. It returns Identity when no offered encoding is
// acceptable.
//
// Rules (RFC 9110 §12.5.3): codings are case-insensitive and "x-gzip" is
// gzip; a coding's weight is its q parameter (default 1, "q=0" means not
// acceptable); an encoding not listed takes the weight of "*" if present and
// is otherwise not acceptable; an empty or absent header means identity. The
// highest weight wins, and the server's order breaks ties. An identity coding
// weighted strictly above every acceptable offer is honoured by returning
// Identity. Malformed members (bad weights, stray characters) are ignored and
// never cause a panic. When every offer and identity are refused, Identity is
// still returned: sending an unencoded response is what the RFC suggests
// rather than failing the request.
func Negotiate(acceptEncoding string, offers ...Encoding) Encoding {
	var qs [numEncodings]int // explicit weights per encoding, -1 when unlisted
	for i := range qs {
		qs[i] = -1
	}
	star, identity := -1, -1
	parseAcceptEncoding(acceptEncoding, func(coding string, q int) {
		switch {
		case coding == "*":
			star = max(star, q)
		case equalFold(coding, "identity"):
			identity = max(identity, q)
		default:
			if i := encodingIndexToken(coding); i >= 0 {
				qs[i] = max(qs[i], q)
			}
		}
	})
	best, bestQ := Identity, 0
	for _, e := range offers {
		i := e.index()
		if i < 0 {
			continue
		}
		q := qs[i]
		if q < 0 {
			q = star
		}
		if q > bestQ {
			best, bestQ = e, q
		}
	}
	if best != Identity && identity > bestQ {
		return Identity
	}
	return best
}

// numEncodings is the number of compressing encodings.
const numEncodings = 3

// index maps a compressing encoding to 0..numEncodings-1, or -1.
func (e Encoding) index() int {
	switch e {
	case Zstd:
		return 0
	case Brotli:
		return 1
	case Gzip:
		return 2
	}
	return -1
}

// encodingIndexToken maps a coding token (any case) to an encoding index.
func encodingIndexToken(tok string) int {
	switch {
	case equalFold(tok, "gzip"), equalFold(tok, "x-gzip"):
		return 2
	case equalFold(tok, "br"):
		return 1
	case equalFold(tok, "zstd"):
		return 0
	}
	return -1
}

// parseAcceptEncoding calls fn for every well-formed member of an
// Accept-Encoding value with its weight in thousandths (0..1000). Members
// with an invalid token or weight are skipped.
func parseAcceptEncoding(s string, fn func(coding string, q int)) {
	for len(s) > 0 {
		var member string
		if i := indexByte(s, ','); i >= 0 {
			member, s = s[:i], s[i+1:]
		} else {
			member, s = s, ""
		}
		coding, params := member, ""
		if i := indexByte(member, ';'); i >= 0 {
			coding, params = member[:i], member[i+1:]
		}
		coding = trimOWS(coding)
		if coding == "" || (coding != "*" && !isToken(coding)) {
			continue
		}
		q, ok := parseWeight(params)
		if !ok {
			continue
		}
		fn(coding, q)
	}
}

// parseWeight parses the parameters after a coding ("q=0.5", tolerant of
// whitespace and case). Parameters other than q are ignored. It returns the
// weight in thousandths and whether the parameters were valid.
func parseWeight(params string) (int, bool) {
	q := 1000
	for len(params) > 0 {
		var p string
		if i := indexByte(params, ';'); i >= 0 {
			p, params = params[:i], params[i+1:]
		} else {
			p, params = params, ""
		}
		p = trimOWS(p)
		if p == "" {
			continue
		}
		eq := indexByte(p, '=')
		if eq < 0 {
			return 0, false
		}
		name, val := trimOWS(p[:eq]), trimOWS(p[eq+1:])
		if !equalFold(name, "q") {
			if !isToken(name) {
				return 0, false
			}
			continue
		}
		v, ok := parseQValue(val)
		if !ok {
			return 0, false
		}
		q = v
	}
	return q, true
}

// parseQValue parses qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ).
func parseQValue(s string) (int, bool) {
	if s == "" || len(s) > 5 || (s[0] != '0' && s[0] != '1') {
		return 0, false
	}
	v := int(s[0]-'0') * 1000
	if len(s) == 1 {
		return v, true
	}
	if s[1] != '.' {
		return 0, false
	}
	scale := 100
	for i := 2; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v += int(c-'0') * scale
		scale /= 10
	}
	if v > 1000 {
		return 0, false
	}
	return v, true
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// trimOWS trims optional whitespace (SP / HTAB) at both ends.
func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// isToken reports whether s is a non-empty RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '!' || c == '#' || c == '$' || c == '%' || c == '&' || c == '\'' || c == '*' ||
			c == '+' || c == '-' || c == '.' || c == '^' || c == '_' || c == '`' || c == '|' || c == '~':
		default:
			return false
		}
	}
	return true
}

// equalFold is an ASCII-only, allocation-free strings.EqualFold.
func equalFold(s, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if lowerASCII(s[i]) != lowerASCII(t[i]) {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}
