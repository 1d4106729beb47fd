package sqlcheck_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/outrigger-dev/outrigger/sqlcheck"
)

// BenchmarkShape measures the normaliser on statements of a few sizes.
func BenchmarkShape(b *testing.B) {
	for _, bc := range []struct{ name, sql string }{
		{"size=small", "SELECT id, name FROM users WHERE id = $1"},
		{"size=in50", "SELECT id, y FROM items WHERE owner = 42 AND id IN (1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50) ORDER BY id"},
		{"size=values100", "INSERT INTO t (a, b, c) VALUES " + valuesList(100) + " ON CONFLICT (a) DO NOTHING"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.sql)))
			for b.Loop() {
				_ = sqlcheck.Shape(bc.sql)
			}
		})
	}
}

func valuesList(n int) string {
	s := ""
	for i := range n {
		if i > 0 {
			s += ", "
		}
		s += "(?, 'x', 1.5)"
	}
	return s
}

// BenchmarkRecorder measures what recording costs a query on SQLite, with
// and without the Recorder's connector.
func BenchmarkRecorder(b *testing.B) {
	ctx := context.Background()
	dsn := sqliteDSN(b)
	plain, err := sql.Open("sqlite", dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer plain.Close()
	if _, err := plain.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, y TEXT); INSERT INTO t VALUES (1, 'a')"); err != nil {
		b.Fatal(err)
	}
	rec := sqlcheck.NewRecorder()
	recorded, err := rec.Open("sqlite", dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer recorded.Close()
	for _, bc := range []struct {
		name string
		db   *sql.DB
	}{{"impl=plain", plain}, {"impl=recorded", recorded}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				if n++; n%10000 == 0 {
					rec.Reset() // keep the recording's memory bounded
				}
				var y string
				if err := bc.db.QueryRowContext(ctx, "SELECT y FROM t WHERE id = ?", 1).Scan(&y); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
