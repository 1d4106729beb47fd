package sqlcheck

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// explainPostgres explains query on PostgreSQL: EXPLAIN ANALYZE in a
// rolled-back transaction, else (analyze off, or running it failed) the
// plain EXPLAIN.
func explainPostgres(ctx context.Context, db DB, query string, args []any, analyze bool) (*Plan, error) {
	var aerr error
	if analyze {
		var raw string
		err := undoScope(ctx, db, Postgres, func(q DB) error {
			// Do not wait forever for a lock the test itself holds: give up
			// and explain without running. SET LOCAL ends with the
			// transaction, or with the rollback to the savepoint.
			if _, err := q.ExecContext(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", lockTimeout.Milliseconds())); err != nil {
				return err
			}
			return queryRow(ctx, q, "EXPLAIN (ANALYZE, BUFFERS, VERBOSE, FORMAT JSON) "+query, args...).Scan(&raw)
		})
		if err == nil {
			return parsePostgres(raw)
		}
		if ctx.Err() != nil {
			return nil, explainError(query, err)
		}
		aerr = err
	}
	var raw string
	if err := queryRow(ctx, db, "EXPLAIN (VERBOSE, FORMAT JSON) "+query, args...).Scan(&raw); err != nil {
		return nil, explainError(query, err)
	}
	p, err := parsePostgres(raw)
	if err != nil {
		return nil, err
	}
	p.AnalyzeError = aerr
	return p, nil
}

// pgNode is a node of PostgreSQL's JSON plan, the fields sqlcheck reads.
type pgNode struct {
	NodeType         string   `json:"Node Type"`
	Operation        string   `json:"Operation"`
	Strategy         string   `json:"Strategy"`
	JoinType         string   `json:"Join Type"`
	ParallelAware    bool     `json:"Parallel Aware"`
	ScanDirection    string   `json:"Scan Direction"`
	RelationName     string   `json:"Relation Name"`
	Schema           string   `json:"Schema"`
	Alias            string   `json:"Alias"`
	IndexName        string   `json:"Index Name"`
	CTEName          string   `json:"CTE Name"`
	FunctionName     string   `json:"Function Name"`
	SubplanName      string   `json:"Subplan Name"`
	TotalCost        *float64 `json:"Total Cost"`
	PlanRows         *float64 `json:"Plan Rows"`
	ActualTotalTime  *float64 `json:"Actual Total Time"`
	ActualRows       *float64 `json:"Actual Rows"`
	ActualLoops      *float64 `json:"Actual Loops"`
	RemovedFilter    float64  `json:"Rows Removed by Filter"`
	RemovedRecheck   float64  `json:"Rows Removed by Index Recheck"`
	RemovedJoin      float64  `json:"Rows Removed by Join Filter"`
	Filter           string   `json:"Filter"`
	IndexCond        string   `json:"Index Cond"`
	RecheckCond      string   `json:"Recheck Cond"`
	JoinFilter       string   `json:"Join Filter"`
	HashCond         string   `json:"Hash Cond"`
	MergeCond        string   `json:"Merge Cond"`
	TIDCond          string   `json:"TID Cond"`
	SortKey          []string `json:"Sort Key"`
	GroupKey         []string `json:"Group Key"`
	SortMethod       string   `json:"Sort Method"`
	WorkersPlanned   *int     `json:"Workers Planned"`
	ConflictResolved string   `json:"Conflict Resolution"`
	SharedHit        *int64   `json:"Shared Hit Blocks"`
	SharedRead       *int64   `json:"Shared Read Blocks"`
	SharedDirtied    *int64   `json:"Shared Dirtied Blocks"`
	Plans            []pgNode `json:"Plans"`
}

// pgPlan is one element of the JSON array EXPLAIN (FORMAT JSON) returns.
type pgPlan struct {
	Plan          pgNode   `json:"Plan"`
	ExecutionTime *float64 `json:"Execution Time"`
}

// pgAccess are the node types that read the rows of a table.
var pgAccess = map[string]bool{
	"Seq Scan": true, "Index Scan": true, "Index Only Scan": true, "Bitmap Heap Scan": true,
	"Tid Scan": true, "Tid Range Scan": true, "Sample Scan": true,
}

// parsePostgres reads the output of EXPLAIN (FORMAT JSON).
func parsePostgres(raw string) (*Plan, error) {
	var doc []pgPlan
	if err := json.Unmarshal([]byte(raw), &doc); err != nil || len(doc) == 0 {
		return nil, fmt.Errorf("sqlcheck: read PostgreSQL plan: %v: %s", err, oneLine(raw, 200))
	}
	root := pgConvert(doc[0].Plan, "")
	p := &Plan{Raw: raw, Cost: root.Cost, Time: -1, nodes: []Node{root}}
	if doc[0].ExecutionTime != nil {
		p.Analyzed = true
		p.Time = ms(*doc[0].ExecutionTime)
	}
	return p, nil
}

