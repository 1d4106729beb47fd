package sqlcheck_test

import (
	"context"
	"database/sql"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/sqlcheck"
)

// fingerprint sums up a table's contents.
func fingerprint(t testing.TB, db sqlcheck.DB, table string) string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), "SELECT count(*), COALESCE(sum(x), 0), COALESCE(max(y), '') FROM "+table)
	require.NoError(t, err)
	defer rows.Close()
	require.True(t, rows.Next())
	var n, sum int64
	var maxY string
	require.NoError(t, rows.Scan(&n, &sum, &maxY))
	return fmt.Sprint(n, "/", sum, "/", maxY)
}

// writes are statements that change the table, for TestWritesLeaveTableUnchanged.
func writes(be backend, table string) []struct {
	name  string
	query string
	args  []any
} {
	return []struct {
		name  string
		query string
		args  []any
	}{
		{"update", "UPDATE " + table + " SET y = 'changed', x = x + 1 WHERE x < " + be.ph(1), []any{500}},
		{"delete", "DELETE FROM " + table + " WHERE id >= " + be.ph(1), []any{100}},
		{"insert", "INSERT INTO " + table + " (id, x, y) VALUES (" + be.ph(1) + ", 7, 'new')", []any{20000}},
		{"insert-select", "INSERT INTO " + table + " (id, x, y) SELECT id + 50000, x, y FROM " + table + " WHERE x = " + be.ph(1), []any{3}},
	}
}

func TestWritesLeaveTableUnchanged(t *testing.T) {
	forEach(t, func(t *testing.T, be backend, db *sql.DB) {
		ctx := context.Background()
		table := itemsTable(t, db, be, 2000)
		before := fingerprint(t, db, table)
		for _, w := range writes(be, table) {
			t.Run(w.name, func(t *testing.T) {
				plan, err := sqlcheck.Explain(ctx, db, w.query, w.args...)
				require.NoError(t, err)
				if be.dialect == sqlcheck.Postgres || be.dialect == sqlcheck.MariaDB {
					require.True(t, plan.Analyzed, "%s was not analyzed: %v\n%s", w.query, plan.AnalyzeError, plan)
				}
				require.Equal(t, before, fingerprint(t, db, table), "the table changed")
			})
		}
	})
}

// TestExplainInTransaction explains writes inside the caller's transaction
// (after a savepoint) and on a *sql.Conn: the caller's own changes stay, the
// explained ones do not.
func TestExplainInTransaction(t *testing.T) {
	forEach(t, func(t *testing.T, be backend, db *sql.DB) {
		ctx := context.Background()
		table := itemsTable(t, db, be, 500)

		tx, err := db.BeginTx(ctx, nil)
		require.NoError(t, err)
		defer tx.Rollback()
		_, err = tx.ExecContext(ctx, "INSERT INTO "+table+" (id, x, y) VALUES (9000, 1, 'mine')")
		require.NoError(t, err)
		mine := fingerprint(t, tx, table)
		for _, w := range writes(be, table) {
			plan, err := sqlcheck.Explain(ctx, tx, w.query, w.args...)
			require.NoError(t, err, w.name)
			if be.dialect == sqlcheck.Postgres || be.dialect == sqlcheck.MariaDB {
				require.True(t, plan.Analyzed, "%s: %v", w.name, plan.AnalyzeError)
			}
			require.Equal(t, mine, fingerprint(t, tx, table), "%s changed the table", w.name)
		}
		// A statement that fails when run (a duplicate key) is still
		// explained, without running, and the transaction goes on.
		dup := "INSERT INTO " + table + " (id, x, y) VALUES (9000, 2, 'dup')"
		plan, err := sqlcheck.Explain(ctx, tx, dup)
		require.NoError(t, err)
		require.False(t, plan.Analyzed)
		if be.dialect == sqlcheck.Postgres || be.dialect == sqlcheck.MariaDB {
			require.Error(t, plan.AnalyzeError)
		}
		require.Equal(t, mine, fingerprint(t, tx, table))
		// Full scans are sized inside the transaction: 500 rows and mine.
		plan, err = sqlcheck.Explain(ctx, tx, "SELECT * FROM "+table+" WHERE x = 1")
		require.NoError(t, err)
		require.ErrorContains(t, plan.Check(sqlcheck.NoSeqScan()), "(501 rows)")
		require.NoError(t, tx.Commit())
		require.Equal(t, mine, fingerprint(t, db, table), "the caller's insert is committed")

		conn, err := db.Conn(ctx)
		require.NoError(t, err)
		defer conn.Close()
		plan, err = sqlcheck.Explain(ctx, conn, writes(be, table)[0].query, writes(be, table)[0].args...)
		require.NoError(t, err)
		require.Equal(t, be.dialect, plan.Dialect, "detected from the *sql.Conn's driver")
		require.Equal(t, mine, fingerprint(t, conn, table))
	})
}

