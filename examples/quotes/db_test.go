package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// postgresURL is the PostgreSQL the tests use: DATABASE_URL, else the local
// default.
func postgresURL() string {
	if u := os.Getenv("DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// postgresSchema creates a fresh schema in the test PostgreSQL, dropped when
// the test ends, and returns a URL whose connections use it. Without
// PostgreSQL it skips, or fails in CI.
func postgresSchema(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	admin, err := sql.Open("pgx", postgresURL())
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close() })
	if err := admin.PingContext(ctx); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL at %s is required in CI: %v", postgresURL(), err)
		}
		t.Skipf("no PostgreSQL at %s: %v", postgresURL(), err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	_, err = admin.ExecContext(ctx, "CREATE SCHEMA "+schema)
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

// TestHotQueriesUseIndexes runs EXPLAIN (FORMAT JSON) on PostgreSQL for each
// hot query over a realistic table and fails on a sequential scan of quotes.
func TestHotQueriesUseIndexes(t *testing.T) {
	ctx := context.Background()
	db := openPostgres(t)
	base := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	const n = 40000 // a day of quotes over 8 symbols, about one every 2 s
	qs := make([]quote, n)
	for i := range qs {
		qs[i] = quote{ID: fmt.Sprint("q", i), Symbol: symbols[i%len(symbols)], Price: float64(i%500) + 1, TS: base.Add(time.Duration(i) * 2 * time.Second)}
	}
	_, err := db.insertQuotes(ctx, qs)
	require.NoError(t, err)
	_, err = db.rollup(ctx, base, base.Add(24*time.Hour))
	require.NoError(t, err)
	_, err = db.db.ExecContext(ctx, "ANALYZE quotes; ANALYZE bars")
	require.NoError(t, err)

	from, to := base.Add(12*time.Hour), base.Add(12*time.Hour+time.Minute)
	queries := []struct {
		name string
		sql  string
		args []any
	}{
		{"latest", `SELECT id, symbol, price, ts_us FROM quotes WHERE symbol = $1 ORDER BY ts_us DESC LIMIT 1`, []any{"ACME"}},
		{"bars", `SELECT symbol, minute_us, open, high, low, close, count FROM bars WHERE symbol = $1 AND minute_us >= $2 AND minute_us < $3 ORDER BY minute_us`, []any{"ACME", from.UnixMicro(), to.Add(time.Hour).UnixMicro()}},
		{"rollup", `SELECT symbol, ts_us, price FROM quotes WHERE ts_us >= $1 AND ts_us < $2 ORDER BY symbol, ts_us, id`, []any{from.UnixMicro(), to.UnixMicro()}},
		{"purge", `DELETE FROM quotes WHERE ts_us < $1`, []any{base.Add(time.Minute).UnixMicro()}},
	}
	for _, q := range queries {
		t.Run(q.name, func(t *testing.T) {
			var plan string
			require.NoError(t, db.db.QueryRowContext(ctx, "EXPLAIN (FORMAT JSON) "+q.sql, q.args...).Scan(&plan))
			var nodes []map[string]any
			require.NoError(t, json.Unmarshal([]byte(plan), &nodes))
			var walk func(n map[string]any)
			walk = func(n map[string]any) {
				if n["Node Type"] == "Seq Scan" && n["Relation Name"] == "quotes" {
					t.Errorf("%s: sequential scan of quotes; plan:\n%s", q.name, plan)
				}
				children, _ := n["Plans"].([]any)
				for _, c := range children {
					walk(c.(map[string]any))
				}
			}
			walk(nodes[0]["Plan"].(map[string]any))
		})
	}
}
