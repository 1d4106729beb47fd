package sqlcheck

import "strings"

// Shape returns the shape of a SQL statement: the statement with every
// literal and placeholder replaced by ?, IN lists and multi-row VALUES lists
// collapsed to (...), comments removed, whitespace normalised and keywords
// upper-cased. Statements that differ only in their values have one shape, so
// the shape is what NoRepeats counts:
//
//	SELECT * FROM t WHERE id IN (1, 2, 3) AND name = 'x'  -- and
//	select *
//	  from t where id in ($1,$2) and name = $3 /* api */
//
// both have the shape
//
//	SELECT * FROM t WHERE id IN (...) AND name = ?
//
// Numbers (with a leading sign where it is unary), strings (also E”, X”,
// N”, $tag$ quoting), and the placeholders ?, ?N, $N and :name all become ?.
// Identifiers, quoted or not, are kept as written. Shape never fails: any
// input, SQL or not, has a shape, and Shape(Shape(s)) == Shape(s).
func Shape(query string) string {
	toks := normalise(lex(query))
	var b strings.Builder
	b.Grow(len(query))
	for i, t := range toks {
		if i > 0 && spaceBetween(toks[:i], t) {
			b.WriteByte(' ')
		}
		switch t.kind {
		case tString, tNumber, tParam:
			b.WriteByte('?')
		case tList:
			b.WriteString("(...)")
		case tWord:
			if keywords[strings.ToUpper(t.text)] {
				b.WriteString(strings.ToUpper(t.text))
			} else {
				b.WriteString(t.text)
			}
		default:
			b.WriteString(t.text)
		}
	}
	return b.String()
}

// keywords are upper-cased in shapes so that the case they are written in
// does not matter. Only reserved words are listed: identifiers keep their
// case.
var keywords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`SELECT FROM WHERE AND OR NOT IN IS NULL LIKE ILIKE BETWEEN EXISTS AS ON
		JOIN LEFT RIGHT INNER OUTER FULL CROSS NATURAL USING GROUP BY ORDER HAVING LIMIT OFFSET UNION ALL
		DISTINCT INSERT INTO VALUES UPDATE SET DELETE RETURNING WITH RECURSIVE CASE WHEN THEN ELSE END ASC
		DESC TRUE FALSE CONFLICT DO NOTHING FOR EXCEPT INTERSECT ANY SOME ESCAPE LATERAL OVER PARTITION
		FETCH DEFAULT CAST COLLATE MERGE MATCHED REPLACE DUPLICATE TABLE`) {
		m[w] = true
	}
	return m
}()

// unaryAfter are the keywords after which a sign belongs to the number.
var unaryAfter = map[string]bool{
	"SELECT": true, "WHERE": true, "AND": true, "OR": true, "NOT": true, "THEN": true, "ELSE": true,
	"WHEN": true, "BETWEEN": true, "IN": true, "LIKE": true, "IS": true, "BY": true, "LIMIT": true,
	"OFFSET": true, "VALUES": true, "SET": true, "ON": true, "CASE": true, "RETURN": true, "ANY": true,
}

func isLiteral(t token) bool { return t.kind == tString || t.kind == tNumber || t.kind == tParam }

func isWord(t token, w string) bool { return t.kind == tWord && strings.EqualFold(t.text, w) }

// normalise folds unary signs into numbers, collapses IN and VALUES lists of
// literals into one tList token and drops trailing semicolons.
func normalise(in []token) []token {
	out := make([]token, 0, len(in))
	var opens []int // indexes in out of the unclosed "("
	for i := 0; i < len(in); i++ {
		t := in[i]
		if t.kind == tOp && (t.text == "-" || t.text == "+") && i+1 < len(in) && in[i+1].kind == tNumber && unaryPosition(out) {
			continue // the sign of a literal
		}
		switch {
		case t.kind == tPunct && t.text == "(":
			opens = append(opens, len(out))
			out = append(out, t)
		case t.kind == tPunct && t.text == ")" && len(opens) > 0:
			start := opens[len(opens)-1]
			opens = opens[:len(opens)-1]
			if collapsible(out, start) {
				// A further row of a VALUES list already collapsed: drop it
				// with its comma.
				if start >= 2 && out[start-1].kind == tPunct && out[start-1].text == "," && out[start-2].kind == tList && start >= 3 && isWord(out[start-3], "VALUES") {
					out = out[:start-1]
					continue
				}
				out = append(out[:start], token{tList, "(...)"})
				continue
			}
			out = append(out, t)
		default:
			out = append(out, t)
		}
	}
	for len(out) > 0 && out[len(out)-1].kind == tPunct && out[len(out)-1].text == ";" {
		out = out[:len(out)-1]
	}
	return out
}

