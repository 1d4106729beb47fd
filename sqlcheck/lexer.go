package sqlcheck

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// tokKind is the kind of a lexical token of SQL.
type tokKind uint8

const (
	tWord   tokKind = iota // unquoted identifier or keyword; also @var and @@var
	tQuoted                // "identifier" or `identifier`
	tString                // string literal: '...', E'...', $tag$...$tag$, X'...'
	tNumber                // numeric literal
	tParam                 // placeholder: ?, ?1, $1, :name
	tPunct                 // ( ) [ ] { } , ; .
	tOp                    // operator
	tList                  // a collapsed list, rendered "(...)"; made by Shape only
)

type token struct {
	kind tokKind
	text string
}

// lex splits s into tokens, dropping whitespace and comments. It accepts any
// input: a malformed or unterminated construct ends at the end of s.
func lex(s string) []token {
	out := make([]token, 0, len(s)/3+1)
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '-' && i+1 < len(s) && s[i+1] == '-':
			j := strings.IndexByte(s[i:], '\n')
			if j < 0 {
				return out
			}
			i += j + 1
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			i = skipBlockComment(s, i)
		case c == '\'':
			j := endString(s, i+1, true)
			out = append(out, token{tString, s[i:j]})
			i = j
		case c == '"' || c == '`':
			j := endQuoted(s, i+1, c)
			out = append(out, token{tQuoted, s[i:j]})
			i = j
		case c == '$':
			if i+1 < len(s) && isDigit(s[i+1]) {
				j := i + 1
				for j < len(s) && isDigit(s[j]) {
					j++
				}
				out = append(out, token{tParam, s[i:j]})
				i = j
			} else if tag, ok := dollarTag(s, i); ok {
				end := strings.Index(s[i+len(tag):], tag)
				j := len(s)
				if end >= 0 {
					j = i + len(tag) + end + len(tag)
				}
				out = append(out, token{tString, s[i:j]})
				i = j
			} else {
				out = append(out, token{tOp, "$"})
				i++
			}
		case c == '?':
			j := i + 1
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			out = append(out, token{tParam, s[i:j]})
			i = j
		case c == ':':
			switch {
			case i+1 < len(s) && (s[i+1] == ':' || s[i+1] == '='):
				out = append(out, token{tOp, s[i : i+2]})
				i += 2
			case i+1 < len(s) && isWordStart(s[i+1]):
				j := endWord(s, i+1)
				out = append(out, token{tParam, s[i:j]})
				i = j
			default:
				out = append(out, token{tOp, ":"})
				i++
			}
		case c == '@' && atVariable(s, i) > i:
			j := atVariable(s, i)
			out = append(out, token{tWord, s[i:j]})
			i = j
		case isDigit(c) || (c == '.' && i+1 < len(s) && isDigit(s[i+1]) && !afterName(out)):
			j := endNumber(s, i)
			out = append(out, token{tNumber, s[i:j]})
			i = j
		case isWordStart(c) && endWord(s, i) > i:
			j := endWord(s, i)
			// A prefixed string: E'..', N'..', X'..', B'..', U&'..', _utf8mb4'..'.
			if j < len(s) && s[j] == '\'' && isStringPrefix(s[i:j]) {
				k := endString(s, j+1, true)
				out = append(out, token{tString, s[i:k]})
				i = k
				continue
			}
			if j+1 < len(s) && s[j] == '&' && s[j+1] == '\'' && strings.EqualFold(s[i:j], "u") {
				k := endString(s, j+2, true)
				out = append(out, token{tString, s[i:k]})
				i = k
				continue
			}
			out = append(out, token{tWord, s[i:j]})
			i = j
		case strings.IndexByte("()[]{},;.", c) >= 0:
			if c == '.' && strings.HasPrefix(s[i:], "...") {
				out = append(out, token{tOp, "..."})
				i += 3
				continue
			}
			out = append(out, token{tPunct, s[i : i+1]})
			i++
		default:
			op := matchOp(s[i:])
			out = append(out, token{tOp, op})
			i += len(op)
		}
	}
	return out
}

// multiOps are the operators of more than one character, longest first.
var multiOps = []string{
	"!~~*", "->>", "#>>", "<=>", "!~*", "~~*", "!~~", "...",
	"<=", ">=", "<>", "!=", "||", "->", "#>", "@>", "<@", "&&", "<<", ">>", "!~", "~*", "~~", "@@", "?|", "?&",
}

