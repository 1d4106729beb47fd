// Package dbtest finds the SQL databases the tests use, the way
// internal/redistest finds Redis: an environment variable names the
// database, else the local default is tried; when it does not answer the test
// is skipped with one line, or fails when CI, OUTRIGGER_REQUIRE_SERVICES or
// OUTRIGGER_REQUIRE_REDIS is set.
//
//	PostgreSQL  OUTRIGGER_POSTGRES_DSN, else DATABASE_URL when it is a
//	            postgres:// URL, else postgres://postgres@127.0.0.1:5432/test
//	MySQL       OUTRIGGER_MYSQL_DSN, else root@tcp(127.0.0.1:3306)/test
//
// The package imports no driver: the test imports the one it uses (pgx's
// stdlib registers "pgx", go-sql-driver/mysql registers "mysql") and passes
// its name.
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"
)

// Environment variables read by the package.
const (
	EnvPostgres = "OUTRIGGER_POSTGRES_DSN"
	EnvMySQL    = "OUTRIGGER_MYSQL_DSN"
	// EnvRequire, when set to a true value, turns a missing database into a
	// failure, as CI and OUTRIGGER_REQUIRE_REDIS do.
	EnvRequire = "OUTRIGGER_REQUIRE_SERVICES"
)

// Default addresses of the local databases.
const (
	DefaultPostgres = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	DefaultMySQL    = "root@tcp(127.0.0.1:3306)/test"
)

// PostgresDSN returns the PostgreSQL the tests use.
func PostgresDSN() string {
	if v := os.Getenv(EnvPostgres); v != "" {
		return v
	}
	if v := os.Getenv("DATABASE_URL"); strings.HasPrefix(v, "postgres://") || strings.HasPrefix(v, "postgresql://") {
		return v
	}
	return DefaultPostgres
}

// MySQLDSN returns the MySQL or MariaDB the tests use, in go-sql-driver's
// DSN format.
func MySQLDSN() string {
	if v := os.Getenv(EnvMySQL); v != "" {
		return v
	}
	return DefaultMySQL
}

// Required reports whether a missing database must fail the tests: CI,
// OUTRIGGER_REQUIRE_SERVICES or OUTRIGGER_REQUIRE_REDIS is set to a true
// value.
func Required() bool {
	for _, e := range []string{"CI", EnvRequire, "OUTRIGGER_REQUIRE_REDIS"} {
		switch strings.ToLower(strings.TrimSpace(os.Getenv(e))) {
		case "", "0", "false", "no", "off":
		default:
			return true
		}
	}
	return false
}

// Postgres opens the test PostgreSQL with the "pgx" driver, closed when the
// test ends.
func Postgres(tb testing.TB) *sql.DB {
	tb.Helper()
	return Open(tb, "PostgreSQL", "pgx", PostgresDSN())
}

// MySQL opens the test MySQL/MariaDB with the "mysql" driver, closed when
// the test ends.
func MySQL(tb testing.TB) *sql.DB { tb.Helper(); return Open(tb, "MySQL", "mysql", MySQLDSN()) }

// Open opens dsn with driverName and pings it (for up to 10 s); when that
// fails it skips the test, or fails it when Required. The handle is closed
// when the test ends.
func Open(tb testing.TB, what, driverName, dsn string) *sql.DB {
	tb.Helper()
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		tb.Fatalf("dbtest: open %s: %v", what, err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		SkipOrFail(tb, what+" at "+redact(dsn)+": "+err.Error())
	}
	return db
}

// SkipOrFail ends the test: a skip on a laptop, a failure when Required.
func SkipOrFail(tb testing.TB, reason string) {
	tb.Helper()
	if Required() {
		tb.Fatalf("dbtest: %s (the database is required: CI, %s or OUTRIGGER_REQUIRE_REDIS is set)", reason, EnvRequire)
	}
	tb.Skipf("dbtest: %s", reason)
}

// Name returns a table (or schema) name that no other test uses: prefix, an
// underscore and 12 random hex digits, in lower case.
func Name(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return strings.ToLower(prefix) + "_" + hex.EncodeToString(b[:])
}

// Table returns a unique table name (see Name) and drops the table, if it
// exists, when the test ends.
func Table(tb testing.TB, db *sql.DB, prefix string) string {
	tb.Helper()
	name := Name(prefix)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS "+name); err != nil {
			tb.Errorf("dbtest: drop table %s: %v", name, err)
		}
	})
	return name
}

// redact hides the password of a DSN in messages.
func redact(dsn string) string {
	at := strings.LastIndexByte(dsn, '@')
	if at < 0 {
		return dsn
	}
	head := dsn[:at]
	scheme := ""
	if i := strings.Index(head, "://"); i >= 0 {
		scheme, head = head[:i+3], head[i+3:]
	}
	if i := strings.IndexByte(head, ':'); i >= 0 {
		head = head[:i] + ":xxx"
	}
	return scheme + head + dsn[at:]
}
