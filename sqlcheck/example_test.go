package sqlcheck_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/outrigger-dev/outrigger/sqlcheck"
)

// exampleDB opens a fresh SQLite database with a table of items.
func exampleDB() (*sql.DB, func()) {
	db, _, done := examplePath()
	return db, done
}

// examplePath is exampleDB that also returns the database's file.
func examplePath() (*sql.DB, string, func()) {
	dir, err := os.MkdirTemp("", "sqlcheck-example")
	if err != nil {
		panic(err)
	}
	path := filepath.Join(dir, "example.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		panic(err)
	}
	for _, s := range []string{
		"CREATE TABLE items (id INTEGER PRIMARY KEY, owner INTEGER NOT NULL, name TEXT NOT NULL)",
		"INSERT INTO items (owner, name) VALUES (1, 'a'), (1, 'b'), (2, 'c')",
	} {
		if _, err := db.Exec(s); err != nil {
			panic(err)
		}
	}
	return db, path, func() { db.Close(); os.RemoveAll(dir) }
}

// Explain a query, check it uses an index, add the index, check again.
func ExampleExplain() {
	db, done := exampleDB()
	defer done()
	ctx := context.Background()
	query := "SELECT name FROM items WHERE owner = ?"

	plan, err := sqlcheck.Explain(ctx, db, query, 1)
	if err != nil {
		panic(err)
	}
	fmt.Print(plan)
	fmt.Println(plan.Check(sqlcheck.NoSeqScan("items")))

	if _, err := db.Exec("CREATE INDEX items_owner ON items (owner)"); err != nil {
		panic(err)
	}
	plan, err = sqlcheck.Explain(ctx, db, query, 1)
	if err != nil {
		panic(err)
	}
	fmt.Print(plan)
	fmt.Println(plan.Check(sqlcheck.NoSeqScan(), sqlcheck.UsesIndex("items", "items_owner")))
	// Output:
	// SCAN items  (table rows=3)
	// sqlcheck: 1 rule broken by SELECT name FROM items WHERE owner = ?
	//   NoSeqScan(items): node "SCAN items": full scan of table items (3 rows)
	// plan (sqlite, estimated, not run):
	//   SCAN items  (table rows=3)
	// SEARCH items USING INDEX items_owner (owner=?)
	// <nil>
}

// Small tables are scanned in full because that is fastest: MinRows exempts
// them.
func ExampleMinRows() {
	db, done := exampleDB()
	defer done()
	plan, err := sqlcheck.Explain(context.Background(), db, "SELECT * FROM items WHERE name = 'a'")
	if err != nil {
		panic(err)
	}
	fmt.Println(plan.Check(sqlcheck.NoSeqScan(), sqlcheck.MinRows(1000)))
	// Output:
	// <nil>
}

func ExampleShape() {
	fmt.Println(sqlcheck.Shape("select * from items\n  where owner = 42 and id in (1, 2, 3) -- list"))
	fmt.Println(sqlcheck.Shape("SELECT * FROM items WHERE owner = $1 AND id IN ($2, $3)"))
	fmt.Println(sqlcheck.Shape("INSERT INTO items (owner, name) VALUES (1, 'a'), (1, 'b')"))
	// Output:
	// SELECT * FROM items WHERE owner = ? AND id IN (...)
	// SELECT * FROM items WHERE owner = ? AND id IN (...)
	// INSERT INTO items (owner, name) VALUES (...)
}

// Record what a unit of work sends and find its N+1 loop.
func ExampleRecorder() {
	_, path, done := examplePath()
	defer done()
	ctx := context.Background()

	rec := sqlcheck.NewRecorder()
	// sql.Open with recording; or sql.OpenDB(rec.Connector(connector)).
	recorded, err := rec.Open("sqlite", path)
	if err != nil {
		panic(err)
	}
	defer recorded.Close()

	// The unit of work: one query per owner, in a loop.
	for _, owner := range []int{1, 2} {
		var n int
		if err := recorded.QueryRowContext(ctx, "SELECT count(*) FROM items WHERE owner = ?", owner).Scan(&n); err != nil {
			panic(err)
		}
	}
	for _, q := range rec.Queries() {
		fmt.Println(q.Shape, q.Args, q.Rows)
	}
	err = sqlcheck.CheckQueries(ctx, recorded, rec.Queries(), sqlcheck.NoRepeats(1))
	fmt.Println(errors.Is(err, sqlcheck.ErrRuleBroken))
	fmt.Println(err)
	// Output:
	// SELECT count(*) FROM items WHERE owner = ? [1] 1
	// SELECT count(*) FROM items WHERE owner = ? [2] 1
	// true
	// sqlcheck: 2 statements recorded:
	//   NoRepeats(1): 2 × SELECT count(*) FROM items WHERE owner = ? (an N+1 loop? batch it: IN (...), a join, or one multi-row statement)
	// statements by shape:
	//   2 × SELECT count(*) FROM items WHERE owner = ?
}
