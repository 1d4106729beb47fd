package sqlcheck

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"sync"
	"time"
)

// Query is one statement a Recorder saw.
type Query struct {
	// SQL is the statement as sent.
	SQL string
	// Args are its arguments (a named one as a sql.NamedArg), as the driver
	// received them.
	Args []any
	// Shape is SQL with its literals and lists normalised (see [Shape]):
	// statements that differ only in their values have one shape.
	Shape string
	// Duration is the time spent in the driver: the call, and for a query
	// the reading of its rows (not the time the caller spent between rows).
	Duration time.Duration
	// Rows is the number of rows a query returned (as far as they were
	// read) or a statement affected; -1 when the driver does not say.
	Rows int64
	// Err is the error the statement failed with, if any.
	Err error
}

// Recorder records the statements that go through the connectors, drivers
// and tracers it makes: to count them per unit of work (MaxQueries), find
// N+1 loops (NoRepeats) and explain each of them (Assert). Statements sent
// with a context from [WithoutRecording], such as Explain's own, are not
// recorded, nor are transaction boundaries (BEGIN, COMMIT, ROLLBACK) and
// pings.
//
// A Recorder is safe for concurrent use: it records the statements of every
// goroutine, in the order the driver answered them (a query when its rows
// arrive: they are counted as they are read). Its zero value is an empty Recorder
// ready to use; a nil *Recorder records nothing.
type Recorder struct {
	mu      sync.Mutex // guards queries
	queries []*Query
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{} }

// Queries returns a copy of the statements recorded since the Recorder was
// made or last Reset, in the order the driver answered them.
func (r *Recorder) Queries() []Query {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Query, len(r.queries))
	for i, q := range r.queries {
		out[i] = *q
		out[i].Args = append([]any(nil), q.Args...)
	}
	return out
}

// Reset forgets the statements recorded so far: what follows is a new unit
// of work. A query still being read when Reset is called is not recorded
// in the new one.
func (r *Recorder) Reset() {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.queries = nil
	r.mu.Unlock()
}

// Record adds q, unless ctx comes from [WithoutRecording]. It fills q.Shape
// when it is empty. Integrations with other clients (a driver's own tracer,
// an ORM's hook) call it; the connectors and pgxcheck's tracer do.
func (r *Recorder) Record(ctx context.Context, q Query) {
	if r == nil || (ctx != nil && isQuiet(ctx)) {
		return
	}
	if q.Shape == "" {
		q.Shape = Shape(q.SQL)
	}
	r.mu.Lock()
	r.queries = append(r.queries, &q)
	r.mu.Unlock()
}

// start records a statement being sent and returns its entry, to be
// completed with done; nil when ctx is quiet.
func (r *Recorder) start(ctx context.Context, query string, args []driver.NamedValue) *Query {
	if r == nil || isQuiet(ctx) {
		return nil
	}
	q := &Query{SQL: query, Shape: Shape(query), Rows: -1}
	if len(args) > 0 {
		q.Args = make([]any, len(args))
		for i, a := range args {
			v := a.Value
			if b, ok := v.([]byte); ok {
				v = append([]byte(nil), b...)
			}
			if a.Name != "" {
				v = sql.Named(a.Name, v)
			}
			q.Args[i] = v
		}
	}
	r.mu.Lock()
	r.queries = append(r.queries, q)
	r.mu.Unlock()
	return q
}

// update changes an entry under the lock, as Queries may be reading it.
func (r *Recorder) update(q *Query, fn func(q *Query)) {
	if r == nil || q == nil {
		return
	}
	r.mu.Lock()
	fn(q)
	r.mu.Unlock()
}

// Connector returns a connector that opens c's connections and records every
// statement sent on them. Pass it to sql.OpenDB:
//
//	db := sql.OpenDB(rec.Connector(connector))
//
// The connections behave as c's do: the wrapper implements a driver
// interface (context methods, named value checks, session resets,
// validation, multiple result sets, column types) by calling c's
// connection's, or by doing what database/sql does without it.
func (r *Recorder) Connector(c driver.Connector) driver.Connector {
	if c == nil {
		return errConnector{fmt.Errorf("sqlcheck: Recorder.Connector: nil connector")}
	}
	return &connector{base: c, rec: r}
}

// Driver returns a driver that opens d's connections and records every
// statement sent on them, for code that registers drivers by name
// (sql.Register).
func (r *Recorder) Driver(d driver.Driver) driver.Driver {
	return &wrappedDriver{base: d, rec: r}
}

// Open is sql.Open with recording: it opens the database of the registered
// driver driverName at dataSourceName, through the Recorder.
func (r *Recorder) Open(driverName, dataSourceName string) (*sql.DB, error) {
	probe, err := sql.Open(driverName, dataSourceName)
	if err != nil {
		return nil, err
	}
	d := probe.Driver()
	_ = probe.Close()
	c, err := OpenConnector(d, dataSourceName)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(r.Connector(c)), nil
}

// OpenConnector returns a connector for d at dataSourceName: d's own when it
// implements driver.DriverContext, else one that calls d.Open, as
// sql.Open does.
func OpenConnector(d driver.Driver, dataSourceName string) (driver.Connector, error) {
	if d == nil {
		return nil, fmt.Errorf("sqlcheck: OpenConnector: nil driver")
	}
	if dc, ok := d.(driver.DriverContext); ok {
		return dc.OpenConnector(dataSourceName)
	}
	return dsnConnector{d, dataSourceName}, nil
}

// dsnConnector is the connector of a driver without DriverContext.
type dsnConnector struct {
	d   driver.Driver
	dsn string
}

func (c dsnConnector) Connect(context.Context) (driver.Conn, error) { return c.d.Open(c.dsn) }
func (c dsnConnector) Driver() driver.Driver                        { return c.d }

// errConnector fails every connection with err.
type errConnector struct{ err error }

func (c errConnector) Connect(context.Context) (driver.Conn, error) { return nil, c.err }
func (c errConnector) Driver() driver.Driver                        { return errDriver(c) }

type errDriver struct{ err error }

func (d errDriver) Open(string) (driver.Conn, error) { return nil, d.err }
