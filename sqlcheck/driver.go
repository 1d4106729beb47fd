//lint:file-ignore SA1019 the wrappers call the deprecated driver interfaces that drivers still implement, as database/sql does

package sqlcheck

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"reflect"
	"time"
)

// The wrappers below implement every optional interface of database/sql/driver
// and, where the wrapped value lacks one, do what database/sql does without
// it, so that wrapping does not change a driver's behaviour.
var (
	_ driver.Connector                      = (*connector)(nil)
	_ io.Closer                             = (*connector)(nil)
	_ driver.DriverContext                  = (*wrappedDriver)(nil)
	_ driver.Conn                           = (*conn)(nil)
	_ driver.ConnBeginTx                    = (*conn)(nil)
	_ driver.ConnPrepareContext             = (*conn)(nil)
	_ driver.QueryerContext                 = connQE{}
	_ driver.ExecerContext                  = connQE{}
	_ driver.QueryerContext                 = connQ{}
	_ driver.ExecerContext                  = connE{}
	_ driver.Pinger                         = (*conn)(nil)
	_ driver.SessionResetter                = (*conn)(nil)
	_ driver.Validator                      = (*conn)(nil)
	_ driver.NamedValueChecker              = (*conn)(nil)
	_ driver.Stmt                           = (*stmt)(nil)
	_ driver.StmtExecContext                = (*stmt)(nil)
	_ driver.StmtQueryContext               = (*stmt)(nil)
	_ driver.NamedValueChecker              = (*stmt)(nil)
	_ driver.ColumnConverter                = (*stmtConverter)(nil)
	_ driver.RowsNextResultSet              = (*rows)(nil)
	_ driver.RowsColumnTypeScanType         = (*rows)(nil)
	_ driver.RowsColumnTypeDatabaseTypeName = (*rows)(nil)
	_ driver.RowsColumnTypeLength           = (*rows)(nil)
	_ driver.RowsColumnTypeNullable         = (*rows)(nil)
	_ driver.RowsColumnTypePrecisionScale   = (*rows)(nil)
)

// connector is the Connector a Recorder returns.
type connector struct {
	base driver.Connector
	rec  *Recorder
}

func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	dc, err := c.base.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return wrapConn(dc, c.rec), nil
}

func (c *connector) Driver() driver.Driver { return &wrappedDriver{base: c.base.Driver(), rec: c.rec} }

// Close closes the wrapped connector when it has a Close method; sql.DB.Close
// calls it.
func (c *connector) Close() error {
	if cl, ok := c.base.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

func (c *connector) unwrap() any { return c.base }

// wrappedDriver is the Driver of a Recorder.
type wrappedDriver struct {
	base driver.Driver
	rec  *Recorder
}

func (d *wrappedDriver) Open(name string) (driver.Conn, error) {
	dc, err := d.base.Open(name)
	if err != nil {
		return nil, err
	}
	return wrapConn(dc, d.rec), nil
}

func (d *wrappedDriver) OpenConnector(name string) (driver.Connector, error) {
	c, err := OpenConnector(d.base, name)
	if err != nil {
		return nil, err
	}
	return &connector{base: c, rec: d.rec}, nil
}

func (d *wrappedDriver) unwrap() any { return d.base }

// conn is a recorded connection. It has QueryContext and ExecContext only
// when the wrapped connection can run statements without preparing them
// (connQ, connE, connQE): database/sql checks for them first, before the
// arguments, and otherwise prepares the statement.
type conn struct {
	base driver.Conn
	rec  *Recorder
}

type (
	connQ  struct{ *conn }
	connE  struct{ *conn }
	connQE struct{ *conn }
)

func (c connQ) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	return c.queryContext(ctx, q, args)
}

func (c connE) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	return c.execContext(ctx, q, args)
}

func (c connQE) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	return c.queryContext(ctx, q, args)
}

func (c connQE) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	return c.execContext(ctx, q, args)
}

// wrapConn wraps dc in the conn type that has the statement methods dc has.
func wrapConn(dc driver.Conn, rec *Recorder) driver.Conn {
	c := &conn{base: dc, rec: rec}
	_, qc := dc.(driver.QueryerContext)
	_, q := dc.(driver.Queryer)
	_, ec := dc.(driver.ExecerContext)
	_, e := dc.(driver.Execer)
	switch {
	case (qc || q) && (ec || e):
		return connQE{c}
	case qc || q:
		return connQ{c}
	case ec || e:
		return connE{c}
	}
	return c
}

func (c *conn) unwrap() any { return c.base }

func (c *conn) Close() error { return c.base.Close() }