// matchOp returns the operator at the start of s: a known multi-character
// operator, else one rune.
func matchOp(s string) string {
	for _, op := range multiOps {
		if strings.HasPrefix(s, op) {
			return op
		}
	}
	_, n := utf8.DecodeRuneInString(s)
	return s[:n]
}

// atVariable returns the end of the @name or @@name at s[i] (MySQL
// variables), or i when there is none.
func atVariable(s string, i int) int {
	j := i + 1
	if j < len(s) && s[j] == '@' {
		j++
	}
	if j < len(s) && isWordStart(s[j]) {
		if k := endWord(s, j); k > j {
			return k
		}
	}
	return i
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isWordStart reports whether c starts an identifier: a letter, _ or the
// first byte of a non-ASCII rune.
func isWordStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= utf8.RuneSelf
}

func endWord(s string, i int) int {
	for i < len(s) {
		c := s[i]
		if isWordStart(c) || isDigit(c) || c == '$' {
			if c >= utf8.RuneSelf {
				r, n := utf8.DecodeRuneInString(s[i:])
				if r == utf8.RuneError || !(unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)) {
					return i
				}
				i += n
				continue
			}
			i++
			continue
		}
		return i
	}
	return i
}

// afterName reports whether the last token names something, so that a dot
// after it is a qualifier (t.1 is not the number .1).
func afterName(out []token) bool {
	if len(out) == 0 {
		return false
	}
	t := out[len(out)-1]
	return t.kind == tWord || t.kind == tQuoted || (t.kind == tPunct && (t.text == ")" || t.text == "]"))
}

func endNumber(s string, i int) int {
	if s[i] == '0' && i+1 < len(s) && (s[i+1] == 'x' || s[i+1] == 'X' || s[i+1] == 'b' || s[i+1] == 'B' || s[i+1] == 'o' || s[i+1] == 'O') {
		j := i + 2
		for j < len(s) && (isHex(s[j]) || s[j] == '_') {
			j++
		}
		if j > i+2 {
			return j
		}
	}
	j := i
	for j < len(s) && (isDigit(s[j]) || s[j] == '_') {
		j++
	}
	if j < len(s) && s[j] == '.' && !strings.HasPrefix(s[j:], "..") {
		j++
		for j < len(s) && (isDigit(s[j]) || s[j] == '_') {
			j++
		}
	}
	if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
		k := j + 1
		if k < len(s) && (s[k] == '+' || s[k] == '-') {
			k++
		}
		if k < len(s) && isDigit(s[k]) {
			for k < len(s) && isDigit(s[k]) {
				k++
			}
			j = k
		}
	}
	return j
}

