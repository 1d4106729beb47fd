package sqlcheck

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"reflect"
	"strings"
)

// Dialect names the SQL database a plan comes from. Explain detects it from
// the driver (or, failing that, by asking the server); to set it yourself,
// pass a Dialect among Explain's args, where it is taken as an option and not
// sent as a bind parameter, or among Assert's and CheckQueries' rules:
//
//	plan, err := sqlcheck.Explain(ctx, db, query, sqlcheck.SQLite, 42)
type Dialect string

// The dialects Explain knows.
const (
	// Postgres is PostgreSQL: EXPLAIN (ANALYZE, BUFFERS, VERBOSE, FORMAT JSON)
	// in a transaction that is rolled back.
	Postgres Dialect = "postgres"
	// MySQL is Oracle's MySQL: for reads on MySQL 8.3 and later, EXPLAIN
	// ANALYZE FORMAT=JSON INTO a variable (JSON format 2); otherwise EXPLAIN
	// FORMAT=JSON, which does not run the statement.
	MySQL Dialect = "mysql"
	// MariaDB is MariaDB: ANALYZE FORMAT=JSON in a transaction that is
	// rolled back (EXPLAIN FORMAT=JSON for writes to tables whose engine
	// cannot roll back).
	MariaDB Dialect = "mariadb"
	// SQLite is SQLite: EXPLAIN QUERY PLAN, which never runs the statement.
	SQLite Dialect = "sqlite"
)

// String returns the dialect's name.
func (d Dialect) String() string { return string(d) }

func (d Dialect) valid() bool {
	switch d {
	case Postgres, MySQL, MariaDB, SQLite:
		return true
	}
	return false
}

func (d Dialect) apply(rs *ruleSet) { rs.dialect = d }

// dialectOfPackage maps a driver's Go package path to its dialect. MySQL
// drivers serve MySQL and MariaDB alike: the server's version tells them
// apart.
func dialectOfPackage(path string) Dialect {
	switch {
	case strings.Contains(path, "jackc/pgx"), strings.Contains(path, "lib/pq"), strings.Contains(path, "pgdriver"):
		return Postgres
	case strings.Contains(path, "go-sql-driver/mysql"), strings.Contains(path, "ziutek/mymysql"):
		return MySQL
	case strings.Contains(path, "sqlite"):
		return SQLite
	}
	return ""
}

// unwrapper is implemented by the Recorder's drivers and conns, so that
// detection sees the driver they wrap.
type unwrapper interface{ unwrap() any }

func typePackage(v any) string {
	for {
		u, ok := v.(unwrapper)
		if !ok {
			break
		}
		v = u.unwrap()
	}
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return ""
	}
	return t.PkgPath()
}

// detect returns db's dialect: from its driver when db exposes it (*sql.DB,
// *sql.Conn), else by asking the server for its version.
func detect(ctx context.Context, db DB) (Dialect, error) {
	var pkg string
	switch d := db.(type) {
	case interface{ Driver() driver.Driver }:
		pkg = typePackage(d.Driver())
	case interface {
		Raw(func(driverConn any) error) error
	}:
		_ = d.Raw(func(dc any) error { pkg = typePackage(dc); return nil })
	}
	if dl := dialectOfPackage(pkg); dl != "" {
		if dl == MySQL {
			return mysqlFlavour(ctx, db)
		}
		return dl, nil
	}
	// Ask the server: version() answers on PostgreSQL and MySQL/MariaDB
	// (and does not abort a PostgreSQL transaction); sqlite_version() on
	// SQLite.
	var v string
	if err := queryRow(ctx, db, "SELECT version()").Scan(&v); err == nil {
		switch {
		case strings.HasPrefix(v, "PostgreSQL"):
			return Postgres, nil
		case strings.Contains(strings.ToLower(v), "mariadb"):
			return MariaDB, nil
		case len(v) > 0 && v[0] >= '0' && v[0] <= '9':
			return MySQL, nil
		}
		return "", fmt.Errorf("%w: server version %q (driver %q); pass sqlcheck.Postgres, MySQL, MariaDB or SQLite", ErrUnknownDialect, v, pkg)
	}
	if err := queryRow(ctx, db, "SELECT sqlite_version()").Scan(&v); err == nil {
		return SQLite, nil
	}
	return "", fmt.Errorf("%w: driver %q is not one sqlcheck knows and the server answers neither version() nor sqlite_version(); pass sqlcheck.Postgres, MySQL, MariaDB or SQLite", ErrUnknownDialect, pkg)
}

// mysqlFlavour tells MariaDB from MySQL by the server's version.
func mysqlFlavour(ctx context.Context, db DB) (Dialect, error) {
	var v string
	if err := queryRow(ctx, db, "SELECT VERSION()").Scan(&v); err != nil {
		return "", fmt.Errorf("sqlcheck: read the MySQL server version: %w", err)
	}
	if strings.Contains(strings.ToLower(v), "mariadb") {
		return MariaDB, nil
	}
	return MySQL, nil
}

// row is the part of *sql.Row that queryRow returns.
type row struct {
	rows *sql.Rows
	err  error
}

// queryRow is QueryRowContext for a DB: the first row of query, or its
// error (sql.ErrNoRows when there is none).
func queryRow(ctx context.Context, db DB, query string, args ...any) row {
	rows, err := db.QueryContext(ctx, query, args...)
	return row{rows, err}
}

func (r row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	return r.rows.Close()
}