func TestAnalyzeOff(t *testing.T) {
	forEach(t, func(t *testing.T, be backend, db *sql.DB) {
		table := itemsTable(t, db, be, 100)
		plan, err := sqlcheck.Explain(context.Background(), db, "DELETE FROM "+table, sqlcheck.Analyze(false))
		require.NoError(t, err)
		require.False(t, plan.Analyzed)
		require.NoError(t, plan.AnalyzeError)
		require.Equal(t, "100/4950/item 99", fingerprint(t, db, table))
	})
}

// TestMariaDBNonTransactionalWrite: a write to a MyISAM table is not run
// (a rollback would not undo it) but still explained.
func TestMariaDBNonTransactionalWrite(t *testing.T) {
	be := backends[1]
	db := be.open(t)
	table := itemsTable(t, db, be, 100)
	exec(t, db, "ALTER TABLE "+table+" ENGINE=MyISAM")
	before := fingerprint(t, db, table)
	plan, err := sqlcheck.Explain(context.Background(), db, "DELETE FROM "+table+" WHERE x > ?", 10)
	require.NoError(t, err)
	require.False(t, plan.Analyzed)
	require.ErrorContains(t, plan.AnalyzeError, "MyISAM")
	require.Equal(t, before, fingerprint(t, db, table))
	// A read of the same table is run.
	plan, err = sqlcheck.Explain(context.Background(), db, "SELECT * FROM "+table+" WHERE x > ?", 10)
	require.NoError(t, err)
	require.True(t, plan.Analyzed)
}

// TestExplicitDialect: a Dialect among the args is an option, not a bind
// parameter. MySQL's path (EXPLAIN FORMAT=JSON, not run) is exercised on the
// MariaDB here, whose JSON has the same form.
func TestExplicitDialect(t *testing.T) {
	be := backends[1]
	db := be.open(t)
	table := itemsTable(t, db, be, 300)
	before := fingerprint(t, db, table)
	plan, err := sqlcheck.Explain(context.Background(), db, "DELETE FROM "+table+" WHERE x = ?", sqlcheck.MySQL, 5)
	require.NoError(t, err)
	require.Equal(t, sqlcheck.MySQL, plan.Dialect)
	require.False(t, plan.Analyzed)
	require.ErrorContains(t, plan.Check(sqlcheck.NoSeqScan(table)), "(300 rows)")
	require.Equal(t, before, fingerprint(t, db, table))
	// A read: MySQL 8.3's EXPLAIN ANALYZE ... INTO is tried, MariaDB has no
	// such thing, and the plain EXPLAIN is used with the reason.
	plan, err = sqlcheck.Explain(context.Background(), db, "SELECT * FROM "+table+" WHERE x = ?", sqlcheck.MySQL, 5)
	require.NoError(t, err)
	require.False(t, plan.Analyzed)
	require.Error(t, plan.AnalyzeError)
	require.ErrorContains(t, plan.Check(sqlcheck.NoSeqScan(table)), "(300 rows)")
}

// TestLockedRowsDoNotHang: a write whose rows another transaction holds is
// not waited for forever: after the lock timeout it is explained without
// running.
func TestLockedRowsDoNotHang(t *testing.T) {
	for _, be := range backends[:2] { // PostgreSQL and MariaDB run statements
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			db := be.open(t)
			table := itemsTable(t, db, be, 100)
			holder, err := db.BeginTx(ctx, nil)
			require.NoError(t, err)
			defer holder.Rollback()
			_, err = holder.ExecContext(ctx, "UPDATE "+table+" SET y = 'held' WHERE id = 1")
			require.NoError(t, err)

			plan, err := sqlcheck.Explain(ctx, db, "UPDATE "+table+" SET y = 'mine' WHERE id = "+be.ph(1), 1)
			require.NoError(t, err)
			require.False(t, plan.Analyzed)
			require.Error(t, plan.AnalyzeError)
			t.Logf("not analyzed: %v", plan.AnalyzeError)
		})
	}
}
