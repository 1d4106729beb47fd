package sqlcheck

import (
	"context"
	"fmt"
	"strings"
)

// explainMySQL explains query on MySQL or MariaDB. On MariaDB, with analyze,
// it runs ANALYZE FORMAT=JSON in a rolled-back transaction, unless the
// statement writes to a table whose engine cannot roll back.
func explainMySQL(ctx context.Context, db DB, d Dialect, query string, args []any, analyze bool) (*Plan, error) {
	aliases := tableAliases(query)
	estimate := func() (*Plan, error) {
		var raw string
		if err := queryRow(ctx, db, "EXPLAIN FORMAT=JSON "+query, args...).Scan(&raw); err != nil {
			return nil, explainError(query, err)
		}
		return parseMySQL(raw, aliases, false)
	}
	if d == MySQL && analyze && !writes(firstKeyword(query)) {
		raw, err := mysqlAnalyze(ctx, db, query, args)
		if err == nil {
			return parseMySQL(raw, aliases, true)
		}
		if ctx.Err() != nil {
			return nil, explainError(query, err)
		}
		p, perr := estimate()
		if perr != nil {
			return nil, perr
		}
		p.AnalyzeError = err
		return p, nil
	}
	if d != MariaDB || !analyze {
		return estimate()
	}
	if writes(firstKeyword(query)) {
		p, err := estimate()
		if err != nil {
			return nil, err
		}
		if err := mysqlUndoable(ctx, db, p, aliases, query); err != nil {
			p.AnalyzeError = err
			return p, nil
		}
	}
	var raw string
	err := undoScope(ctx, db, d, func(q DB) error {
		// Do not wait forever for a lock the test itself holds.
		secs := int(lockTimeout.Seconds())
		return queryRow(ctx, q, fmt.Sprintf("SET STATEMENT innodb_lock_wait_timeout = %d, lock_wait_timeout = %d FOR ANALYZE FORMAT=JSON ", secs, secs)+query, args...).Scan(&raw)
	})
	if err == nil {
		return parseMySQL(raw, aliases, true)
	}
	if ctx.Err() != nil {
		return nil, explainError(query, err)
	}
	p, perr := estimate()
	if perr != nil {
		return nil, perr
	}
	p.AnalyzeError = err
	return p, nil
}

// mysqlAnalyze runs EXPLAIN ANALYZE FORMAT=JSON INTO a variable (MySQL 8.3
// and later, JSON format 2, reads only) on one connection and returns the
// plan. The session's explain_json_format_version is restored.
func mysqlAnalyze(ctx context.Context, db DB, query string, args []any) (string, error) {
	run := func(q DB) (raw string, err error) {
		var v string
		if err := queryRow(ctx, q, "SELECT VERSION()").Scan(&v); err != nil {
			return "", err
		}
		if !versionAtLeast(v, 8, 3) {
			return "", fmt.Errorf("sqlcheck: MySQL %s has no EXPLAIN ANALYZE in JSON (8.3 and later have)", v)
		}
		var old int64
		if err := queryRow(ctx, q, "SELECT @@SESSION.explain_json_format_version").Scan(&old); err != nil {
			return "", err
		}
		if _, err := q.ExecContext(ctx, "SET @@SESSION.explain_json_format_version = 2"); err != nil {
			return "", err
		}
		defer func() {
			if _, rerr := q.ExecContext(ctx, fmt.Sprintf("SET @@SESSION.explain_json_format_version = %d", old)); rerr != nil && err == nil {
				err = rerr
			}
		}()
		if _, err := q.ExecContext(ctx, "EXPLAIN ANALYZE FORMAT=JSON INTO @sqlcheck_plan "+query, args...); err != nil {
			return "", err
		}
		var plan *string
		err = queryRow(ctx, q, "SELECT @sqlcheck_plan").Scan(&plan)
		_, _ = q.ExecContext(ctx, "SET @sqlcheck_plan = NULL")
		if err == nil && plan == nil {
			err = fmt.Errorf("sqlcheck: EXPLAIN ANALYZE returned no plan")
		}
		if err != nil {
			return "", err
		}
		return *plan, nil
	}
	if b, ok := db.(beginner); ok {
		// A transaction pins one connection for the session variables.
		tx, err := b.BeginTx(ctx, nil)
		if err != nil {
			return "", err
		}
		defer func() { _ = tx.Rollback() }()
		return run(tx)
	}
	return run(db)
}

