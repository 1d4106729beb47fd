// Package sqlcheck checks SQL query plans and query counts in `go test`, so
// that a missing index or an N+1 loop fails a test instead of freezing the
// database in production.
//
// # Plans
//
// [Explain] asks the database how it runs a statement and returns a [Plan]:
// a tree of [Node]s (operation, table, index, estimated and actual rows,
// cost, time) that prints like psql's text format. [Plan.Check] applies
// rules to it:
//
//	plan, err := sqlcheck.Explain(ctx, db, "SELECT * FROM orders WHERE customer_id = $1", 42)
//	if err != nil {
//		t.Fatal(err)
//	}
//	if err := plan.Check(sqlcheck.NoSeqScan(), sqlcheck.MinRows(1000), sqlcheck.UsesIndex("orders", "orders_customer")); err != nil {
//		t.Fatal(err) // names the rule, the node and the table, and prints the plan
//	}
//
// PostgreSQL plans come from EXPLAIN (ANALYZE, BUFFERS, VERBOSE, FORMAT
// JSON), MariaDB plans from ANALYZE FORMAT=JSON, both run in a transaction
// (or, inside the caller's transaction, after a savepoint) that is rolled
// back: an explained INSERT, UPDATE or DELETE leaves the tables as they
// were. MySQL plans come from EXPLAIN ANALYZE FORMAT=JSON for reads on MySQL
// 8.3 and later, else from EXPLAIN FORMAT=JSON; SQLite plans from EXPLAIN
// QUERY PLAN, which does not run the statement.
//
// # Recording
//
// A [Recorder] wraps any database/sql driver (through [Recorder.Connector],
// [Recorder.Driver] or [Recorder.Open]) and records every statement sent:
// its SQL, arguments, [Shape] (the SQL with literals, placeholders and IN
// and VALUES lists normalised), duration and rows. For pgx's own interface,
// package pgxcheck has a pgx.QueryTracer that records into a Recorder.
// [Assert] then checks a unit of work: how many statements it sent
// ([MaxQueries]), whether one shape repeats ([NoRepeats], the N+1 loop), and
// the plan of each distinct shape:
//
//	rec := sqlcheck.NewRecorder()
//	db := sql.OpenDB(rec.Connector(connector))
//	...
//	rec.Reset()
//	listOrders(ctx, db, customerID) // the unit of work
//	sqlcheck.Assert(t, rec, db, sqlcheck.MaxQueries(2), sqlcheck.NoRepeats(1), sqlcheck.NoSeqScan())
//
// # What it does not do
//
// A plan depends on the data: the planner scans a ten-row table in full
// because that is fastest, so check plans on tables of realistic size (and,
// on PostgreSQL, after ANALYZE), or exempt small tables with [MinRows].
// PostgreSQL does not roll back sequences: an explained INSERT advances
// them. MariaDB cannot roll back writes to non-transactional engines
// (MyISAM, Aria, MEMORY): such writes are explained without being run. The
// shape normaliser is lexical, not a SQL parser; the table names of MySQL
// and SQLite plans, which show aliases, are recovered from the query text
// by a heuristic. Timings (MaxTime) vary from run to run; prefer MaxRows and
// MaxCost in tests.
package sqlcheck
