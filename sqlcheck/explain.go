package sqlcheck

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Explain asks the database how it runs query with args and returns the
// plan. db is a *sql.DB, *sql.Conn or *sql.Tx (see [DB]).
//
//   - PostgreSQL: EXPLAIN (ANALYZE, BUFFERS, VERBOSE, FORMAT JSON), in a
//     transaction (or, inside a *sql.Tx, after a savepoint) that is rolled
//     back, so that writes change nothing (sequences advanced by the
//     statement stay advanced: PostgreSQL never rolls them back).
//   - MariaDB: ANALYZE FORMAT=JSON, rolled back the same way; a write to a
//     table whose engine cannot roll back (MyISAM, Aria, MEMORY, ...) is
//     not run: its plan is EXPLAIN FORMAT=JSON and Plan.AnalyzeError says
//     why.
//   - MySQL: for a read on MySQL 8.3 and later, EXPLAIN ANALYZE FORMAT=JSON
//     INTO a session variable (format 2; the session's
//     explain_json_format_version is restored); otherwise, and for writes,
//     EXPLAIN FORMAT=JSON (either format), which does not run the statement.
//   - SQLite: EXPLAIN QUERY PLAN, which does not run the statement.
//
// When running the statement fails (an INSERT whose row exists by now, a
// constraint, a deadlock, a row lock held elsewhere for more than 5 s),
// Explain falls back to the plain EXPLAIN, which does not run it, and reports
// the failure in Plan.AnalyzeError.
//
// Values of type [Dialect] among args choose the dialect instead of detecting
// it, and Analyze(false) asks for the plain EXPLAIN everywhere; neither is
// sent as a bind parameter. Explain's own statements are not recorded by a
// [Recorder] the db may go through.
//
// Explain returns ErrNilDB, ErrEmptyQuery, ErrUnknownDialect or an error
// wrapping ErrExplain and the database's error for a statement that cannot
// be explained (DDL, a syntax error, a missing table).
func Explain(ctx context.Context, db DB, query string, args ...any) (*Plan, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if isNil(db) {
		return nil, ErrNilDB
	}
	if isBlank(query) {
		return nil, ErrEmptyQuery
	}
	cfg := explainConfig{analyze: true}
	params := make([]any, 0, len(args))
	for _, a := range args {
		switch o := a.(type) {
		case Dialect:
			cfg.dialect = o
		case analyzeOption:
			cfg.analyze = bool(o)
		default:
			params = append(params, a)
		}
	}
	return explain(WithoutRecording(ctx), db, query, params, cfg)
}

// explainConfig is what Explain's options set.
type explainConfig struct {
	dialect Dialect // "" to detect
	analyze bool
}

// analyzeOption is the Rule and Explain option Analyze returns.
type analyzeOption bool

// Analyze(false) makes Explain (passed among its args) or Assert and
// CheckQueries (among their rules) use the plain EXPLAIN, which plans the
// statement without running it: the plans have estimates but no actual rows
// or times. Analyze(true) is the default.
func Analyze(on bool) Rule { return analyzeOption(on) }

func (a analyzeOption) String() string { return fmt.Sprintf("Analyze(%t)", bool(a)) }

func (a analyzeOption) apply(rs *ruleSet) { v := bool(a); rs.analyze = &v }

func explain(ctx context.Context, db DB, query string, args []any, cfg explainConfig) (*Plan, error) {
	d := cfg.dialect
	if d == "" {
		var err error
		if d, err = detect(ctx, db); err != nil {
			return nil, err
		}
	} else if !d.valid() {
		return nil, fmt.Errorf("%w %q: want %s, %s, %s or %s", ErrUnknownDialect, string(d), Postgres, MySQL, MariaDB, SQLite)
	}
	var p *Plan
	var err error
	switch d {
	case Postgres:
		p, err = explainPostgres(ctx, db, query, args, cfg.analyze)
	case MySQL, MariaDB:
		p, err = explainMySQL(ctx, db, d, query, args, cfg.analyze)
	case SQLite:
		p, err = explainSQLite(ctx, db, query, args)
	}
	if err != nil {
		return nil, err
	}
	p.Dialect, p.Query = d, query
	countFullScans(ctx, db, d, p)
	return p, nil
}

// explainError wraps err, the database's refusal to explain query.
func explainError(query string, err error) error {
	return fmt.Errorf("%w %s: %w", ErrExplain, oneLine(query, 200), err)
}

