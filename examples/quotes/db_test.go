package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/dbtest"
)

// postgresURL is the PostgreSQL the tests use: OUTRIGGER_POSTGRES_DSN,
// else DATABASE_URL, else the local default (see internal/dbtest).
func postgresURL() string { return dbtest.PostgresDSN() }

// postgresSchema creates a fresh schema in the test PostgreSQL, dropped when
// the test ends, and returns a URL whose connections use it. Without
// PostgreSQL it skips, or fails in CI.
func postgresSchema(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	admin := dbtest.Postgres(t)
	schema := dbtest.Name("t")
	_, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE") })
	sep := "?"
	if strings.Contains(postgresURL(), "?") {
		sep = "&"
	}
	return postgresURL() + sep + "search_path=" + schema
}

// openPostgres returns a database in a fresh schema of the test PostgreSQL.
func openPostgres(t testing.TB) *database {
	t.Helper()
	db, err := openDatabase(context.Background(), postgresSchema(t))
	require.NoError(t, err)
	t.Cleanup(func() { db.close() })
	return db
}

func openSQLite(t testing.TB) *database {
	t.Helper()
	db, err := openDatabase(context.Background(), filepath.Join(t.TempDir(), "quotes.db"))
	require.NoError(t, err)
	t.Cleanup(func() { db.close() })
	return db
}

func TestDatabase(t *testing.T) {
	backends := []struct {
		name string
		open func(testing.TB) *database
	}{
		{"sqlite", openSQLite},
		{"postgres", openPostgres},
	}
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			db := be.open(t)
			base := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
			qs := []quote{
				{ID: "a", Symbol: "ACME", Price: 10, TS: base.Add(1 * time.Second)},
				{ID: "b", Symbol: "ACME", Price: 12, TS: base.Add(20 * time.Second)},
				{ID: "c", Symbol: "ACME", Price: 9, TS: base.Add(40 * time.Second)},
				{ID: "d", Symbol: "ACME", Price: 11, TS: base.Add(61 * time.Second)},
				{ID: "e", Symbol: "HOOLI", Price: 100, TS: base.Add(5 * time.Second)},
			}
			n, err := db.insertQuotes(ctx, qs)
			require.NoError(t, err)
			require.Equal(t, int64(5), n)

			// Redelivered quotes are stored once.
			n, err = db.insertQuotes(ctx, qs[:2])
			require.NoError(t, err)
			require.Zero(t, n)
			rows, distinct, err := db.countQuotes(ctx)
			require.NoError(t, err)
			require.Equal(t, int64(5), rows)
			require.Equal(t, int64(5), distinct)

			q, err := db.latest(ctx, "ACME")
			require.NoError(t, err)
			require.Equal(t, "d", q.ID)
			require.True(t, q.TS.Equal(base.Add(61*time.Second)), "got %v", q.TS)
			_, err = db.latest(ctx, "NONE")
			require.ErrorIs(t, err, errNoQuote)

			// Roll-up is idempotent.
			for range 2 {
				nb, err := db.rollup(ctx, base, base.Add(2*time.Minute))
				require.NoError(t, err)
				require.Equal(t, 3, nb)
			}
			bars, err := db.bars(ctx, "ACME", base, base.Add(time.Hour))
			require.NoError(t, err)
			require.Equal(t, []bar{
				{Symbol: "ACME", Minute: base, Open: 10, High: 12, Low: 9, Close: 9, Count: 3},
				{Symbol: "ACME", Minute: base.Add(time.Minute), Open: 11, High: 11, Low: 11, Close: 11, Count: 1},
			}, bars)

			deleted, err := db.purge(ctx, base.Add(30*time.Second))
			require.NoError(t, err)
			require.Equal(t, int64(3), deleted)
			require.Positive(t, db.statements.Load())
		})
	}
}

func TestMigrationsAreIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	for range 3 {
		db, err := openDatabase(context.Background(), path)
		require.NoError(t, err)
		require.NoError(t, db.close())
	}
}