// Begin is the deprecated driver.Conn method; database/sql calls BeginTx.
func (c *conn) Begin() (driver.Tx, error) {
	return c.base.Begin()
}

func (c *conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if b, ok := c.base.(driver.ConnBeginTx); ok {
		return b.BeginTx(ctx, opts)
	}
	// What database/sql does for a driver without ConnBeginTx.
	if opts.Isolation != driver.IsolationLevel(0) {
		return nil, errors.New("sql: driver does not support non-default isolation level")
	}
	if opts.ReadOnly {
		return nil, errors.New("sql: driver does not support read-only transactions")
	}
	tx, err := c.base.Begin()
	if err == nil && ctx.Err() != nil {
		_ = tx.Rollback()
		return nil, ctx.Err()
	}
	return tx, err
}

func (c *conn) Prepare(query string) (driver.Stmt, error) {
	s, err := c.base.Prepare(query)
	if err != nil {
		return nil, err
	}
	return c.wrapStmt(s, query), nil
}

func (c *conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	var s driver.Stmt
	var err error
	if p, ok := c.base.(driver.ConnPrepareContext); ok {
		s, err = p.PrepareContext(ctx, query)
	} else {
		s, err = c.base.Prepare(query)
		if err == nil && ctx.Err() != nil {
			_ = s.Close()
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	return c.wrapStmt(s, query), nil
}

func (c *conn) wrapStmt(s driver.Stmt, query string) driver.Stmt {
	w := &stmt{base: s, conn: c, query: query}
	if _, ok := s.(driver.ColumnConverter); ok {
		return &stmtConverter{w}
	}
	return w
}

func (c *conn) queryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	start := time.Now()
	var r driver.Rows
	var err error
	switch b := c.base.(type) {
	case driver.QueryerContext:
		r, err = b.QueryContext(ctx, query, args)
	case driver.Queryer:
		var vals []driver.Value
		if vals, err = namedValueToValue(args); err == nil {
			if err = ctx.Err(); err == nil {
				r, err = b.Query(query, vals)
			}
		}
	default:
		return nil, driver.ErrSkip // database/sql prepares the statement instead
	}
	if errors.Is(err, driver.ErrSkip) {
		return nil, err // not sent: database/sql prepares it and we record that
	}
	return c.rec.recordRows(ctx, query, args, start, r, err)
}

func (c *conn) execContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	start := time.Now()
	var res driver.Result
	var err error
	switch b := c.base.(type) {
	case driver.ExecerContext:
		res, err = b.ExecContext(ctx, query, args)
	case driver.Execer:
		var vals []driver.Value
		if vals, err = namedValueToValue(args); err == nil {
			if err = ctx.Err(); err == nil {
				res, err = b.Exec(query, vals)
			}
		}
	default:
		return nil, driver.ErrSkip
	}
	if errors.Is(err, driver.ErrSkip) {
		return nil, err
	}
	c.rec.recordExec(ctx, query, args, start, res, err)
	return res, err
}

