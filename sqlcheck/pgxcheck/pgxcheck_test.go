package pgxcheck_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/dbtest"
	"github.com/outrigger-dev/outrigger/sqlcheck"
	"github.com/outrigger-dev/outrigger/sqlcheck/pgxcheck"
)

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

func TestTracer(t *testing.T) {
	ctx := context.Background()
	plain := dbtest.Postgres(t) // skips, or fails in CI, without PostgreSQL
	table := dbtest.Table(t, plain, "sc_pgx")
	_, err := plain.ExecContext(ctx, "CREATE TABLE "+table+" (id INTEGER PRIMARY KEY, x INTEGER NOT NULL, y TEXT NOT NULL)")
	require.NoError(t, err)
	_, err = plain.ExecContext(ctx, "INSERT INTO "+table+" SELECT i, i % 1000, 'item ' || i FROM generate_series(0, 9999) i")
	require.NoError(t, err)
	_, err = plain.ExecContext(ctx, "ANALYZE "+table)
	require.NoError(t, err)

	rec := sqlcheck.NewRecorder()
	cfg, err := pgxpool.ParseConfig(dbtest.PostgresDSN())
	require.NoError(t, err)
	cfg.ConnConfig.Tracer = pgxcheck.NewTracer(rec)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	defer pool.Close()
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()

	// Query, QueryRow, Exec, a batch and a copy.
	rows, err := pool.Query(ctx, "SELECT id FROM "+table+" WHERE id IN ($1, $2, $3)", 1, 2, 3)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	require.NoError(t, err)
	require.Len(t, ids, 3)
	var y string
	require.NoError(t, pool.QueryRow(ctx, "SELECT y FROM "+table+" WHERE id = $1", 7).Scan(&y))
	tag, err := pool.Exec(ctx, "UPDATE "+table+" SET y = $1 WHERE x = 5", "five")
	require.NoError(t, err)
	require.Equal(t, int64(10), tag.RowsAffected())
	b := &pgx.Batch{}
	b.Queue("SELECT y FROM "+table+" WHERE id = $1", 1)
	b.Queue("SELECT y FROM "+table+" WHERE id = $1", 2)
	require.NoError(t, pool.SendBatch(ctx, b).Close())
	n, err := pool.CopyFrom(ctx, pgx.Identifier{table}, []string{"id", "x", "y"}, pgx.CopyFromRows([][]any{{20000, 1, "c"}, {20001, 2, "d"}}))
	require.NoError(t, err)
	require.Equal(t, int64(2), n)
	_, err = pool.Exec(ctx, "SELECT * FROM no_such_table_pgxcheck")
	require.Error(t, err)

	qs := rec.Queries()
	require.Len(t, qs, 7, "%v", qs)
	require.Equal(t, "SELECT id FROM "+table+" WHERE id IN (...)", qs[0].Shape)
	require.Equal(t, []any{1, 2, 3}, qs[0].Args)
	require.Equal(t, int64(3), qs[0].Rows)
	require.Equal(t, int64(1), qs[1].Rows)
	require.Equal(t, int64(10), qs[2].Rows)
	require.Equal(t, qs[3].Shape, qs[4].Shape)
	require.Equal(t, `COPY "`+table+`" ("id", "x", "y") FROM STDIN`, qs[5].SQL)
	require.Equal(t, int64(2), qs[5].Rows)
	require.Error(t, qs[6].Err)
	require.Equal(t, int64(-1), qs[6].Rows)

	// N+1 through pgx, and the batched version.
	rec.Reset()
	for i := range 50 {
		require.NoError(t, pool.QueryRow(ctx, "SELECT y FROM "+table+" WHERE id = $1", i).Scan(&y))
	}
	ft := &fakeT{}
	require.False(t, sqlcheck.Assert(ft, rec, db, sqlcheck.NoRepeats(1), sqlcheck.NoSeqScan()))
	require.Len(t, ft.errs, 1)
	require.Contains(t, ft.errs[0], "NoRepeats(1): 50 × SELECT y FROM "+table+" WHERE id = ?")
	require.Len(t, rec.Queries(), 50, "Assert's explains through the pool are not recorded")

	rec.Reset()
	list := make([]int32, 50)
	for i := range list {
		list[i] = int32(i)
	}
	rows, err = pool.Query(ctx, "SELECT id, y FROM "+table+" WHERE id = ANY($1)", list)
	require.NoError(t, err)
	rows.Close()
	require.True(t, sqlcheck.Assert(t, rec, db, sqlcheck.NoRepeats(1), sqlcheck.MaxQueries(1), sqlcheck.NoSeqScan(), sqlcheck.UsesIndex(table, table+"_pkey")))

	// A full scan found through the tracer.
	rec.Reset()
	var count int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE x = $1", 3).Scan(&count))
	ft = &fakeT{}
	require.False(t, sqlcheck.Assert(ft, rec, db, sqlcheck.NoSeqScan()))
	require.True(t, strings.Contains(ft.errs[0], "Seq Scan on public."+table), ft.errs[0])
}
