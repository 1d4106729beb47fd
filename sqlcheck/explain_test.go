package sqlcheck_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/sqlcheck"
)

func TestNoSeqScanWithAndWithoutIndex(t *testing.T) {
	forEach(t, func(t *testing.T, be backend, db *sql.DB) {
		ctx := context.Background()
		table := itemsTable(t, db, be, 10000)
		query := "SELECT id, y FROM " + table + " WHERE x = " + be.ph(1)

		plan, err := sqlcheck.Explain(ctx, db, query, 42)
		require.NoError(t, err)
		require.Equal(t, be.dialect, plan.Dialect)
		t.Logf("without index:\n%s", plan)
		err = plan.Check(sqlcheck.NoSeqScan())
		require.Error(t, err)
		require.ErrorIs(t, err, sqlcheck.ErrRuleBroken)
		var ce *sqlcheck.CheckError
		require.ErrorAs(t, err, &ce)
		require.NotEmpty(t, ce.Violations)
		msg := err.Error()
		for _, want := range []string{"NoSeqScan()", table, "full scan", "10000 rows", "plan (" + string(be.dialect)} {
			require.Contains(t, msg, want)
		}
		require.Contains(t, msg, ce.Violations[0].Node.String()) // the node
		require.ErrorIs(t, plan.Check(sqlcheck.NoSeqScan(table)), sqlcheck.ErrRuleBroken)
		require.NoError(t, plan.Check(sqlcheck.NoSeqScan("some_other_table")))
		require.NoError(t, plan.Check(sqlcheck.NoSeqScan(), sqlcheck.MinRows(20000)), "a table under MinRows is exempt")
		require.Error(t, plan.Check(sqlcheck.NoSeqScan(), sqlcheck.MinRows(100)))
		require.Error(t, plan.Check(sqlcheck.UsesIndex(table, "")))

		index := table + "_x"
		exec(t, db, "CREATE INDEX "+index+" ON "+table+" (x)")
		analyze(t, db, be, table)
		plan, err = sqlcheck.Explain(ctx, db, query, 42)
		require.NoError(t, err)
		t.Logf("with index:\n%s", plan)
		require.NoError(t, plan.Check(sqlcheck.NoSeqScan(), sqlcheck.UsesIndex(table, index), sqlcheck.UsesIndex(table, "")))
		err = plan.Check(sqlcheck.UsesIndex(table, "another_index"))
		require.ErrorContains(t, err, "not another_index")
		if be.dialect != sqlcheck.SQLite {
			require.NoError(t, plan.Check(sqlcheck.MaxRows(1000)))
			require.ErrorContains(t, plan.Check(sqlcheck.MaxRows(0)), "MaxRows(0)")
		}
		switch be.dialect {
		case sqlcheck.Postgres, sqlcheck.MariaDB:
			require.True(t, plan.Analyzed, "plan: %s", plan)
			require.NoError(t, plan.Check(sqlcheck.MaxTime(time.Hour)))
		default:
			require.False(t, plan.Analyzed)
			require.ErrorContains(t, plan.Check(sqlcheck.MaxTime(time.Hour)), "not run")
		}
	})
}