func (c *conn) Ping(ctx context.Context) error {
	if p, ok := c.base.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *conn) ResetSession(ctx context.Context) error {
	if r, ok := c.base.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *conn) IsValid() bool {
	if v, ok := c.base.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

// CheckNamedValue uses the connection's checker; without one, ErrSkip makes
// database/sql convert the value as it would have.
func (c *conn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.base.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

// namedValueToValue is database/sql's conversion for the deprecated
// Queryer and Execer, which take no names.
func namedValueToValue(named []driver.NamedValue) ([]driver.Value, error) {
	vals := make([]driver.Value, len(named))
	for i, nv := range named {
		if nv.Name != "" {
			return nil, errors.New("sql: driver does not support the use of Named Parameters")
		}
		vals[i] = nv.Value
	}
	return vals, nil
}

// stmt is a recorded prepared statement: each execution is recorded.
type stmt struct {
	base  driver.Stmt
	conn  *conn
	query string
}

// stmtConverter is a stmt whose driver statement is a ColumnConverter.
type stmtConverter struct{ *stmt }

func (s *stmtConverter) ColumnConverter(idx int) driver.ValueConverter {
	return s.base.(driver.ColumnConverter).ColumnConverter(idx)
}

func (s *stmt) Close() error  { return s.base.Close() }
func (s *stmt) NumInput() int { return s.base.NumInput() }

func (s *stmt) Exec(args []driver.Value) (driver.Result, error) {
	return s.ExecContext(context.Background(), valuesToNamed(args))
}

func (s *stmt) Query(args []driver.Value) (driver.Rows, error) {
	return s.QueryContext(context.Background(), valuesToNamed(args))
}

func valuesToNamed(args []driver.Value) []driver.NamedValue {
	nv := make([]driver.NamedValue, len(args))
	for i, v := range args {
		nv[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return nv
}

func (s *stmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	start := time.Now()
	var res driver.Result
	var err error
	if e, ok := s.base.(driver.StmtExecContext); ok {
		res, err = e.ExecContext(ctx, args)
	} else {
		var vals []driver.Value
		if vals, err = namedValueToValue(args); err == nil {
			if err = ctx.Err(); err == nil {
				res, err = s.base.Exec(vals)
			}
		}
	}
	s.conn.rec.recordExec(ctx, s.query, args, start, res, err)
	return res, err
}

func (s *stmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	start := time.Now()
	var r driver.Rows
	var err error
	if q, ok := s.base.(driver.StmtQueryContext); ok {
		r, err = q.QueryContext(ctx, args)
	} else {
		var vals []driver.Value
		if vals, err = namedValueToValue(args); err == nil {
			if err = ctx.Err(); err == nil {
				r, err = s.base.Query(vals)
			}
		}
	}
	return s.conn.rec.recordRows(ctx, s.query, args, start, r, err)
}

// CheckNamedValue uses the statement's checker, else the connection's (as
// database/sql does), else ErrSkip for database/sql's default conversion.
func (s *stmt) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := s.base.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return s.conn.CheckNamedValue(nv)
}

// recordExec records a statement that has run.
func (r *Recorder) recordExec(ctx context.Context, query string, args []driver.NamedValue, start time.Time, res driver.Result, err error) {
	q := r.start(ctx, query, args)
	if q == nil {
		return
	}
	d := time.Since(start)
	rows := int64(-1)
	if err == nil && res != nil {
		if n, rerr := res.RowsAffected(); rerr == nil {
			rows = n
		}
	}
	r.update(q, func(q *Query) { q.Duration, q.Rows, q.Err = d, rows, err })
}

// recordRows records a query and returns its rows wrapped to count them.
func (r *Recorder) recordRows(ctx context.Context, query string, args []driver.NamedValue, start time.Time, dr driver.Rows, err error) (driver.Rows, error) {
	q := r.start(ctx, query, args)
	if q == nil {
		return dr, err
	}
	d := time.Since(start)
	if err != nil {
		r.update(q, func(q *Query) { q.Duration, q.Err = d, err })
		return nil, err
	}
	r.update(q, func(q *Query) { q.Duration, q.Rows = d, 0 })
	return &rows{base: dr, rec: r, q: q}, nil
}

// rows counts the rows a recorded query returns and the time spent reading
// them.
type rows struct {
	base driver.Rows
	rec  *Recorder
	q    *Query
}

func (r *rows) Columns() []string { return r.base.Columns() }

func (r *rows) Close() error {
	start := time.Now()
	err := r.base.Close()
	d := time.Since(start)
	r.rec.update(r.q, func(q *Query) { q.Duration += d })
	return err
}

func (r *rows) Next(dest []driver.Value) error {
	start := time.Now()
	err := r.base.Next(dest)
	d := time.Since(start)
	r.rec.update(r.q, func(q *Query) {
		q.Duration += d
		switch {
		case err == nil:
			q.Rows++
		case err != io.EOF && q.Err == nil:
			q.Err = err
		}
	})
	return err
}

func (r *rows) HasNextResultSet() bool {
	if n, ok := r.base.(driver.RowsNextResultSet); ok {
		return n.HasNextResultSet()
	}
	return false
}

func (r *rows) NextResultSet() error {
	if n, ok := r.base.(driver.RowsNextResultSet); ok {
		return n.NextResultSet()
	}
	return io.EOF
}

func (r *rows) ColumnTypeScanType(i int) reflect.Type {
	if c, ok := r.base.(driver.RowsColumnTypeScanType); ok {
		return c.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]() // database/sql's default
}

func (r *rows) ColumnTypeDatabaseTypeName(i int) string {
	if c, ok := r.base.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return c.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func (r *rows) ColumnTypeLength(i int) (int64, bool) {
	if c, ok := r.base.(driver.RowsColumnTypeLength); ok {
		return c.ColumnTypeLength(i)
	}
	return 0, false
}

func (r *rows) ColumnTypeNullable(i int) (bool, bool) {
	if c, ok := r.base.(driver.RowsColumnTypeNullable); ok {
		return c.ColumnTypeNullable(i)
	}
	return false, false
}

func (r *rows) ColumnTypePrecisionScale(i int) (int64, int64, bool) {
	if c, ok := r.base.(driver.RowsColumnTypePrecisionScale); ok {
		return c.ColumnTypePrecisionScale(i)
	}
	return 0, 0, false
}
