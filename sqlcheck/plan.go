package sqlcheck

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Plan is the query plan of one statement, as Explain got it from the
// database. A Plan is not changed after Explain returns it and is safe for
// concurrent use.
type Plan struct {
	// Dialect is the database that made the plan.
	Dialect Dialect
	// Query is the statement explained.
	Query string
	// Analyzed reports whether the statement was run (EXPLAIN ANALYZE on
	// PostgreSQL, ANALYZE on MariaDB), so that ActualRows and Time hold
	// what happened rather than -1.
	Analyzed bool
	// AnalyzeError says why a statement that would have been analyzed was
	// explained without running it (nil when Analyzed, or when the dialect
	// or the caller did not ask for it): running it failed, for example an
	// INSERT whose row exists by now, or a write to a table whose engine
	// cannot roll it back.
	AnalyzeError error
	// Cost is the planner's estimated total cost in the database's own
	// units, -1 when the database reports none (SQLite, MariaDB).
	Cost float64
	// Time is how long the statement took to run, -1 unless Analyzed.
	Time time.Duration
	// Raw is the database's own output: the JSON document of PostgreSQL
	// and MySQL/MariaDB, the rows "id|parent|detail" of SQLite.
	Raw string

	nodes []Node
}

// Node is one step of a Plan. Numbers the database does not report are -1.
type Node struct {
	// Op is the operation as the database names it: "Seq Scan", "Index
	// Scan", "Hash Join" (PostgreSQL); the access type "ALL", "ref",
	// "range", or a block such as "nested_loop" and "filesort"
	// (MySQL/MariaDB); "SCAN", "SEARCH", "USE TEMP B-TREE" (SQLite).
	Op string
	// Table is the table the node reads or writes ("" if none), as named
	// in the schema even when the query gives it an alias.
	Table string
	// Schema is the table's schema when the database reports it
	// (PostgreSQL).
	Schema string
	// Alias is the name the query gives the table, when it gives one.
	Alias string
	// Index is the index the node reads through ("" if none); several are
	// separated by ", " (a PostgreSQL BitmapAnd, a MySQL index merge).
	Index string
	// FullScan reports whether the node reads every row of Table: a
	// PostgreSQL Seq Scan, a MySQL/MariaDB access type ALL or index (a full
	// index scan), an SQLite SCAN of a table (with or without an index) or
	// an automatic index SQLite builds by reading the whole table. These
	// are what NoSeqScan forbids. A PostgreSQL index scan without an index
	// condition also reads a whole index but is not counted: MaxRows
	// catches it.
	FullScan bool
	// TableRows is how many rows Table holds, counted for full scans only
	// (at most 1,000,001: more is reported as 1,000,001), -1 otherwise.
	TableRows int64
	// EstRows is the planner's estimate of the rows the node reads
	// (MySQL/MariaDB "rows") or returns (PostgreSQL "Plan Rows", per loop:
	// PostgreSQL does not estimate the rows a filter removes).
	EstRows float64
	// ActualRows is, when the plan is analyzed, the rows the node read in
	// total over its loops: on PostgreSQL the rows it returned plus those
	// its filters removed, on MariaDB r_rows × r_loops.
	ActualRows float64
	// Loops is how many times the node ran, when analyzed.
	Loops float64
	// Cost is the planner's estimated total cost of the node and its
	// children.
	Cost float64
	// Time is the time spent in the node and its children over all its
	// loops, when analyzed.
	Time time.Duration
	// Detail holds the conditions and notes the database gives the node,
	// one per line ("Filter: (x = 42)", "Index Cond: (id = 1)").
	Detail []string
	// Children are the nodes whose rows this node consumes.
	Children []Node

	label  string // the one-line description in the database's words
	access bool   // the node reads rows of Table (not a write, not a join)
}

// newNode returns a Node whose numbers are all unknown.
func newNode(op string) Node {
	return Node{Op: op, TableRows: -1, EstRows: -1, ActualRows: -1, Loops: -1, Cost: -1, Time: -1}
}

// String describes the node on one line, in the database's words: "Seq Scan
// on items", "SEARCH items USING INDEX items_owner (owner=?)", "ALL on
// items".
func (n Node) String() string {
	if n.label != "" {
		return n.label
	}
	s := n.Op
	if n.Table != "" {
		s += " on " + n.Table
	}
	if n.Index != "" {
		s += " using " + n.Index
	}
	return s
}

