package main

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	_ "modernc.org/sqlite"             // registers the "sqlite" driver (pure Go)
)

//go:embed migrations
var migrations embed.FS

// errNoQuote is returned by latest when a symbol has no quote.
var errNoQuote = errors.New("quotes: no quote for symbol")

// dialect is what differs between PostgreSQL and SQLite.
type dialect struct {
	name   string // "postgres" or "sqlite": the migrations folder
	driver string // database/sql driver name
	// placeholder returns the n-th (1-based) bind parameter.
	placeholder func(n int) string
}

var (
	postgres = dialect{name: "postgres", driver: "pgx", placeholder: func(n int) string { return "$" + strconv.Itoa(n) }}
	sqlite   = dialect{name: "sqlite", driver: "sqlite", placeholder: func(int) string { return "?" }}
)

// bar is a 1-minute OHLC bar.
type bar struct {
	Symbol string    `json:"symbol"`
	Minute time.Time `json:"minute"`
	Open   float64   `json:"open"`
	High   float64   `json:"high"`
	Low    float64   `json:"low"`
	Close  float64   `json:"close"`
	Count  int64     `json:"count"`
}

// database is the service's store: PostgreSQL when distributed, an embedded
// SQLite file otherwise. It is safe for concurrent use.
type database struct {
	db         *sql.DB
	d          dialect
	statements atomic.Int64 // statements sent, for the metrics and loadgen
}

// defaultSQLitePath is where the embedded database lives when -db is empty.
func defaultSQLitePath() string { return filepath.Join(os.TempDir(), "outrigger-quotes.db") }

// openDatabase opens url (postgres://… or postgresql://…; anything else, or
// "", is a SQLite file path) and applies the migrations.
func openDatabase(ctx context.Context, url string) (*database, error) {
	return openDatabaseWith(ctx, url, sql.Open)
}

// openDatabaseWith is openDatabase with the function that opens the
// database/sql handle: sql.Open, or in tests a sqlcheck.Recorder's Open.
func openDatabaseWith(ctx context.Context, url string, open func(driverName, dsn string) (*sql.DB, error)) (*database, error) {
	d, dsn := sqlite, url
	switch {
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		d = postgres
	case url == "":
		dsn = defaultSQLitePath()
	}
	if d.name == "sqlite" {
		dsn = strings.TrimPrefix(dsn, "sqlite:")
		// WAL and a busy timeout let the API read while the consumers write.
		dsn = "file:" + dsn + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)&_pragma=synchronous(NORMAL)"
	}
	db, err := open(d.driver, dsn)
	if err != nil {
		return nil, err
	}
	if d.name == "sqlite" {
		db.SetMaxOpenConns(1) // SQLite has one writer; one connection avoids SQLITE_BUSY
	} else {
		db.SetMaxOpenConns(16)
		db.SetMaxIdleConns(16)
	}
	s := &database{db: db, d: d}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("quotes: migrate %s: %w", d.name, err)
	}
	return s, nil
}

func (s *database) close() error { return s.db.Close() }

// migrate applies, in name order, every embedded migration not yet recorded
// in schema_migrations. Concurrent replicas are serialised by a transaction
// (and, on PostgreSQL, an advisory lock).
func (s *database) migrate(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/"+s.d.name+"/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if s.d.name == "postgres" {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7263518)`); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY)`); err != nil {
		return err
	}
	for _, name := range names {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE name = `+s.d.placeholder(1), filepath.Base(name)).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			continue
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (name) VALUES (`+s.d.placeholder(1)+`)`, filepath.Base(name)); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// maxParams bounds the bind parameters of one statement (PostgreSQL's
// extended protocol allows 65535; SQLite's default limit is 32766).
const maxParams = 30000

// insertValues runs head + VALUES (…),(…) + tail for n rows of ncols
// columns, in as few statements as the parameter limit allows, and returns
// the rows affected.
func (s *database) insertValues(ctx context.Context, head string, ncols, n int, row func(i int) []any, tail string) (int64, error) {
	var total int64
	for lo, hi := range valuesChunks(ncols, n) {
		query, args := s.valuesStatement(head, ncols, lo, hi, row, tail)
		s.statements.Add(1)
		res, err := s.db.ExecContext(ctx, query, args...)
		if err != nil {
			return total, err
		}
		affected, err := res.RowsAffected()
		if err != nil {
			return total, err
		}
		total += affected
	}
	return total, nil
}

// valuesChunks yields the [lo, hi) row ranges of n rows of ncols columns
// that fit one statement's bind parameters.
func valuesChunks(ncols, n int) func(yield func(lo, hi int) bool) {
	return func(yield func(lo, hi int) bool) {
		per := maxParams / ncols
		for lo := 0; lo < n; lo += per {
			if !yield(lo, min(n, lo+per)) {
				return
			}
		}
	}
}

