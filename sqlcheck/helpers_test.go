package sqlcheck_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/outrigger-dev/outrigger/internal/dbtest"
	"github.com/outrigger-dev/outrigger/sqlcheck"
)

// backend is one database the tests run against.
type backend struct {
	name    string
	dialect sqlcheck.Dialect
	open    func(t testing.TB) *sql.DB
	// ph returns the n-th (1-based) placeholder.
	ph func(n int) string
	// driver and dsn are the registered driver and the DSN open uses.
	driver string
	dsn    func(t testing.TB) string
}

func sqliteDSN(t testing.TB) string {
	return "file:" + filepath.Join(t.TempDir(), "test.db") + "?_pragma=busy_timeout(5000)"
}

func openSQLite(t testing.TB) *sql.DB {
	t.Helper()
	return dbtest.Open(t, "SQLite", "sqlite", sqliteDSN(t))
}

var backends = []backend{
	{"postgres", sqlcheck.Postgres, dbtest.Postgres, func(n int) string { return fmt.Sprintf("$%d", n) }, "pgx", func(testing.TB) string { return dbtest.PostgresDSN() }},
	{"mariadb", sqlcheck.MariaDB, dbtest.MySQL, func(int) string { return "?" }, "mysql", func(testing.TB) string { return dbtest.MySQLDSN() }},
	{"sqlite", sqlcheck.SQLite, openSQLite, func(int) string { return "?" }, "sqlite", sqliteDSN},
}

// forEach runs fn as a subtest per backend.
func forEach(t *testing.T, fn func(t *testing.T, be backend, db *sql.DB)) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			db := be.open(t)
			if be.name == "mariadb" {
				var v string
				if err := db.QueryRow("SELECT VERSION()").Scan(&v); err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(strings.ToLower(v), "mariadb") {
					be.dialect = sqlcheck.MySQL
				}
			}
			fn(t, be, db)
		})
	}
}

// exec runs statements, failing the test on an error.
func exec(t testing.TB, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.ExecContext(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// itemsTable creates a table of n rows (id, x = id % 1000, y) with no index
// on x, dropped when the test ends.
func itemsTable(t testing.TB, db *sql.DB, be backend, n int) string {
	t.Helper()
	name := dbtest.Table(t, db, "sc_items")
	exec(t, db, fmt.Sprintf("CREATE TABLE %s (id INTEGER PRIMARY KEY, x INTEGER NOT NULL, y VARCHAR(40) NOT NULL)", name))
	const per = 1000
	for lo := 0; lo < n; lo += per {
		var b strings.Builder
		fmt.Fprintf(&b, "INSERT INTO %s (id, x, y) VALUES ", name)
		for i := lo; i < min(n, lo+per); i++ {
			if i > lo {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "(%d, %d, 'item %d')", i, i%1000, i)
		}
		exec(t, db, b.String())
	}
	analyze(t, db, be, name)
	return name
}

// analyze refreshes the planner's statistics of table.
func analyze(t testing.TB, db *sql.DB, be backend, table string) {
	t.Helper()
	switch be.dialect {
	case sqlcheck.Postgres:
		exec(t, db, "ANALYZE "+table)
	case sqlcheck.MySQL, sqlcheck.MariaDB:
		rows, err := db.Query("ANALYZE TABLE " + table)
		if err != nil {
			t.Fatal(err)
		}
		rows.Close()
	case sqlcheck.SQLite:
		exec(t, db, "ANALYZE")
	}
}
