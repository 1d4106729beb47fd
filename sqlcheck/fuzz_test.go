package sqlcheck

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzShape checks that Shape accepts anything, is idempotent, keeps valid
// UTF-8 valid and writes no literal, and that the other lexer users do not
// panic. Corpus: testdata/fuzz/FuzzShape.
func FuzzShape(f *testing.F) {
	for _, s := range []string{
		"SELECT * FROM t WHERE id IN (1, 2, 3) AND name = 'x'",
		"insert into t (a) values ($1), ($2) on conflict do nothing",
		"SELECT $$a$$, $tag$b$tag$, E'\\'', X'ff', -1.5e-3, :name, ?1, @v, @@g",
		"/* c */ select \"Q\"\"x\", `b``c` from t -- end",
		"SELECT a::int[], b->>'k', c @> '{}' FROM t WHERE (a, b) IN ((1, 2), (3, 4))",
		"SELECT 'unterminated", "/* unterminated", "$$ unterminated", "\"unterminated",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Shape(s)
		if again := Shape(got); again != got {
			t.Fatalf("not idempotent:\n in  %q\n got %q\n then %q", s, got, again)
		}
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("invalid UTF-8 out of valid input %q: %q", s, got)
		}
		// Quoted identifiers keep their insides; everything else has its
		// whitespace normalised.
		if !strings.ContainsAny(s, "\"`") && (strings.ContainsAny(got, "\n\t") || strings.Contains(got, "  ")) {
			t.Fatalf("whitespace not normalised: %q", got)
		}
		_ = tableAliases(s)
		_ = firstKeyword(s)
	})
}

// FuzzParsePlan checks that the plan readers reject malformed database
// output with an error, never a panic.
func FuzzParsePlan(f *testing.F) {
	f.Add(mysqlDocV1)
	f.Add(mysqlDocV2)
	f.Add(pgJoin)
	f.Add(`{"query_block": {"table": {"table_name": "t", "access_type": "ALL", "rows": "x"}}}`)
	f.Add("SEARCH a USING AUTOMATIC COVERING INDEX (x=?)")
	f.Fuzz(func(t *testing.T, raw string) {
		sp := buildSQLite([]sqliteLine{{id: 1, detail: raw}, {id: 2, parent: 1, detail: raw}, {id: 3, parent: 3, detail: raw}}, map[string]string{"a": "t"})
		_ = sp.String()
		_ = sp.Check(NoSeqScan(), UsesIndex("t", "i"), MinRows(5))
		if p, err := parseMySQL(raw, map[string]string{"o": "orders"}, true); err == nil {
			_ = p.String()
			_ = p.Check(NoSeqScan(), MaxRows(10), MaxCost(1), UsesIndex("t", ""), MaxTime(1))
		}
		if p, err := parsePostgres(raw); err == nil {
			_ = p.String()
			_ = p.Check(NoSeqScan(), MaxRows(10), MaxCost(1), UsesIndex("t", ""), MaxTime(1))
		}
	})
}