// unaryPosition reports whether a sign after out is unary: at the start,
// after an operator, an opening parenthesis, a comma or a keyword such as
// WHERE.
func unaryPosition(out []token) bool {
	if len(out) == 0 {
		return true
	}
	p := out[len(out)-1]
	switch p.kind {
	case tOp:
		return true
	case tPunct:
		return p.text == "(" || p.text == "," || p.text == "["
	case tWord:
		return unaryAfter[strings.ToUpper(p.text)]
	}
	return false
}

// collapsible reports whether the group out[start:] (from its "(") is a list
// of literals after IN or VALUES (or a further row of a VALUES list).
func collapsible(out []token, start int) bool {
	if start == 0 {
		return false
	}
	prev := out[start-1]
	inValues := false
	switch {
	case isWord(prev, "IN"):
	case isWord(prev, "VALUES"):
		inValues = true
	case prev.kind == tPunct && prev.text == "," && start >= 3 && out[start-2].kind == tList && isWord(out[start-3], "VALUES"):
		inValues = true
	default:
		return false
	}
	body := out[start+1:]
	if len(body) == 0 {
		return false
	}
	for _, t := range body {
		switch {
		case isLiteral(t), t.kind == tList:
		case t.kind == tPunct && (t.text == "," || t.text == "(" || t.text == ")"):
		case t.kind == tOp && t.text == "...":
		case isWord(t, "NULL"), isWord(t, "TRUE"), isWord(t, "FALSE"):
		case inValues && isWord(t, "DEFAULT"):
		default:
			return false
		}
	}
	return true
}

// spaceBetween reports whether Shape writes a space between the last of
// before and b.
func spaceBetween(before []token, b token) bool {
	a := before[len(before)-1]
	name := func(t token) bool { return t.kind == tWord || t.kind == tQuoted }
	closes := func(t token) bool { return t.kind == tPunct && (t.text == ")" || t.text == "]") }
	if a.kind == tPunct && (a.text == "(" || a.text == "[") {
		return false
	}
	// t.col, t.*, x::int: only where lexing the result again gives the
	// same tokens (no "..." out of ". . .", no ":::" out of ": ::").
	if a.kind == tPunct && a.text == "." {
		return !(name(b) || (b.kind == tOp && b.text == "*"))
	}
	if b.kind == tPunct && b.text == "." {
		return !(name(a) || closes(a) || isLiteral(a))
	}
	if a.kind == tOp && a.text == "::" {
		return b.kind == tOp
	}
	if b.kind == tOp && b.text == "::" {
		return a.kind == tOp
	}
	if b.kind == tPunct && (b.text == ")" || b.text == "]" || b.text == "," || b.text == ";") {
		return false
	}
	if b.kind == tPunct && (b.text == "(" || b.text == "[") {
		// f(x) and a[1]; but IN (, VALUES (, AS (.
		if a.kind == tWord && !keywords[strings.ToUpper(a.text)] {
			// A table's column list: INTO t (a, b), TABLE t (a int).
			return len(before) >= 2 && (isWord(before[len(before)-2], "INTO") || isWord(before[len(before)-2], "TABLE"))
		}
		if a.kind == tQuoted || (a.kind == tPunct && (a.text == ")" || a.text == "]")) {
			return b.text == "["
		}
	}
	return true
}