// oneLine shortens s to one line of at most n bytes, for messages.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// lockTimeout is how long a statement Explain runs may wait for a lock (a
// row the test itself holds in another transaction) before Explain gives up
// running it and explains it without running.
const lockTimeout = 5 * time.Second

// errNoUndo is returned by undoScope when the statements cannot be undone.
var errNoUndo = errors.New("sqlcheck: not in a transaction that can be rolled back")

// savepoint is the name of the savepoint Explain rolls back to inside a
// caller's transaction.
const savepoint = "sqlcheck_explain"

// undoScope runs fn with a handle whose changes are undone when fn returns:
// a transaction of its own that it rolls back when db can begin one, else a
// savepoint inside db's transaction that it rolls back to.
func undoScope(ctx context.Context, db DB, d Dialect, fn func(q DB) error) error {
	if b, ok := db.(beginner); ok {
		tx, err := b.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("sqlcheck: begin: %w", err)
		}
		defer func() { _ = tx.Rollback() }()
		return fn(tx)
	}
	if d == MariaDB || d == MySQL {
		// Outside a transaction a MySQL savepoint is accepted and useless:
		// the statement would commit.
		var in int64
		if err := queryRow(ctx, db, "SELECT @@in_transaction").Scan(&in); err != nil || in == 0 {
			return fmt.Errorf("%w (db is neither a *sql.DB, a *sql.Conn nor in a transaction)", errNoUndo)
		}
	}
	if _, err := db.ExecContext(ctx, "SAVEPOINT "+savepoint); err != nil {
		return fmt.Errorf("%w: %w", errNoUndo, err)
	}
	ferr := fn(db)
	if _, err := db.ExecContext(ctx, "ROLLBACK TO SAVEPOINT "+savepoint); err != nil {
		return errors.Join(ferr, fmt.Errorf("sqlcheck: roll back to savepoint: %w", err))
	}
	if _, err := db.ExecContext(ctx, "RELEASE SAVEPOINT "+savepoint); err != nil {
		return errors.Join(ferr, fmt.Errorf("sqlcheck: release savepoint: %w", err))
	}
	return ferr
}

// maxCount bounds the rows countFullScans counts in one table.
const maxCount = 1_000_000

// countFullScans fills TableRows for the full scans of p, counting at most
// maxCount+1 rows of each table. A table it cannot count keeps -1.
func countFullScans(ctx context.Context, db DB, d Dialect, p *Plan) {
	type key struct{ schema, table string }
	var todo []key
	seen := map[key]bool{}
	walkPtr(p.nodes, func(n *Node) {
		k := key{n.Schema, n.Table}
		if n.FullScan && n.Table != "" && !seen[k] {
			seen[k] = true
			todo = append(todo, k)
		}
	})
	if len(todo) == 0 {
		return
	}
	counts := map[key]int64{}
	count := func(q DB) error {
		for _, k := range todo {
			name := quoteIdent(d, k.table)
			if k.schema != "" {
				name = quoteIdent(d, k.schema) + "." + quoteIdent(d, k.table)
			}
			var n int64
			err := queryRow(ctx, q, fmt.Sprintf("SELECT count(*) FROM (SELECT 1 FROM %s LIMIT %d) sqlcheck_rows", name, maxCount+1)).Scan(&n)
			if err != nil {
				return err // on PostgreSQL the transaction is aborted: stop
			}
			counts[k] = n
		}
		return nil
	}
	if _, ok := db.(beginner); d == Postgres && !ok {
		// In the caller's transaction, which a failed count would abort.
		_ = undoScope(ctx, db, d, count)
	} else {
		_ = count(db)
	}
	walkPtr(p.nodes, func(n *Node) {
		if c, ok := counts[key{n.Schema, n.Table}]; ok && n.FullScan {
			n.TableRows = c
		}
	})
}

// quoteIdent quotes a table name, possibly qualified (db.table), for d.
func quoteIdent(d Dialect, name string) string {
	q := `"`
	if d == MySQL || d == MariaDB {
		q = "`"
	}
	parts := []string{name}
	if d != Postgres { // MySQL and SQLite plans may name db.table
		parts = strings.Split(name, ".")
	}
	for i, p := range parts {
		parts[i] = q + strings.ReplaceAll(p, q, q+q) + q
	}
	return strings.Join(parts, ".")
}