func isHex(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func isStringPrefix(w string) bool {
	switch strings.ToLower(w) {
	case "e", "n", "x", "b":
		return true
	}
	return len(w) > 1 && w[0] == '_' // a MySQL character set introducer
}

// endString returns the index after the string literal whose body starts at
// i: ” is a quote inside it and, with backslash, so is \'.
func endString(s string, i int, backslash bool) int {
	for i < len(s) {
		switch s[i] {
		case '\\':
			if backslash {
				i += 2
				continue
			}
		case '\'':
			if i+1 < len(s) && s[i+1] == '\'' {
				i += 2
				continue
			}
			return i + 1
		}
		i++
	}
	return len(s)
}

// endQuoted returns the index after the quoted identifier whose body starts
// at i, q being its quote (a doubled q is a q inside it).
func endQuoted(s string, i int, q byte) int {
	for i < len(s) {
		if s[i] == q {
			if i+1 < len(s) && s[i+1] == q {
				i += 2
				continue
			}
			return i + 1
		}
		i++
	}
	return len(s)
}

// dollarTag returns the opening tag ($$ or $name$) of a PostgreSQL
// dollar-quoted string at s[i].
func dollarTag(s string, i int) (string, bool) {
	j := i + 1
	if j < len(s) && (isWordStart(s[j]) && s[j] < utf8.RuneSelf) {
		for j < len(s) && (isWordStart(s[j]) || isDigit(s[j])) && s[j] < utf8.RuneSelf {
			j++
		}
	}
	if j < len(s) && s[j] == '$' {
		return s[i : j+1], true
	}
	return "", false
}

func skipBlockComment(s string, i int) int {
	depth := 0
	for i < len(s) {
		switch {
		case strings.HasPrefix(s[i:], "/*"):
			depth++
			i += 2
		case strings.HasPrefix(s[i:], "*/"):
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return len(s)
}

// firstKeyword returns the first word of query, upper-cased, skipping
// comments and opening parentheses; "" when there is none.
func firstKeyword(query string) string {
	for _, t := range lex(query) {
		switch {
		case t.kind == tPunct && t.text == "(":
			continue
		case t.kind == tWord:
			return strings.ToUpper(t.text)
		}
		return ""
	}
	return ""
}

// isBlank reports whether query has no tokens: empty, blank or comments only.
func isBlank(query string) bool { return len(lex(query)) == 0 }

// explainable reports whether a statement starting with keyword kw is one the
// databases can explain (SELECT and DML; not DDL, SET, SHOW, BEGIN, ...).
func explainable(kw string) bool {
	switch kw {
	case "SELECT", "WITH", "INSERT", "UPDATE", "DELETE", "REPLACE", "MERGE", "VALUES", "TABLE":
		return true
	}
	return false
}

// writes reports whether a statement starting with kw may change data (a
// WITH may hold a data-modifying CTE on PostgreSQL).
func writes(kw string) bool {
	switch kw {
	case "SELECT", "VALUES", "TABLE":
		return false
	}
	return true
}

// aliasStop are words that can follow a table name and are not its alias.
var aliasStop = map[string]bool{
	"WHERE": true, "JOIN": true, "ON": true, "USING": true, "LEFT": true, "RIGHT": true, "INNER": true,
	"OUTER": true, "FULL": true, "CROSS": true, "NATURAL": true, "STRAIGHT_JOIN": true, "GROUP": true,
	"ORDER": true, "HAVING": true, "LIMIT": true, "OFFSET": true, "UNION": true, "EXCEPT": true,
	"INTERSECT": true, "SET": true, "VALUES": true, "SELECT": true, "FOR": true, "WINDOW": true,
	"RETURNING": true, "FORCE": true, "IGNORE": true, "USE": true, "PARTITION": true, "TABLESAMPLE": true,
	"DEFAULT": true, "ONLY": true, "LATERAL": true, "AS": true, "FETCH": true, "LOCK": true, "INDEXED": true,
	"NOT": true, "WITH": true, "ROWS": true, "DO": true, "OUTPUT": true,
}

// tableAliases returns, for each alias in query's FROM, JOIN, UPDATE and
// INTO clauses, the table it stands for (keys lower-cased). It is a
// heuristic for the plans (MySQL's, SQLite's) that show only aliases.
func tableAliases(query string) map[string]string {
	toks := lex(query)
	m := map[string]string{}
	name := func(i int) (string, int) { // a possibly qualified name at toks[i]
		var b strings.Builder
		for i < len(toks) {
			t := toks[i]
			if t.kind != tWord && t.kind != tQuoted {
				break
			}
			b.WriteString(unquote(t.text))
			if i+2 < len(toks) && toks[i+1].text == "." && toks[i+1].kind == tPunct {
				b.WriteByte('.')
				i += 2
				continue
			}
			i++
			break
		}
		return b.String(), i
	}
	for i := 0; i < len(toks); i++ {
		if toks[i].kind != tWord {
			continue
		}
		switch strings.ToUpper(toks[i].text) {
		case "FROM", "JOIN", "UPDATE", "INTO", "STRAIGHT_JOIN":
		default:
			continue
		}
		j := i + 1
		for {
			if j < len(toks) && toks[j].kind == tWord && strings.EqualFold(toks[j].text, "ONLY") {
				j++
			}
			table, k := name(j)
			if table == "" || k == j {
				break
			}
			if aliasStop[strings.ToUpper(toks[j].text)] && toks[j].kind == tWord {
				break
			}
			j = k
			if j < len(toks) && toks[j].kind == tWord && strings.EqualFold(toks[j].text, "AS") {
				j++
			}
			if j < len(toks) && (toks[j].kind == tQuoted || (toks[j].kind == tWord && !aliasStop[strings.ToUpper(toks[j].text)])) {
				m[strings.ToLower(unquote(toks[j].text))] = table
				j++
			}
			if j < len(toks) && toks[j].kind == tPunct && toks[j].text == "," {
				j++
				continue
			}
			break
		}
	}
	return m
}

// unquote strips the quotes of a quoted identifier.
func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '`') && s[len(s)-1] == s[0] {
		q := string(s[0])
		return strings.ReplaceAll(s[1:len(s)-1], q+q, q)
	}
	return s
}
