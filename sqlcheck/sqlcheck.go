package sqlcheck

import (
	"context"
	"database/sql"
	"errors"
	"reflect"
)

// Errors returned by the package, matched with [errors.Is].
var (
	// ErrNilDB is returned when Explain or CheckQueries needs a database and
	// gets a nil one.
	ErrNilDB = errors.New("sqlcheck: nil db")
	// ErrEmptyQuery is returned for a query that is empty or only comments.
	ErrEmptyQuery = errors.New("sqlcheck: empty query")
	// ErrUnknownDialect is returned when the dialect is neither given nor
	// detected, or is not one of the Dialect constants.
	ErrUnknownDialect = errors.New("sqlcheck: unknown dialect")
	// ErrExplain wraps the database's error when a statement cannot be
	// explained.
	ErrExplain = errors.New("sqlcheck: cannot explain")
	// ErrRuleBroken is matched by the error Check, CheckQueries and Assert
	// report when a rule is broken (a [*CheckError] or a [*QueriesError]).
	ErrRuleBroken = errors.New("sqlcheck: rule broken")
	// ErrInvalidRule is returned for a rule built with a bad argument, such
	// as MaxRows(-1) or UsesIndex("", "").
	ErrInvalidRule = errors.New("sqlcheck: invalid rule")
)

// DB is what Explain needs from a database handle. *sql.DB, *sql.Conn and
// *sql.Tx satisfy it, as do types that embed one of them.
//
// When the value also has BeginTx (as *sql.DB and *sql.Conn do), Explain runs
// the statement in a transaction of its own that it rolls back. Otherwise
// (*sql.Tx) it must be a transaction: Explain runs the statement after a
// SAVEPOINT and rolls back to it, leaving the rest of the transaction as it
// was.
type DB interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// beginner is the part of *sql.DB and *sql.Conn that opens a transaction.
type beginner interface {
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

// isNil reports whether db is nil or a typed nil pointer in an interface.
func isNil(db DB) bool {
	if db == nil {
		return true
	}
	v := reflect.ValueOf(db)
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan:
		return v.IsNil()
	}
	return false
}

// quiet is the context key that marks sqlcheck's own statements (and those
// of [WithoutRecording]) so that no Recorder records them.
type quiet struct{}

// WithoutRecording returns a context whose statements no Recorder records:
// fixtures set up inside a unit of work, for example. Explain and Assert use
// it for their own statements.
func WithoutRecording(ctx context.Context) context.Context {
	return context.WithValue(ctx, quiet{}, true)
}

func isQuiet(ctx context.Context) bool {
	v, _ := ctx.Value(quiet{}).(bool)
	return v
}
