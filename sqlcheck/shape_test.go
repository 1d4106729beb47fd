package sqlcheck

import "testing"

func TestShape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"SELECT * FROM t WHERE id = 42", "SELECT * FROM t WHERE id = ?"},
		{"select *\n  from t\twhere id = $1 -- api\n", "SELECT * FROM t WHERE id = ?"},
		{"SELECT * FROM t WHERE id IN (1, 2, 3) AND name = 'x'", "SELECT * FROM t WHERE id IN (...) AND name = ?"},
		{"select * from t where id in ($1,$2) and name = $3 /* api */", "SELECT * FROM t WHERE id IN (...) AND name = ?"},
		{"SELECT * FROM t WHERE id IN (?)", "SELECT * FROM t WHERE id IN (...)"},
		{"SELECT * FROM t WHERE (a, b) IN ((1, 2), (3, 4))", "SELECT * FROM t WHERE (a, b) IN (...)"},
		{"SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE x = 1)", "SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE x = ?)"},
		{"INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (3, NULL)", "INSERT INTO t (a, b) VALUES (...)"},
		{"INSERT INTO t (a, b) VALUES ($1, $2)", "INSERT INTO t (a, b) VALUES (...)"},
		{"insert into t (a, b) values (?, now())", "INSERT INTO t (a, b) VALUES (?, now())"},
		{"INSERT INTO t VALUES (1,2),(3,4) ON CONFLICT (id) DO NOTHING", "INSERT INTO t VALUES (...) ON CONFLICT (id) DO NOTHING"},
		{"SELECT -5, x - 5, x-5, f(-1.5e3)", "SELECT ?, x - ?, x - ?, f(?)"},
		{"SELECT 'it''s', E'a\\'b', $$dollar$$, $q$x$q$, X'ff', 0x1F, .5", "SELECT ?, ?, ?, ?, ?, ?, ?"},
		{"SELECT * FROM t WHERE a = :name AND b = ?1 AND c::int = 1", "SELECT * FROM t WHERE a = ? AND b = ? AND c::int = ?"},
		{`SELECT "Weird Col", ` + "`x`" + ` FROM "T" t1 WHERE t1.c2 = 3;`, `SELECT "Weird Col", ` + "`x`" + ` FROM "T" t1 WHERE t1.c2 = ?`},
		{"SELECT count(*) FROM t", "SELECT count(*) FROM t"},
		{"SELECT COUNT (*) FROM t", "SELECT COUNT(*) FROM t"},
		{"SELECT a[1] FROM t LIMIT 10 OFFSET 20", "SELECT a[?] FROM t LIMIT ? OFFSET ?"},
		{"/* only a comment */", ""},
		{"", ""},
		{"SELECT 'unterminated", "SELECT ?"},
		{"SELECT @v, @@version", "SELECT @v, @@version"},
	}
	for _, tc := range tests {
		if got := Shape(tc.in); got != tc.want {
			t.Errorf("Shape(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
		if got := Shape(tc.want); got != tc.want {
			t.Errorf("Shape is not idempotent on %q: got %q", tc.want, got)
		}
	}
}