// versionAtLeast reports whether a server version ("8.4.2", "9.1.0-commercial")
// is at least major.minor.
func versionAtLeast(v string, major, minor int) bool {
	var ma, mi int
	if _, err := fmt.Sscanf(v, "%d.%d", &ma, &mi); err != nil {
		return false
	}
	return ma > major || (ma == major && mi >= minor)
}

// transactional are the MySQL/MariaDB storage engines whose writes a
// rollback undoes (lower case).
var transactional = map[string]bool{"innodb": true, "rocksdb": true, "tokudb": true, "ndbcluster": true, "ndb": true}

// mysqlUndoable returns nil when every table the write touches (those of
// its plan and its target) uses a transactional engine, else why not.
func mysqlUndoable(ctx context.Context, db DB, p *Plan, aliases map[string]string, query string) error {
	tables := map[string]bool{}
	walkPtr(p.nodes, func(n *Node) {
		if n.Table != "" {
			tables[n.Table] = true
		}
	})
	for _, t := range aliases {
		tables[t] = true
	}
	if len(tables) == 0 {
		return fmt.Errorf("sqlcheck: not analyzed: cannot tell which tables %s writes", oneLine(query, 80))
	}
	for t := range tables {
		schema, name := "", t
		if i := strings.LastIndexByte(t, '.'); i >= 0 {
			schema, name = t[:i], t[i+1:]
		}
		var engine *string
		q := "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = COALESCE(NULLIF(?, ''), DATABASE()) AND TABLE_NAME = ?"
		if err := queryRow(ctx, db, q, schema, name).Scan(&engine); err != nil {
			return fmt.Errorf("sqlcheck: not analyzed: engine of table %s unknown: %w", t, err)
		}
		if engine == nil || !transactional[strings.ToLower(*engine)] {
			e := "none"
			if engine != nil {
				e = *engine
			}
			return fmt.Errorf("sqlcheck: not analyzed: table %s uses engine %s, whose writes a rollback does not undo", t, e)
		}
	}
	return nil
}

// parseMySQL reads the output of EXPLAIN FORMAT=JSON or ANALYZE FORMAT=JSON
// (MariaDB; analyzed is true), in MySQL's format 1 or 2
// (explain_json_format_version=2).
func parseMySQL(raw string, aliases map[string]string, analyzed bool) (*Plan, error) {
	doc, err := parseOrdered(raw)
	if err != nil || !doc.isObj {
		return nil, fmt.Errorf("sqlcheck: read MySQL plan: %v: %s", err, oneLine(raw, 200))
	}
	p := &Plan{Raw: raw, Cost: -1, Time: -1, Analyzed: analyzed}
	if _, ok := doc.get("operation"); ok {
		root := mysqlV2(doc, aliases)
		p.nodes = []Node{root}
		p.Cost = root.Cost
		if root.Time >= 0 {
			p.Analyzed, p.Time = true, root.Time
		}
		return p, nil
	}
	p.nodes = mysqlMembers(doc, aliases)
	if qb, ok := doc.get("query_block"); ok {
		if ci, ok := qb.get("cost_info"); ok {
			if c, ok := ci.num("query_cost"); ok {
				p.Cost = c
			}
		}
		if c, ok := qb.num("cost"); ok { // MariaDB 11
			p.Cost = c
		}
		if t, ok := qb.num("r_total_time_ms"); ok && analyzed {
			p.Time = ms(t)
		}
	}
	if len(p.nodes) == 1 && p.nodes[0].Op == "query_block" && p.Cost >= 0 {
		p.nodes[0].Cost = p.Cost
	}
	return p, nil
}

