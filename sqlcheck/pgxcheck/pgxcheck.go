// Package pgxcheck records the statements of pgx's own interface (pgx.Conn,
// pgxpool.Pool) into a sqlcheck.Recorder, through a pgx tracer. It is a
// separate package so that importing sqlcheck does not build pgx.
//
//	rec := sqlcheck.NewRecorder()
//	cfg, _ := pgxpool.ParseConfig(dsn)
//	cfg.ConnConfig.Tracer = pgxcheck.NewTracer(rec)
//	pool, _ := pgxpool.NewWithConfig(ctx, cfg)
//	...
//	db := stdlib.OpenDBFromPool(pool) // what Assert explains the plans on
//	sqlcheck.Assert(t, rec, db, sqlcheck.NoRepeats(1), sqlcheck.NoSeqScan())
//
// The tracer records Query, QueryRow and Exec (one statement each), every
// statement of a SendBatch, and CopyFrom (as "COPY table (columns) FROM
// STDIN", with the rows copied). Statements sent with a context from
// sqlcheck.WithoutRecording, such as those of Explain and Assert when the
// *sql.DB is over the same pool, are not recorded. To keep tracing with
// another tracer too, combine them with pgx's multitracer package.
package pgxcheck

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/outrigger-dev/outrigger/sqlcheck"
)

// Tracer is a pgx tracer (pgx.QueryTracer, pgx.BatchTracer,
// pgx.CopyFromTracer) that records into a Recorder. It is safe for
// concurrent use, as the Recorder is.
type Tracer struct {
	rec *sqlcheck.Recorder
	now func() time.Time
}

var (
	_ pgx.QueryTracer    = (*Tracer)(nil)
	_ pgx.BatchTracer    = (*Tracer)(nil)
	_ pgx.CopyFromTracer = (*Tracer)(nil)
)

// NewTracer returns a tracer that records into rec. Set it as the
// pgx.ConnConfig's Tracer.
func NewTracer(rec *sqlcheck.Recorder) *Tracer { return &Tracer{rec: rec, now: time.Now} }

// started is what the start of a traced call passes to its end.
type started struct {
	at   time.Time
	sql  string
	args []any
}

type startKey struct{}

// TraceQueryStart notes the statement and when it started.
func (t *Tracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, startKey{}, started{at: t.now(), sql: data.SQL, args: copyArgs(data.Args)})
}

// TraceQueryEnd records the statement.
func (t *Tracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	s, ok := ctx.Value(startKey{}).(started)
	if !ok {
		return
	}
	t.rec.Record(ctx, sqlcheck.Query{SQL: s.sql, Args: s.args, Duration: t.now().Sub(s.at), Rows: rows(data.CommandTag.String(), data.CommandTag.RowsAffected(), data.Err), Err: data.Err})
}

// TraceBatchStart does nothing: each statement is recorded as it ends.
func (t *Tracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}

// TraceBatchQuery records one statement of a batch.
func (t *Tracer) TraceBatchQuery(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchQueryData) {
	var d time.Duration
	if !data.ReadStartTime.IsZero() {
		d = t.now().Sub(data.ReadStartTime)
	}
	t.rec.Record(ctx, sqlcheck.Query{SQL: data.SQL, Args: copyArgs(data.Args), Duration: d, Rows: rows(data.CommandTag.String(), data.CommandTag.RowsAffected(), data.Err), Err: data.Err})
}

// TraceBatchEnd does nothing.
func (t *Tracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// TraceCopyFromStart notes the copy and when it started.
func (t *Tracer) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceCopyFromStartData) context.Context {
	cols := make([]string, len(data.ColumnNames))
	for i, c := range data.ColumnNames {
		cols[i] = pgx.Identifier{c}.Sanitize()
	}
	q := "COPY " + data.TableName.Sanitize() + " (" + strings.Join(cols, ", ") + ") FROM STDIN"
	return context.WithValue(ctx, startKey{}, started{at: t.now(), sql: q})
}

// TraceCopyFromEnd records the copy.
func (t *Tracer) TraceCopyFromEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceCopyFromEndData) {
	s, ok := ctx.Value(startKey{}).(started)
	if !ok {
		return
	}
	t.rec.Record(ctx, sqlcheck.Query{SQL: s.sql, Duration: t.now().Sub(s.at), Rows: rows(data.CommandTag.String(), data.CommandTag.RowsAffected(), data.Err), Err: data.Err})
}

// rows is the row count of a command tag: -1 when the statement failed or
// the tag has no count.
func rows(tag string, n int64, err error) int64 {
	if err != nil || tag == "" {
		return -1
	}
	return n
}

func copyArgs(args []any) []any {
	if len(args) == 0 {
		return nil
	}
	out := make([]any, len(args))
	for i, a := range args {
		if b, ok := a.([]byte); ok {
			a = append([]byte(nil), b...)
		}
		out[i] = a
	}
	return out
}
