package sqlcheck_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/dbtest"
	"github.com/outrigger-dev/outrigger/sqlcheck"
)

// recordedDB opens be's database through a new Recorder, and without it
// (plain).
func recordedDB(t *testing.T, be backend) (rec *sqlcheck.Recorder, db, plain *sql.DB) {
	t.Helper()
	dsn := be.dsn(t)
	plain = dbtest.Open(t, be.name, be.driver, dsn) // skips (or fails in CI) when the database is absent
	rec = sqlcheck.NewRecorder()
	db, err := rec.Open(be.driver, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return rec, db, plain
}

// fakeT is a TB that collects what Assert reports.
type fakeT struct {
	mu   sync.Mutex
	errs []string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}

func TestRecorderSeesDatabaseSQL(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			rec, db, _ := recordedDB(t, be)
			table := dbtest.Table(t, db, "sc_rec")
			exec(t, db, "CREATE TABLE "+table+" (id INTEGER PRIMARY KEY, y VARCHAR(20))")
			require.Len(t, rec.Queries(), 1)
			rec.Reset()
			require.Empty(t, rec.Queries())

			// Exec, with arguments.
			_, err := db.ExecContext(ctx, "INSERT INTO "+table+" (id, y) VALUES ("+be.ph(1)+", "+be.ph(2)+"), ("+be.ph(3)+", "+be.ph(4)+")", 1, "a", 2, "b")
			require.NoError(t, err)
			// A query, its rows read.
			rows, err := db.QueryContext(ctx, "SELECT id, y FROM "+table+" WHERE id IN ("+be.ph(1)+", "+be.ph(2)+") ORDER BY id", 1, 2)
			require.NoError(t, err)
			n := 0
			for rows.Next() {
				n++
			}
			require.NoError(t, rows.Err())
			require.NoError(t, rows.Close())
			require.Equal(t, 2, n)
			// A prepared statement, run twice.
			st, err := db.PrepareContext(ctx, "SELECT y FROM "+table+" WHERE id = "+be.ph(1))
			require.NoError(t, err)
			for _, id := range []int{1, 2} {
				var y string
				require.NoError(t, st.QueryRowContext(ctx, id).Scan(&y))
			}
			require.NoError(t, st.Close())
			// In a transaction.
			tx, err := db.BeginTx(ctx, nil)
			require.NoError(t, err)
			_, err = tx.ExecContext(ctx, "UPDATE "+table+" SET y = 'c' WHERE id = 2")
			require.NoError(t, err)
			require.NoError(t, tx.Commit())
			// A failing statement.
			_, err = db.ExecContext(ctx, "SELECT * FROM no_such_table_sqlcheck")
			require.Error(t, err)
			// Not recorded: WithoutRecording.
			_, err = db.ExecContext(sqlcheck.WithoutRecording(ctx), "DELETE FROM "+table+" WHERE id = 99")
			require.NoError(t, err)

			qs := rec.Queries()
			require.Len(t, qs, 6, "%v", qs)
			require.Equal(t, "[1 a 2 b]", fmt.Sprint(qs[0].Args))
			require.Equal(t, int64(2), qs[0].Rows)
			require.Equal(t, "INSERT INTO "+table+" (id, y) VALUES (...)", qs[0].Shape)
			require.Equal(t, "SELECT id, y FROM "+table+" WHERE id IN (...) ORDER BY id", qs[1].Shape)
			require.Equal(t, int64(2), qs[1].Rows)
			require.Equal(t, qs[2].Shape, qs[3].Shape)
			require.Equal(t, "[2]", fmt.Sprint(qs[3].Args))
			require.Equal(t, int64(1), qs[3].Rows)
			require.Equal(t, "UPDATE "+table+" SET y = ? WHERE id = ?", qs[4].Shape)
			require.Equal(t, int64(1), qs[4].Rows)
			require.Error(t, qs[5].Err)
			for _, q := range qs {
				require.Positive(t, q.Duration, q.SQL)
			}

			// Explain through the recorded db: detected and not recorded.
			rec.Reset()
			plan, err := sqlcheck.Explain(ctx, db, "SELECT * FROM "+table+" WHERE id = "+be.ph(1), 1)
			require.NoError(t, err)
			require.Equal(t, be.dialect, plan.Dialect)
			require.Empty(t, rec.Queries(), "Explain's statements are not recorded")
		})
	}
}