// Nodes returns the top-level nodes of the plan (usually one; SQLite may
// report several), each with its Children.
func (p *Plan) Nodes() []Node { return p.nodes }

// Walk calls fn for every node of the plan, parents before children, with its
// depth (0 for a top-level node).
func (p *Plan) Walk(fn func(n Node, depth int)) {
	var walk func(ns []Node, depth int)
	walk = func(ns []Node, depth int) {
		for _, n := range ns {
			fn(n, depth)
			walk(n.Children, depth+1)
		}
	}
	walk(p.nodes, 0)
}

// String returns the plan as an indented tree, like psql's text format:
//
//	Limit  (cost=0.29 rows=1) (actual rows=1 loops=1 time=21µs)
//	  ->  Index Scan using t_x on t  (cost=8.30 rows=1) (actual rows=1 loops=1 time=17µs)
//	        Index Cond: (x = 42)
func (p *Plan) String() string {
	var b strings.Builder
	var write func(n Node, depth int)
	write = func(n Node, depth int) {
		indent := strings.Repeat("      ", max(0, depth-1))
		pad := indent
		if depth > 0 {
			b.WriteString(indent + "  ->  ")
			pad = indent + "      "
		}
		b.WriteString(n.String())
		if nums := n.numbers(); nums != "" {
			b.WriteString("  " + nums)
		}
		b.WriteByte('\n')
		for _, d := range n.Detail {
			b.WriteString(pad + "  " + d + "\n")
		}
		for _, c := range n.Children {
			write(c, depth+1)
		}
	}
	for _, n := range p.nodes {
		write(n, 0)
	}
	if len(p.nodes) == 0 {
		b.WriteString("(no plan nodes)\n")
	}
	if p.Time >= 0 {
		fmt.Fprintf(&b, "Execution Time: %s\n", p.Time)
	}
	return b.String()
}

// numbers formats the node's known figures: (cost=… rows=…) (actual …)
// (table rows=…).
func (n Node) numbers() string {
	var parts []string
	var est []string
	if n.Cost >= 0 {
		est = append(est, "cost="+fmtFloat(n.Cost))
	}
	if n.EstRows >= 0 {
		est = append(est, "rows="+fmtFloat(n.EstRows))
	}
	if len(est) > 0 {
		parts = append(parts, "("+strings.Join(est, " ")+")")
	}
	var act []string
	if n.ActualRows >= 0 {
		act = append(act, "rows="+fmtFloat(n.ActualRows))
	}
	if n.Loops >= 0 {
		act = append(act, "loops="+fmtFloat(n.Loops))
	}
	if n.Time >= 0 {
		act = append(act, "time="+n.Time.String())
	}
	if len(act) > 0 {
		parts = append(parts, "(actual "+strings.Join(act, " ")+")")
	}
	if n.TableRows >= 0 {
		parts = append(parts, "(table rows="+strconv.FormatInt(n.TableRows, 10)+")")
	}
	return strings.Join(parts, " ")
}

func fmtFloat(f float64) string {
	if f == float64(int64(f)) && f < 1e15 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'f', 2, 64)
}

// ms converts a time in milliseconds, as the databases report it, to a
// Duration.
func ms(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }

// matchTable reports whether the node's table is name: the table's name, or
// schema.name, compared without regard to case; quotes are ignored.
func (n Node) matchTable(name string) bool {
	name = unquote(strings.TrimSpace(name))
	if n.Table == "" {
		return false
	}
	if strings.EqualFold(n.Table, name) {
		return true
	}
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		schema, table := name[:i], name[i+1:]
		if strings.EqualFold(n.Table, table) && (n.Schema == "" || strings.EqualFold(n.Schema, unquote(schema))) {
			return true
		}
	}
	// The plan may name the table qualified (MySQL's db.table).
	if i := strings.LastIndexByte(n.Table, '.'); i >= 0 && strings.EqualFold(n.Table[i+1:], name) {
		return true
	}
	return false
}

// walkPtr calls fn for every node of ns (parents first), by pointer, so
// that parsers can complete them.
func walkPtr(ns []Node, fn func(n *Node)) {
	for i := range ns {
		fn(&ns[i])
		walkPtr(ns[i].Children, fn)
	}
}