// mysqlOps are the blocks of a MySQL/MariaDB plan kept as nodes even when
// they hold no table.
var mysqlOps = map[string]bool{
	"query_block": true, "filesort": true, "ordering_operation": true, "grouping_operation": true,
	"duplicates_removal": true, "temporary_table": true, "union_result": true, "read_sorted_file": true,
}

// mysqlScalars are the members of a block shown in its Detail.
var mysqlScalars = []string{"message", "sort_key", "using_filesort", "using_temporary_table", "having_condition", "join_type", "buffer_type", "attached_condition"}

// mysqlMembers returns the nodes of the members of obj, in order.
func mysqlMembers(obj jvalue, aliases map[string]string) []Node {
	var out []Node
	for _, m := range obj.obj {
		switch {
		case m.val.isObj:
			out = append(out, mysqlObject(m.key, m.val, aliases)...)
		case m.val.isArr:
			var kids []Node
			for _, e := range m.val.arr {
				if e.isObj {
					if _, ok := e.get("table_name"); ok {
						kids = append(kids, mysqlObject(m.key, e, aliases)...)
						continue
					}
					kids = append(kids, mysqlMembers(e, aliases)...)
				}
			}
			if len(kids) == 0 {
				continue
			}
			if m.key == "nested_loop" && len(kids) == 1 {
				out = append(out, kids...)
				continue
			}
			n := newNode(m.key)
			n.Children = kids
			out = append(out, n)
		}
	}
	return out
}

// mysqlObject returns the node (or nodes) of the member key whose value is
// obj: a table access, a block, or nothing for statistics.
func mysqlObject(key string, obj jvalue, aliases map[string]string) []Node {
	if _, ok := obj.get("table_name"); ok {
		return []Node{mysqlTable(obj, aliases)}
	}
	kids := mysqlMembers(obj, aliases)
	if len(kids) == 0 && !mysqlOps[key] {
		return nil
	}
	n := newNode(key)
	n.Children = kids
	if key == "query_block" {
		n.label = "query_block #" + obj.str("select_id")
	}
	for _, s := range mysqlScalars {
		if v := obj.str(s); v != "" && v != "false" {
			n.Detail = append(n.Detail, s+": "+v)
		}
	}
	mysqlNumbers(&n, obj)
	return []Node{n}
}

// mysqlTable returns the node of a "table" object.
func mysqlTable(obj jvalue, aliases map[string]string) Node {
	name := obj.str("table_name")
	n := newNode(obj.str("access_type"))
	derived := strings.HasPrefix(name, "<") // <derived2>, <subquery2>, <union1,2>
	if !derived {
		n.Table = name
		if t, ok := aliases[strings.ToLower(name)]; ok && !strings.EqualFold(t, name) {
			n.Table, n.Alias = t, name
		}
	}
	n.Index = obj.str("key")
	if n.Op == "index_merge" {
		// "sort_union(a,b)", "intersect(a,b)": the indexes merged.
		k := n.Index
		if i := strings.IndexByte(k, '('); i >= 0 && strings.HasSuffix(k, ")") {
			k = k[i+1 : len(k)-1]
		}
		n.Index = strings.Join(strings.Split(k, ","), ", ")
	}
	if n.Op == "" {
		for _, w := range []string{"insert", "update", "delete"} {
			if obj.str(w) != "" {
				n.Op = w
			}
		}
	}
	if n.Op == "" {
		n.Op = "table"
	}
	n.access = obj.str("access_type") != "" && !derived
	n.FullScan = n.access && (n.Op == "ALL" || n.Op == "index")
	if r, ok := obj.num("rows"); ok {
		n.EstRows = r
	} else if r, ok := obj.num("rows_examined_per_scan"); ok {
		n.EstRows = r
	}
	if ci, ok := obj.get("cost_info"); ok {
		rc, ok1 := ci.num("read_cost")
		ec, ok2 := ci.num("eval_cost")
		if ok1 || ok2 {
			n.Cost = rc + ec
		}
	}
	if c, ok := obj.num("cost"); ok {
		n.Cost = c
	}
	mysqlNumbers(&n, obj)
	if tt, ok := obj.num("r_table_time_ms"); ok {
		ot, _ := obj.num("r_other_time_ms")
		n.Time = ms(tt + ot)
	}
	label := n.Op + " on " + name
	if n.Alias != "" {
		label = n.Op + " on " + n.Table + " " + n.Alias
	}
	if n.Index != "" {
		label += " using " + n.Index
	}
	n.label = label
	for _, d := range []struct{ key, name string }{
		{"used_key_parts", "Key Parts"}, {"ref", "Ref"}, {"index_condition", "Index Cond"},
		{"attached_condition", "Filter"}, {"message", "Message"},
	} {
		if v := obj.str(d.key); v != "" {
			n.Detail = append(n.Detail, d.name+": "+v)
		}
	}
	if obj.str("using_index") == "true" {
		n.Detail = append(n.Detail, "Using index")
	}
	for _, m := range obj.obj {
		if m.val.isObj || m.val.isArr {
			switch m.key {
			case "cost_info", "r_engine_stats", "used_columns", "possible_keys", "used_key_parts", "ref":
				continue
			}
			if m.val.isObj {
				n.Children = append(n.Children, mysqlObject(m.key, m.val, aliases)...)
			} else {
				n.Children = append(n.Children, mysqlMembers(jvalue{isObj: true, obj: []jmember{m}}, aliases)...)
			}
		}
	}
	return n
}

