package redistest

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// ScriptHeader is what the header comment of a Lua script (the "--" lines
// it starts with) documents: the KEYS and ARGV it takes, and the test cases
// it names. A header documents KEYS[i] or ARGV[i] with a line that starts
// with it ("-- KEYS[1] stream ..."); "KEYS[5..]" documents 5 and every
// index after it. A test case is named "…/<script>/<case>" (the part of a
// subtest's name after its topology), anywhere in the header.
type ScriptHeader struct {
	// Keys and Argv are the documented indexes; From* the first index of a
	// documented open range ("ARGV[2..]"), 0 when there is none.
	Keys, Argv         []int
	FromKeys, FromArgv int
	// Returns reports whether the header says what the script returns
	// (a line that starts with "Returns").
	Returns bool
	// Errors reports whether the header says which errors the script
	// answers with (a line that starts with "Errors").
	Errors bool
	// Cases are the test cases named, in order.
	Cases []string
}

var (
	docIndex   = regexp.MustCompile(`^--\s+(KEYS|ARGV)\[(\d+)(\.\.)?\]`)
	readIndex  = regexp.MustCompile(`\b(KEYS|ARGV)\[(\d+)\]`)
	readUnpack = regexp.MustCompile(`unpack\(\s*(KEYS|ARGV)\s*,\s*(\d+)`)
	readLoop   = regexp.MustCompile(`for\s+\w+\s*=\s*(\d+)\s*,\s*#(KEYS|ARGV)\b`)
	luaComment = regexp.MustCompile(`--.*$`)
)

// splitScript returns a script's header lines and its code (comments and
// string contents are not stripped from the code, only "--" comments).
func splitScript(src string) (header []string, code string) {
	lines := strings.Split(src, "\n")
	i := 0
	for ; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(l, "--") {
			break
		}
		header = append(header, l)
	}
	var b strings.Builder
	for _, l := range lines[i:] {
		b.WriteString(luaComment.ReplaceAllString(l, ""))
		b.WriteByte('\n')
	}
	return header, b.String()
}

// ParseScriptHeader parses the header comment of the Lua script src, which
// is named name (the file name without ".lua", as in its test cases).
func ParseScriptHeader(name, src string) ScriptHeader {
	header, _ := splitScript(src)
	var h ScriptHeader
	caseRef := regexp.MustCompile(`…/` + regexp.QuoteMeta(name) + `/([\w./*-]+)`)
	for _, l := range header {
		if m := docIndex.FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[2])
			switch {
			case m[1] == "KEYS" && m[3] != "":
				h.FromKeys = n
			case m[1] == "KEYS":
				h.Keys = append(h.Keys, n)
			case m[3] != "":
				h.FromArgv = n
			default:
				h.Argv = append(h.Argv, n)
			}
		}
		text := strings.TrimSpace(strings.TrimPrefix(l, "--"))
		h.Returns = h.Returns || strings.HasPrefix(text, "Returns")
		h.Errors = h.Errors || strings.HasPrefix(text, "Errors")
		for _, m := range caseRef.FindAllStringSubmatch(l, -1) {
			h.Cases = append(h.Cases, name+"/"+strings.TrimRight(m[1], "."))
		}
	}
	return h
}

// ScriptHeaderProblems checks the header comment of the Lua script src
// (named name, as ParseScriptHeader) against its code and returns what is
// wrong, nil when nothing is: every KEYS[i] and ARGV[i] the code reads is
// documented (an open range read, unpack(ARGV, 2) or "for i = 2, #ARGV", by
// an open range that starts there or before); every index documented alone
// is read; the header says what the script returns and which errors it
// answers with; and it names exactly the test cases in cases (each
// "<script>/<case>"; those of other scripts are ignored).
func ScriptHeaderProblems(name, src string, cases []string) []string {
	h := ParseScriptHeader(name, src)
	_, code := splitScript(src)
	var out []string
	documented := func(kind string, n int) bool {
		list, from := h.Keys, h.FromKeys
		if kind == "ARGV" {
			list, from = h.Argv, h.FromArgv
		}
		return slices.Contains(list, n) || (from > 0 && n >= from)
	}
	read := map[string]map[int]bool{"KEYS": {}, "ARGV": {}}
	for _, m := range readIndex.FindAllStringSubmatch(code, -1) {
		n, _ := strconv.Atoi(m[2])
		read[m[1]][n] = true
		if !documented(m[1], n) {
			out = append(out, fmt.Sprintf("%s[%d] is read but not documented", m[1], n))
		}
	}
	ranges := map[string]int{}
	for _, m := range readUnpack.FindAllStringSubmatch(code, -1) {
		n, _ := strconv.Atoi(m[2])
		ranges[m[1]] = minFrom(ranges[m[1]], n)
	}
	for _, m := range readLoop.FindAllStringSubmatch(code, -1) {
		n, _ := strconv.Atoi(m[1])
		ranges[m[2]] = minFrom(ranges[m[2]], n)
	}
	for _, kind := range []string{"KEYS", "ARGV"} {
		from := h.FromKeys
		if kind == "ARGV" {
			from = h.FromArgv
		}
		if n := ranges[kind]; n > 0 && (from == 0 || from > n) {
			out = append(out, fmt.Sprintf("%s[%d..] is read but not documented as an open range", kind, n))
		}
		list := h.Keys
		if kind == "ARGV" {
			list = h.Argv
		}
		for _, n := range list {
			if !read[kind][n] && (ranges[kind] == 0 || n < ranges[kind]) {
				out = append(out, fmt.Sprintf("%s[%d] is documented but not read", kind, n))
			}
		}
	}
	if !h.Returns {
		out = append(out, `no "Returns" line`)
	}
	if !h.Errors {
		out = append(out, `no "Errors" line`)
	}
	var mine []string
	for _, c := range cases {
		if strings.HasPrefix(c, name+"/") {
			mine = append(mine, c)
		}
	}
	for _, c := range mine {
		if !slices.Contains(h.Cases, c) {
			out = append(out, fmt.Sprintf("test case %s is not named in the header", c))
		}
	}
	for _, c := range h.Cases {
		if !slices.Contains(mine, c) {
			out = append(out, fmt.Sprintf("the header names %s, which is not a test case", c))
		}
	}
	return out
}

// minFrom returns the smaller of two range starts, 0 meaning none.
func minFrom(a, b int) int {
	if a == 0 {
		return b
	}
	return min(a, b)
}
