package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/sqlcheck"
)

// recordedBackends are the stores whose statements the tests below record:
// each opens a fresh database URL for the test.
var recordedBackends = []struct {
	name string
	url  func(t testing.TB) string
}{
	{"sqlite", func(t testing.TB) string { return filepath.Join(t.TempDir(), "quotes.db") }},
	{"postgres", postgresSchema},
}

// openRecorded opens url through a new Recorder.
func openRecorded(t testing.TB, url string) (*sqlcheck.Recorder, *database) {
	t.Helper()
	rec := sqlcheck.NewRecorder()
	db, err := openDatabaseWith(context.Background(), url, rec.Open)
	require.NoError(t, err)
	t.Cleanup(func() { db.close() })
	return rec, db
}

// fillDay stores a day of quotes over every symbol (about one every 2 s),
// rolls them up into bars and refreshes the planner's statistics, so that
// plans are those of a realistic table rather than of a ten-row one.
func fillDay(t testing.TB, db *database, base time.Time) {
	t.Helper()
	ctx := context.Background()
	const n = 40000
	qs := make([]quote, n)
	for i := range qs {
		qs[i] = quote{ID: fmt.Sprint("q", i), Symbol: symbols[i%len(symbols)], Price: float64(i%500) + 1, TS: base.Add(time.Duration(i) * 2 * time.Second)}
	}
	_, err := db.insertQuotes(ctx, qs)
	require.NoError(t, err)
	_, err = db.rollup(ctx, base, base.Add(24*time.Hour))
	require.NoError(t, err)
	stats := "ANALYZE"
	if db.d.name == "postgres" {
		stats = "ANALYZE quotes; ANALYZE bars"
	}
	_, err = db.db.ExecContext(ctx, stats)
	require.NoError(t, err)
}

// TestHotQueriesUseIndexes records the statements of the hot paths (the
// API's reads, the roll-up and purge jobs) on a day of data and has
// sqlcheck explain each: none may scan quotes or bars in full.
func TestHotQueriesUseIndexes(t *testing.T) {
	for _, be := range recordedBackends {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			rec, db := openRecorded(t, be.url(t))
			base := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
			fillDay(t, db, base)

			rec.Reset()
			from, to := base.Add(12*time.Hour), base.Add(12*time.Hour+time.Minute)
			_, err := db.latest(ctx, "ACME")
			require.NoError(t, err)
			_, err = db.bars(ctx, "ACME", from, to.Add(time.Hour))
			require.NoError(t, err)
			_, err = db.rollup(ctx, from, to)
			require.NoError(t, err)
			_, err = db.purge(ctx, base.Add(time.Minute))
			require.NoError(t, err)
			qs := rec.Queries()
			require.Len(t, qs, 5, "latest, bars, the roll-up's read and write, purge")
			sqlcheck.Assert(t, rec, db.db, sqlcheck.NoSeqScan("quotes", "bars"))

			// The latest quote is read through the index made for it.
			plan, err := sqlcheck.Explain(ctx, db.db, qs[0].SQL, qs[0].Args...)
			require.NoError(t, err)
			require.NoError(t, plan.Check(sqlcheck.UsesIndex("quotes", "quotes_symbol_ts")))
		})
	}
}

// TestAPIRequestQueryBudget serves the API's requests and checks what each
// costs the database: at most one statement, never a repeated one, never a
// full scan.
func TestAPIRequestQueryBudget(t *testing.T) {
	for _, be := range recordedBackends {
		t.Run(be.name, func(t *testing.T) {
			ctx := context.Background()
			cfg := testConfig(t)
			cfg.dbURL = be.url(t)
			s, err := newService(ctx, cfg, quietLogger()) // not started: no feed, no jobs
			require.NoError(t, err)
			t.Cleanup(s.close)
			rec, db := openRecorded(t, cfg.dbURL)
			require.NoError(t, s.db.close())
			s.db = db
			base := time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Minute)
			fillDay(t, db, base)
			h, err := s.handler()
			require.NoError(t, err)

			for _, path := range []string{
				"/v1/quotes/ACME",
				"/v1/quotes/ACME", // from the cache, or one statement once it expired
				"/v1/quotes/HOOLI",
				"/v1/quotes/NOPE", // not found: one statement
				"/v1/quotes/ACME/bars",
				"/v1/quotes/ACME/bars?from=" + base.Add(time.Hour).Format(time.RFC3339) + "&to=" + base.Add(3*time.Hour).Format(time.RFC3339),
			} {
				rec.Reset()
				req := httptest.NewRequestWithContext(ctx, "GET", path, nil)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				require.Contains(t, []int{http.StatusOK, http.StatusNotFound}, w.Code, "%s: %s", path, w.Body)
				if !sqlcheck.Assert(t, rec, db.db, sqlcheck.MaxQueries(1), sqlcheck.NoRepeats(1), sqlcheck.NoSeqScan("quotes", "bars")) {
					t.Logf("request: GET %s", path)
				}
			}
		})
	}
}
