package sqlcheck_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/sqlcheck"
)

func TestBadInput(t *testing.T) {
	ctx := context.Background()
	db := openSQLite(t)
	exec(t, db, "CREATE TABLE t (id INTEGER PRIMARY KEY, x INT)")
	var nilDB *sql.DB
	var nilTx *sql.Tx
	tests := []struct {
		name string
		db   sqlcheck.DB
		q    string
		args []any
		want error
	}{
		{"nil db", nil, "SELECT 1", nil, sqlcheck.ErrNilDB},
		{"typed nil db", nilDB, "SELECT 1", nil, sqlcheck.ErrNilDB},
		{"typed nil tx", nilTx, "SELECT 1", nil, sqlcheck.ErrNilDB},
		{"empty", db, "", nil, sqlcheck.ErrEmptyQuery},
		{"blank", db, " \n\t ", nil, sqlcheck.ErrEmptyQuery},
		{"comments only", db, "-- nothing\n/* here */", nil, sqlcheck.ErrEmptyQuery},
		{"unknown dialect", db, "SELECT 1", []any{sqlcheck.Dialect("oracle")}, sqlcheck.ErrUnknownDialect},
		{"syntax error", db, "SELEKT 1", nil, sqlcheck.ErrExplain},
		{"missing table", db, "SELECT * FROM no_such_table", nil, sqlcheck.ErrExplain},
		{"wrong dialect", db, "SELECT 1", []any{sqlcheck.Postgres}, sqlcheck.ErrExplain},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := sqlcheck.Explain(ctx, tc.db, tc.q, tc.args...)
			require.ErrorIs(t, err, tc.want)
			require.Nil(t, p)
		})
	}
	//lint:ignore SA1012 a nil context must not panic
	_, err := sqlcheck.Explain(nil, db, "SELECT 1") //nolint:staticcheck
	require.NoError(t, err)

	plan, err := sqlcheck.Explain(ctx, db, "SELECT * FROM t")
	require.NoError(t, err)
	for _, r := range []sqlcheck.Rule{
		sqlcheck.MaxRows(-1), sqlcheck.MinRows(-1), sqlcheck.MaxCost(-1), sqlcheck.MaxTime(-1),
		sqlcheck.NoSeqScan(""), sqlcheck.UsesIndex("", ""), sqlcheck.NodeRule("", nil), nil,
	} {
		require.ErrorIs(t, plan.Check(r), sqlcheck.ErrInvalidRule, "%v", r)
	}
	for _, r := range []sqlcheck.Rule{sqlcheck.MaxQueries(-1), sqlcheck.NoRepeats(0)} {
		require.ErrorIs(t, sqlcheck.CheckQueries(ctx, nil, nil, r), sqlcheck.ErrInvalidRule, "%v", r)
	}
	// Rules SQLite cannot check say so rather than pass.
	require.ErrorContains(t, plan.Check(sqlcheck.MaxCost(1e9)), "sqlite reports no cost")
	require.ErrorContains(t, plan.Check(sqlcheck.MaxRows(1e9)), "sqlite reports no row counts")
	// A rule that panics is reported, not propagated.
	err = plan.Check(sqlcheck.NodeRule("Boom", func(sqlcheck.Node) error { panic("boom") }))
	require.ErrorContains(t, err, "Boom")
	require.ErrorContains(t, err, "panic: boom")
	// Plan rules without a db.
	qs := []sqlcheck.Query{{SQL: "SELECT * FROM t", Shape: "SELECT * FROM t"}}
	require.ErrorIs(t, sqlcheck.CheckQueries(ctx, nil, qs, sqlcheck.NoSeqScan()), sqlcheck.ErrNilDB)
	require.NoError(t, sqlcheck.CheckQueries(ctx, nil, qs, sqlcheck.MaxQueries(1)))
	// A nil Recorder records nothing and does not panic.
	var rec *sqlcheck.Recorder
	rec.Record(ctx, sqlcheck.Query{SQL: "SELECT 1"})
	rec.Reset()
	require.Empty(t, rec.Queries())
}