// mysqlNumbers fills the MariaDB ANALYZE figures of a node: r_loops, r_rows,
// r_total_time_ms.
func mysqlNumbers(n *Node, obj jvalue) {
	loops, hasLoops := obj.num("r_loops")
	if hasLoops {
		n.Loops = loops
	}
	if r, ok := obj.num("r_rows"); ok {
		if !hasLoops {
			loops = 1
		}
		n.ActualRows = r * loops
	}
	if t, ok := obj.num("r_total_time_ms"); ok {
		n.Time = ms(t)
	}
}

// mysqlV2 converts a node of MySQL's JSON format 2 (explain_json_format_version=2,
// MySQL 8.3 and later), which mirrors EXPLAIN FORMAT=TREE: "operation",
// "access_type", "table_name", "index_name", "estimated_rows",
// "estimated_total_cost", "inputs", and under ANALYZE "actual_rows",
// "actual_loops", "actual_last_row_ms".
func mysqlV2(obj jvalue, aliases map[string]string) Node {
	n := newNode(obj.str("access_type"))
	if n.Op == "" {
		n.Op = "operation"
	}
	n.label = obj.str("operation")
	name := obj.str("table_name")
	if name != "" && !strings.HasPrefix(name, "<") {
		n.Table = name
		if a := obj.str("alias"); a != "" && !strings.EqualFold(a, name) {
			n.Alias = a
		} else if t, ok := aliases[strings.ToLower(name)]; ok && !strings.EqualFold(t, name) {
			n.Table, n.Alias = t, name
		}
	}
	n.Index = obj.str("index_name")
	ia := obj.str("index_access_type")
	n.access = n.Table != "" && (n.Op == "table" || n.Op == "index" || n.Op == "rowid")
	n.FullScan = n.Table != "" && (n.Op == "table" || (n.Op == "index" && ia == "index_scan"))
	if r, ok := obj.num("estimated_rows"); ok {
		n.EstRows = r
	}
	if c, ok := obj.num("estimated_total_cost"); ok {
		n.Cost = c
	}
	if l, ok := obj.num("actual_loops"); ok {
		n.Loops = l
		if r, ok := obj.num("actual_rows"); ok {
			n.ActualRows = r * l
		}
		if t, ok := obj.num("actual_last_row_ms"); ok {
			n.Time = ms(t * l)
		}
	}
	if c := obj.str("condition"); c != "" {
		n.Detail = append(n.Detail, "Condition: "+c)
	}
	if in, ok := obj.get("inputs"); ok {
		for _, e := range in.arr {
			if e.isObj {
				n.Children = append(n.Children, mysqlV2(e, aliases))
			}
		}
	}
	return n
}
