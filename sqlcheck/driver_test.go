package sqlcheck_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/sqlcheck"
)

// The test drivers below check that the Recorder's wrappers keep a driver's
// behaviour: one with no optional interface at all (database/sql falls back
// to Prepare, rejects named and non-default options), one with all of them.

type counters struct {
	connects, prepares, queries, execs, resets, pings atomic.Int64
	invalid                                           atomic.Bool
}

type minimalConnector struct{ c *counters }

func (m minimalConnector) Connect(context.Context) (driver.Conn, error) {
	m.c.connects.Add(1)
	return &minimalConn{c: m.c}, nil
}
func (m minimalConnector) Driver() driver.Driver { return nil }

type minimalConn struct{ c *counters }

func (m *minimalConn) Prepare(q string) (driver.Stmt, error) {
	m.c.prepares.Add(1)
	return &minimalStmt{c: m.c, q: q}, nil
}
func (m *minimalConn) Close() error              { return nil }
func (m *minimalConn) Begin() (driver.Tx, error) { return minimalTx{}, nil }

type minimalTx struct{}

func (minimalTx) Commit() error   { return nil }
func (minimalTx) Rollback() error { return nil }

type minimalStmt struct {
	c *counters
	q string
}

func (s *minimalStmt) Close() error  { return nil }
func (s *minimalStmt) NumInput() int { return -1 }
func (s *minimalStmt) Exec(args []driver.Value) (driver.Result, error) {
	s.c.execs.Add(1)
	return driver.RowsAffected(len(args)), nil
}
func (s *minimalStmt) Query(args []driver.Value) (driver.Rows, error) {
	s.c.queries.Add(1)
	return &minimalRows{n: 3}, nil
}

type minimalRows struct{ n int }

func (r *minimalRows) Columns() []string { return []string{"v"} }
func (r *minimalRows) Close() error      { return nil }
func (r *minimalRows) Next(dest []driver.Value) error {
	if r.n == 0 {
		return io.EOF
	}
	r.n--
	dest[0] = int64(r.n)
	return nil
}

// fullConnector's connections have every optional interface.
type fullConnector struct{ c *counters }

func (f fullConnector) Connect(context.Context) (driver.Conn, error) {
	f.c.connects.Add(1)
	return &fullConn{minimalConn(f)}, nil
}
func (f fullConnector) Driver() driver.Driver { return nil }

type fullConn struct{ minimalConn }

// point is an argument type only fullConn's checker accepts.
type point struct{ x, y int }

func (f *fullConn) CheckNamedValue(nv *driver.NamedValue) error {
	if _, ok := nv.Value.(point); ok {
		return nil
	}
	return driver.ErrSkip
}
func (f *fullConn) QueryContext(_ context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	f.c.queries.Add(1)
	return &minimalRows{n: 2}, nil
}
func (f *fullConn) ExecContext(_ context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	f.c.execs.Add(1)
	return driver.RowsAffected(7), nil
}
func (f *fullConn) Ping(context.Context) error { f.c.pings.Add(1); return errors.New("ping refused") }
func (f *fullConn) ResetSession(context.Context) error {
	f.c.resets.Add(1)
	return nil
}
func (f *fullConn) IsValid() bool { return !f.c.invalid.Load() }
func (f *fullConn) BeginTx(context.Context, driver.TxOptions) (driver.Tx, error) {
	return minimalTx{}, nil
}

// run does the same things on db and reports what happened.
func run(t *testing.T, db *sql.DB) (results []any) {
	t.Helper()
	ctx := context.Background()
	rows, err := db.QueryContext(ctx, "SELECT v", 1)
	require.NoError(t, err)
	n := 0
	for rows.Next() {
		n++
	}
	require.NoError(t, rows.Close())
	res, err := db.ExecContext(ctx, "UPDATE x", 1, 2)
	require.NoError(t, err)
	affected, _ := res.RowsAffected()
	_, errNamed := db.ExecContext(ctx, "UPDATE x", sql.Named("a", 1))
	_, errPoint := db.ExecContext(ctx, "UPDATE x", point{1, 2})
	begin := func(opts *sql.TxOptions) error {
		tx, err := db.BeginTx(ctx, opts)
		if err == nil {
			require.NoError(t, tx.Rollback())
		}
		return err
	}
	errRO := begin(&sql.TxOptions{ReadOnly: true})
	errIso := begin(&sql.TxOptions{Isolation: sql.LevelSerializable})
	errPing := db.PingContext(ctx)
	return []any{n, affected, errString(errNamed), errString(errPoint), errString(errRO), errString(errIso), errString(errPing)}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestRecorderKeepsDriverBehaviour(t *testing.T) {
	for _, tc := range []struct {
		name string
		conn func(*counters) driver.Connector
	}{
		{"minimal", func(c *counters) driver.Connector { return minimalConnector{c} }},
		{"full", func(c *counters) driver.Connector { return fullConnector{c} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var plainC, recC counters
			plain := sql.OpenDB(tc.conn(&plainC))
			defer plain.Close()
			rec := sqlcheck.NewRecorder()
			recorded := sql.OpenDB(rec.Connector(tc.conn(&recC)))
			defer recorded.Close()

			want := run(t, plain)
			got := run(t, recorded)
			require.Equal(t, want, got)
			require.Equal(t, plainC.prepares.Load(), recC.prepares.Load(), "prepares")
			require.Equal(t, plainC.queries.Load(), recC.queries.Load(), "queries")
			require.Equal(t, plainC.execs.Load(), recC.execs.Load(), "execs")
			require.Equal(t, plainC.pings.Load(), recC.pings.Load(), "pings")
			require.Equal(t, plainC.resets.Load(), recC.resets.Load(), "session resets")

			// Each statement the driver ran is recorded once, even when
			// database/sql fell back to preparing it; one refused on the
			// way is recorded with its error.
			ran := 0
			for _, q := range rec.Queries() {
				if q.Err == nil {
					ran++
				}
			}
			require.Equal(t, int(recC.queries.Load()+recC.execs.Load()), ran)
			require.Equal(t, int64(want[0].(int)), rec.Queries()[0].Rows)
		})
	}

	// A connection that says it is invalid is discarded, with or without
	// the wrapper.
	var c counters
	rec := sqlcheck.NewRecorder()
	db := sql.OpenDB(rec.Connector(fullConnector{&c}))
	defer db.Close()
	_, err := db.Exec("UPDATE x")
	require.NoError(t, err)
	c.invalid.Store(true)
	_, err = db.Exec("UPDATE x") // the connection is discarded after it
	require.NoError(t, err)
	_, err = db.Exec("UPDATE x")
	require.NoError(t, err)
	require.Equal(t, int64(2), c.connects.Load(), "the invalid connection was replaced")
}