// pgConvert turns a PostgreSQL node (and its children) into a Node; table is
// the relation of the parent Bitmap Heap Scan, for its Bitmap Index Scans.
func pgConvert(pn pgNode, table string) Node {
	n := newNode(pn.NodeType)
	n.Table, n.Schema, n.Alias, n.Index = pn.RelationName, pn.Schema, pn.Alias, pn.IndexName
	if n.Alias == n.Table {
		n.Alias = ""
	}
	if pn.NodeType == "Bitmap Index Scan" && n.Table == "" {
		n.Table = table
	}
	n.access = pgAccess[pn.NodeType]
	n.FullScan = pn.NodeType == "Seq Scan" && n.Table != ""
	if pn.TotalCost != nil {
		n.Cost = *pn.TotalCost
	}
	if pn.PlanRows != nil {
		n.EstRows = *pn.PlanRows
	}
	if pn.ActualLoops != nil {
		loops := *pn.ActualLoops
		n.Loops = loops
		if pn.ActualRows != nil {
			n.ActualRows = (*pn.ActualRows + pn.RemovedFilter + pn.RemovedRecheck + pn.RemovedJoin) * loops
		}
		if pn.ActualTotalTime != nil {
			n.Time = ms(*pn.ActualTotalTime * loops)
		}
	}
	inherit := n.Table
	if pn.NodeType == "BitmapAnd" || pn.NodeType == "BitmapOr" {
		inherit = table
	}
	for _, c := range pn.Plans {
		n.Children = append(n.Children, pgConvert(c, inherit))
	}
	if pn.NodeType == "Bitmap Heap Scan" {
		var idx []string
		walkPtr(n.Children, func(c *Node) {
			if c.Op == "Bitmap Index Scan" && c.Index != "" {
				idx = append(idx, c.Index)
			}
		})
		n.Index = strings.Join(idx, ", ")
	}
	n.label = pgLabel(pn)
	add := func(name, v string) {
		if v != "" {
			n.Detail = append(n.Detail, name+": "+v)
		}
	}
	add("Subplan", pn.SubplanName)
	add("Index Cond", pn.IndexCond)
	add("Recheck Cond", pn.RecheckCond)
	add("TID Cond", pn.TIDCond)
	add("Hash Cond", pn.HashCond)
	add("Merge Cond", pn.MergeCond)
	add("Join Filter", pn.JoinFilter)
	add("Filter", pn.Filter)
	add("Sort Key", strings.Join(pn.SortKey, ", "))
	add("Group Key", strings.Join(pn.GroupKey, ", "))
	add("Sort Method", pn.SortMethod)
	add("Conflict Resolution", pn.ConflictResolved)
	if pn.ActualLoops != nil {
		if pn.RemovedFilter > 0 {
			n.Detail = append(n.Detail, "Rows Removed by Filter: "+fmtFloat(pn.RemovedFilter))
		}
		if pn.RemovedJoin > 0 {
			n.Detail = append(n.Detail, "Rows Removed by Join Filter: "+fmtFloat(pn.RemovedJoin))
		}
		if pn.SharedHit != nil && pn.SharedRead != nil && *pn.SharedHit+*pn.SharedRead > 0 {
			b := fmt.Sprintf("Buffers: shared hit=%d read=%d", *pn.SharedHit, *pn.SharedRead)
			if pn.SharedDirtied != nil && *pn.SharedDirtied > 0 {
				b += fmt.Sprintf(" dirtied=%d", *pn.SharedDirtied)
			}
			n.Detail = append(n.Detail, b)
		}
		if *pn.ActualLoops == 0 {
			n.Detail = append(n.Detail, "(never executed)")
		}
	}
	return n
}

// pgLabel names a node the way psql's text format does: "Index Scan using
// t_pkey on public.t x", "Hash Left Join", "HashAggregate".
func pgLabel(pn pgNode) string {
	op := pn.NodeType
	switch op {
	case "ModifyTable":
		op = pn.Operation
	case "Aggregate":
		switch pn.Strategy {
		case "Hashed":
			op = "HashAggregate"
		case "Sorted":
			op = "GroupAggregate"
		case "Mixed":
			op = "MixedAggregate"
		}
	case "SetOp":
		if pn.Strategy == "Hashed" {
			op = "HashSetOp"
		}
	case "Hash Join", "Merge Join", "Nested Loop":
		if pn.JoinType != "" && pn.JoinType != "Inner" {
			base := strings.TrimSuffix(op, " Join")
			op = base + " " + pn.JoinType + " Join"
			if pn.NodeType == "Nested Loop" {
				op = "Nested Loop " + pn.JoinType + " Join"
			}
		}
	}
	if pn.ParallelAware {
		op = "Parallel " + op
	}
	if pn.ScanDirection == "Backward" {
		op += " Backward"
	}
	if pn.IndexName != "" {
		if pn.NodeType == "Bitmap Index Scan" {
			return op + " on " + pn.IndexName
		}
		op += " using " + pn.IndexName
	}
	name := pn.RelationName
	if pn.Schema != "" && name != "" {
		name = pn.Schema + "." + name
	}
	if name == "" {
		name = pn.CTEName
	}
	if name == "" {
		name = pn.FunctionName
	}
	if name == "" && pn.NodeType == "Subquery Scan" {
		name = pn.Alias
	}
	if name != "" {
		op += " on " + name
		if pn.Alias != "" && pn.Alias != pn.RelationName && pn.Alias != pn.CTEName && pn.Alias != pn.FunctionName && pn.NodeType != "Subquery Scan" {
			op += " " + pn.Alias
		}
	}
	if pn.WorkersPlanned != nil {
		op += fmt.Sprintf(" (workers planned: %d)", *pn.WorkersPlanned)
	}
	return op
}