// valuesStatement builds head + VALUES (…),(…) + tail for rows [lo, hi).
func (s *database) valuesStatement(head string, ncols, lo, hi int, row func(i int) []any, tail string) (string, []any) {
	var b strings.Builder
	b.WriteString(head)
	b.WriteString(" VALUES ")
	args := make([]any, 0, ncols*(hi-lo))
	for i := lo; i < hi; i++ {
		if i > lo {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for j := range ncols {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(s.d.placeholder(len(args) + j + 1))
		}
		b.WriteByte(')')
		args = append(args, row(i)...)
	}
	b.WriteString(" ")
	b.WriteString(tail)
	return b.String(), args
}

// insertQuotes stores qs with multi-row INSERTs; a quote whose ID is already
// stored is skipped, so redelivered quotes are stored once. It returns how
// many rows were new.
func (s *database) insertQuotes(ctx context.Context, qs []quote) (int64, error) {
	return s.insertValues(ctx, "INSERT INTO quotes (id, symbol, price, ts_us)", 4, len(qs), func(i int) []any {
		q := qs[i]
		return []any{q.ID, q.Symbol, q.Price, q.TS.UnixMicro()}
	}, "ON CONFLICT (id) DO NOTHING")
}

// latest returns the newest quote of symbol, or errNoQuote.
func (s *database) latest(ctx context.Context, symbol string) (quote, error) {
	s.statements.Add(1)
	var q quote
	var ts int64
	err := s.db.QueryRowContext(ctx,
		`SELECT id, symbol, price, ts_us FROM quotes WHERE symbol = `+s.d.placeholder(1)+` ORDER BY ts_us DESC LIMIT 1`,
		symbol).Scan(&q.ID, &q.Symbol, &q.Price, &ts)
	if errors.Is(err, sql.ErrNoRows) {
		return q, errNoQuote
	}
	q.TS = time.UnixMicro(ts).UTC()
	return q, err
}

// bars returns the 1-minute bars of symbol with from <= minute < to.
func (s *database) bars(ctx context.Context, symbol string, from, to time.Time) ([]bar, error) {
	s.statements.Add(1)
	rows, err := s.db.QueryContext(ctx,
		`SELECT symbol, minute_us, open, high, low, close, count FROM bars
		 WHERE symbol = `+s.d.placeholder(1)+` AND minute_us >= `+s.d.placeholder(2)+` AND minute_us < `+s.d.placeholder(3)+`
		 ORDER BY minute_us`,
		symbol, from.UnixMicro(), to.UnixMicro())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []bar{}
	for rows.Next() {
		var b bar
		var m int64
		if err := rows.Scan(&b.Symbol, &m, &b.Open, &b.High, &b.Low, &b.Close, &b.Count); err != nil {
			return nil, err
		}
		b.Minute = time.UnixMicro(m).UTC()
		out = append(out, b)
	}
	return out, rows.Err()
}

// rollup recomputes the bars of every minute in [from, to) from the quotes,
// overwriting what was there, and returns how many bars it wrote. Running it
// twice for the same range gives the same bars.
func (s *database) rollup(ctx context.Context, from, to time.Time) (int, error) {
	from, to = from.Truncate(time.Minute), to.Truncate(time.Minute)
	s.statements.Add(1)
	rows, err := s.db.QueryContext(ctx,
		`SELECT symbol, ts_us, price FROM quotes WHERE ts_us >= `+s.d.placeholder(1)+` AND ts_us < `+s.d.placeholder(2)+`
		 ORDER BY symbol, ts_us, id`,
		from.UnixMicro(), to.UnixMicro())
	if err != nil {
		return 0, err
	}
	var bars []bar
	for rows.Next() {
		var sym string
		var ts int64
		var p float64
		if err := rows.Scan(&sym, &ts, &p); err != nil {
			rows.Close()
			return 0, err
		}
		m := time.UnixMicro(ts - ts%int64(time.Minute/time.Microsecond)).UTC()
		if n := len(bars); n > 0 && bars[n-1].Symbol == sym && bars[n-1].Minute.Equal(m) {
			b := &bars[n-1]
			b.High, b.Low, b.Close = max(b.High, p), min(b.Low, p), p
			b.Count++
			continue
		}
		bars = append(bars, bar{Symbol: sym, Minute: m, Open: p, High: p, Low: p, Close: p, Count: 1})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if len(bars) == 0 {
		return 0, nil
	}
	_, err = s.insertValues(ctx, "INSERT INTO bars (symbol, minute_us, open, high, low, close, count)", 7, len(bars), func(i int) []any {
		br := bars[i]
		return []any{br.Symbol, br.Minute.UnixMicro(), br.Open, br.High, br.Low, br.Close, br.Count}
	}, `ON CONFLICT (symbol, minute_us) DO UPDATE SET open = excluded.open, high = excluded.high,
		low = excluded.low, close = excluded.close, count = excluded.count`)
	if err != nil {
		return 0, err
	}
	return len(bars), nil
}

// purge deletes quotes older than before and returns how many it deleted.
func (s *database) purge(ctx context.Context, before time.Time) (int64, error) {
	s.statements.Add(1)
	res, err := s.db.ExecContext(ctx, `DELETE FROM quotes WHERE ts_us < `+s.d.placeholder(1), before.UnixMicro())
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// countQuotes returns the number of stored quotes and of distinct IDs.
func (s *database) countQuotes(ctx context.Context) (rows, distinct int64, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT count(*), count(DISTINCT id) FROM quotes`).Scan(&rows, &distinct)
	return rows, distinct, err
}
