package sqlcheck

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// explainSQLite runs EXPLAIN QUERY PLAN, which plans the statement without
// running it.
func explainSQLite(ctx context.Context, db DB, query string, args []any) (*Plan, error) {
	rows, err := db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		return nil, explainError(query, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, explainError(query, err)
	}
	var lines []sqliteLine
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, explainError(query, err)
		}
		l := sqliteLine{detail: fmt.Sprint(vals[len(vals)-1])}
		if b, ok := vals[len(vals)-1].([]byte); ok {
			l.detail = string(b)
		}
		// SQLite 3.24 and later: id, parent, notused, detail. Before: a
		// flat list (selectid, order, from, detail).
		if len(cols) == 4 && strings.EqualFold(cols[0], "id") {
			l.id, _ = toInt(vals[0])
			l.parent, _ = toInt(vals[1])
		}
		lines = append(lines, l)
	}
	if err := rows.Err(); err != nil {
		return nil, explainError(query, err)
	}
	return buildSQLite(lines, tableAliases(query)), nil
}

// sqliteLine is one row of EXPLAIN QUERY PLAN.
type sqliteLine struct {
	id, parent int64
	detail     string
}

func toInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int:
		return int64(x), true
	case []byte:
		n, err := strconv.ParseInt(string(x), 10, 64)
		return n, err == nil
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		return n, err == nil
	}
	return 0, false
}

// buildSQLite turns the rows of EXPLAIN QUERY PLAN into a Plan: a row is the
// child of the row whose id is its parent.
func buildSQLite(lines []sqliteLine, aliases map[string]string) *Plan {
	p := &Plan{Cost: -1, Time: -1}
	var raw strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&raw, "%d|%d|%s\n", l.id, l.parent, l.detail)
	}
	p.Raw = raw.String()

	// Names that are not tables: materialized CTEs and subqueries.
	virtual := map[string]bool{}
	for _, l := range lines {
		for _, pre := range []string{"MATERIALIZE ", "CO-ROUTINE "} {
			if rest, ok := strings.CutPrefix(l.detail, pre); ok {
				virtual[strings.ToLower(strings.TrimSpace(rest))] = true
			}
		}
	}
	type tmp struct {
		node Node
		kids []int
	}
	all := make([]tmp, len(lines))
	index := map[int64]int{}
	var roots []int
	for i, l := range lines {
		all[i].node = sqliteNode(l.detail, aliases, virtual)
		if j, ok := index[l.parent]; ok && l.parent != 0 && l.id != l.parent {
			all[j].kids = append(all[j].kids, i)
		} else {
			roots = append(roots, i)
		}
		if l.id != 0 {
			index[l.id] = i
		}
	}
	var build func(i, depth int) Node
	build = func(i, depth int) Node {
		n := all[i].node
		if depth < maxDepth {
			for _, k := range all[i].kids {
				n.Children = append(n.Children, build(k, depth+1))
			}
		}
		return n
	}
	for _, r := range roots {
		p.nodes = append(p.nodes, build(r, 0))
	}
	return p
}

// sqliteOps are the operations of EXPLAIN QUERY PLAN other than SCAN and
// SEARCH, longest first where one is a prefix of another.
var sqliteOps = []string{
	"USE TEMP B-TREE", "CORRELATED SCALAR SUBQUERY", "CORRELATED LIST SUBQUERY", "SCALAR SUBQUERY",
	"LIST SUBQUERY", "MATERIALIZE", "CO-ROUTINE", "COMPOUND QUERY", "LEFT-MOST SUBQUERY",
	"UNION ALL", "UNION USING TEMP B-TREE", "INTERSECT USING TEMP B-TREE", "EXCEPT USING TEMP B-TREE",
	"MULTI-INDEX OR", "INDEX", "CREATE BLOOM FILTER", "BLOOM FILTER ON", "RIGHT-JOIN",
}

// sqliteNode parses one detail of EXPLAIN QUERY PLAN: "SCAN t", "SCAN t
// USING COVERING INDEX i", "SEARCH t USING INDEX i (x=?)", "SEARCH t USING
// INTEGER PRIMARY KEY (rowid=?)", "SEARCH t USING AUTOMATIC COVERING INDEX
// (x=?)", "SCAN CONSTANT ROW", "USE TEMP B-TREE FOR ORDER BY", ...
func sqliteNode(detail string, aliases map[string]string, virtual map[string]bool) Node {
	n := newNode(detail)
	n.label = detail
	op, rest, _ := strings.Cut(detail, " ")
	if op != "SCAN" && op != "SEARCH" {
		for _, o := range sqliteOps {
			if strings.HasPrefix(detail, o) {
				n.Op = o
				break
			}
		}
		return n
	}
	n.Op = op
	rest = strings.TrimPrefix(rest, "TABLE ") // before SQLite 3.36
	if rest == "CONSTANT ROW" || strings.HasPrefix(rest, "(") {
		return n // no table: SELECT 1, a subquery
	}
	name, rest, _ := strings.Cut(rest, " ")
	alias := ""
	if a, ok := strings.CutPrefix(rest, "AS "); ok {
		alias, rest, _ = strings.Cut(a, " ")
	}
	if virtual[strings.ToLower(name)] && alias == "" {
		return n // a materialized CTE or subquery
	}
	n.Table = name
	if alias != "" {
		n.Alias = alias
	} else if t, ok := aliases[strings.ToLower(name)]; ok && !strings.EqualFold(t, name) {
		n.Table, n.Alias = t, name
	}
	n.access = true
	// Drop the condition: "USING INDEX i (x=?)" -> "USING INDEX i".
	if i := strings.Index(rest, " ("); i >= 0 && strings.HasSuffix(rest, ")") {
		rest = rest[:i]
	} else if strings.HasPrefix(rest, "(") {
		rest = ""
	}
	switch using, _ := strings.CutPrefix(rest, "USING "); {
	case strings.HasPrefix(using, "AUTOMATIC"):
		// SQLite builds a temporary index by reading the whole table.
		n.FullScan = true
		n.Detail = append(n.Detail, "Automatic index: built by a full scan of the table")
	case strings.HasPrefix(using, "INTEGER PRIMARY KEY"), strings.HasPrefix(using, "PRIMARY KEY"):
		n.Index = strings.TrimSpace(using)
	case strings.Contains(using, "INDEX "):
		n.Index = strings.TrimSpace(using[strings.Index(using, "INDEX ")+len("INDEX "):])
	case strings.HasPrefix(rest, "VIRTUAL TABLE"):
		n.access = false // a virtual table's own index: not a table read
	}
	if op == "SCAN" && !strings.HasPrefix(rest, "VIRTUAL TABLE") {
		n.FullScan = true
	}
	return n
}