func TestNPlusOne(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			rec, db, plain := recordedDB(t, be)
			table := itemsTable(t, plain, be, 10000)

			ids := func() []int64 {
				rows, err := db.QueryContext(ctx, "SELECT id FROM "+table+" WHERE id < 50 ORDER BY id")
				require.NoError(t, err)
				defer rows.Close()
				var ids []int64
				for rows.Next() {
					var id int64
					require.NoError(t, rows.Scan(&id))
					ids = append(ids, id)
				}
				require.NoError(t, rows.Err())
				return ids
			}

			// N+1: one query for the list, one per item.
			rec.Reset()
			list := ids()
			require.Len(t, list, 50)
			for _, id := range list {
				var y string
				require.NoError(t, db.QueryRowContext(ctx, "SELECT y FROM "+table+" WHERE id = "+be.ph(1), id).Scan(&y))
			}
			require.Len(t, rec.Queries(), 51)
			err := sqlcheck.CheckQueries(ctx, db, rec.Queries(), sqlcheck.NoRepeats(1))
			require.ErrorIs(t, err, sqlcheck.ErrRuleBroken)
			var qe *sqlcheck.QueriesError
			require.ErrorAs(t, err, &qe)
			require.Contains(t, err.Error(), "NoRepeats(1): 50 × SELECT y FROM "+table+" WHERE id = ?")
			ft := &fakeT{}
			require.False(t, sqlcheck.Assert(ft, rec, db, sqlcheck.MaxQueries(5), sqlcheck.NoSeqScan()))
			require.Len(t, ft.errs, 1)
			require.Contains(t, ft.errs[0], "MaxQueries(5): 51 statements")
			require.Len(t, rec.Queries(), 51, "Assert's explains are not recorded")

			// Batched: the list, then every item in one IN query.
			rec.Reset()
			list = ids()
			args := make([]any, len(list))
			phs := make([]string, len(list))
			for i, id := range list {
				args[i], phs[i] = id, be.ph(i+1)
			}
			rows, err := db.QueryContext(ctx, "SELECT id, y FROM "+table+" WHERE id IN ("+strings.Join(phs, ", ")+")", args...)
			require.NoError(t, err)
			for rows.Next() {
			}
			require.NoError(t, rows.Close())
			require.Len(t, rec.Queries(), 2)
			require.True(t, sqlcheck.Assert(t, rec, db, sqlcheck.NoRepeats(1), sqlcheck.MaxQueries(2), sqlcheck.NoSeqScan(), sqlcheck.UsesIndex(table, "")))

			// A plan rule broken in the unit of work fails Assert with the plan.
			rec.Reset()
			var n int
			require.NoError(t, db.QueryRowContext(ctx, "SELECT count(*) FROM "+table+" WHERE x = "+be.ph(1), 7).Scan(&n))
			require.Equal(t, 10, n)
			ft = &fakeT{}
			require.False(t, sqlcheck.Assert(ft, rec, db, sqlcheck.NoSeqScan(table)))
			require.Len(t, ft.errs, 1)
			require.Contains(t, ft.errs[0], "full scan of table")
			require.Contains(t, ft.errs[0], table)
		})
	}
}

// TestRecorderDriver records through Recorder.Driver, for code that works
// with a driver.Driver (sql.Register) rather than a connector.
func TestRecorderDriver(t *testing.T) {
	ctx := context.Background()
	dsn := sqliteDSN(t)
	plain := dbtest.Open(t, "SQLite", "sqlite", dsn)
	rec := sqlcheck.NewRecorder()
	d := rec.Driver(plain.Driver())
	dc, ok := d.(driver.DriverContext)
	require.True(t, ok)
	c, err := dc.OpenConnector(dsn)
	require.NoError(t, err)
	db := sql.OpenDB(c)
	defer db.Close()
	exec(t, db, "CREATE TABLE t (id INTEGER PRIMARY KEY)")
	conn, err := d.Open(dsn)
	require.NoError(t, err)
	require.NoError(t, conn.Close())
	require.Len(t, rec.Queries(), 1)
	plan, err := sqlcheck.Explain(ctx, db, "SELECT * FROM t WHERE id = ?", 1)
	require.NoError(t, err)
	require.Equal(t, sqlcheck.SQLite, plan.Dialect, "detected through the wrapper")
	_, err = sqlcheck.OpenConnector(nil, dsn)
	require.Error(t, err)
	_, err = rec.Open("no-such-driver", "x")
	require.Error(t, err)
	bad := sql.OpenDB(rec.Connector(nil))
	defer bad.Close()
	require.ErrorContains(t, bad.PingContext(ctx), "nil connector")
}
