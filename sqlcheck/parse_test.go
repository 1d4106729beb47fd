package sqlcheck

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Plans in MySQL's format 1 (EXPLAIN FORMAT=JSON) and format 2
// (explain_json_format_version=2); this machine has MariaDB only, so these
// are checked on documents of the documented forms.
const mysqlDocV1 = `{
  "query_block": {
    "select_id": 1,
    "cost_info": {"query_cost": "1055.50"},
    "ordering_operation": {
      "using_filesort": true,
      "nested_loop": [
        {"table": {"table_name": "o", "access_type": "ALL", "rows_examined_per_scan": 1000,
          "rows_produced_per_join": 100, "filtered": "10.00",
          "cost_info": {"read_cost": "91.00", "eval_cost": "10.00", "prefix_cost": "101.00"},
          "attached_condition": "(` + "`test`.`o`.`status` = 'open'" + `)"}},
        {"table": {"table_name": "c", "access_type": "eq_ref", "possible_keys": ["PRIMARY"], "key": "PRIMARY",
          "used_key_parts": ["id"], "key_length": "4", "ref": ["test.o.customer_id"],
          "rows_examined_per_scan": 1, "rows_produced_per_join": 100, "filtered": "100.00",
          "cost_info": {"read_cost": "25.00", "eval_cost": "10.00", "prefix_cost": "136.00"}}}
      ]
    }
  }
}`

const mysqlDocV2 = `{
  "query": "/* select#1 */ select ...",
  "operation": "Nested loop inner join",
  "access_type": "join",
  "estimated_rows": 100, "estimated_total_cost": 136.5,
  "actual_rows": 90, "actual_loops": 1, "actual_last_row_ms": 2.5,
  "inputs": [
    {"operation": "Filter: (o.status = 'open')", "access_type": "filter", "condition": "(o.status = 'open')",
     "estimated_rows": 100, "inputs": [
       {"operation": "Table scan on o", "access_type": "table", "table_name": "orders", "alias": "o",
        "estimated_rows": 1000, "estimated_total_cost": 101, "actual_rows": 1000, "actual_loops": 1, "actual_last_row_ms": 1.5}
    ]},
    {"operation": "Single-row index lookup on c using PRIMARY (id = o.customer_id)", "access_type": "index",
     "index_access_type": "index_lookup", "table_name": "customers", "alias": "c", "index_name": "PRIMARY",
     "estimated_rows": 1, "actual_rows": 1, "actual_loops": 90}
  ]
}`

func TestParseMySQL(t *testing.T) {
	q := "SELECT * FROM orders o JOIN customers AS c ON c.id = o.customer_id WHERE o.status = 'open' ORDER BY o.created"
	aliases := tableAliases(q)
	require.Equal(t, map[string]string{"o": "orders", "c": "customers"}, aliases)

	p, err := parseMySQL(mysqlDocV1, aliases, false)
	require.NoError(t, err)
	p.Dialect, p.Query = MySQL, q
	require.Equal(t, 1055.5, p.Cost)
	var scans []Node
	p.Walk(func(n Node, _ int) {
		if n.access {
			scans = append(scans, n)
		}
	})
	require.Len(t, scans, 2)
	require.Equal(t, "orders", scans[0].Table)
	require.Equal(t, "o", scans[0].Alias)
	require.True(t, scans[0].FullScan)
	require.Equal(t, float64(1000), scans[0].EstRows)
	require.Equal(t, float64(101), scans[0].Cost)
	require.Equal(t, "customers", scans[1].Table)
	require.Equal(t, "PRIMARY", scans[1].Index)
	require.False(t, scans[1].FullScan)
	s := p.String()
	require.Contains(t, s, "ordering_operation")
	require.Contains(t, s, "using_filesort: true")
	require.Contains(t, s, "ALL on orders o")
	err = p.Check(NoSeqScan("orders"), UsesIndex("customers", "PRIMARY"), MaxCost(2000))
	require.ErrorContains(t, err, `NoSeqScan(orders): node "ALL on orders o": full scan of table orders`)
	require.NotContains(t, err.Error(), "UsesIndex")
	require.ErrorContains(t, p.Check(MaxCost(1000)), "estimated cost 1055.50 is more than 1000")

	p, err = parseMySQL(mysqlDocV2, aliases, false)
	require.NoError(t, err)
	p.Dialect, p.Query = MySQL, q
	require.True(t, p.Analyzed)
	require.Equal(t, 136.5, p.Cost)
	require.Equal(t, "2.5ms", p.Time.String())
	scans = nil
	p.Walk(func(n Node, _ int) {
		if n.Table != "" {
			scans = append(scans, n)
		}
	})
	require.Len(t, scans, 2)
	require.True(t, scans[0].FullScan)
	require.Equal(t, "o", scans[0].Alias)
	require.Equal(t, "Table scan on o", scans[0].String())
	require.False(t, scans[1].FullScan)
	require.Equal(t, float64(90), scans[1].ActualRows)
	require.NoError(t, p.Check(UsesIndex("customers", "PRIMARY"), MaxRows(1000)))
	require.Error(t, p.Check(NoSeqScan()))

	_, err = parseMySQL("not json", nil, false)
	require.Error(t, err)
	_, err = parseMySQL(strings.Repeat("[", 10000), nil, false)
	require.Error(t, err)
}

const pgJoin = `[{"Plan": {"Node Type": "Hash Join", "Join Type": "Left", "Total Cost": 250.5, "Plan Rows": 100,
  "Actual Total Time": 3.0, "Actual Rows": 100, "Actual Loops": 1, "Hash Cond": "(o.customer_id = c.id)",
  "Plans": [
    {"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Relation Name": "orders", "Schema": "public", "Alias": "o",
     "Total Cost": 180, "Plan Rows": 100, "Actual Total Time": 2.0, "Actual Rows": 100, "Actual Loops": 1,
     "Filter": "(o.status = 'open'::text)", "Rows Removed by Filter": 9900},
    {"Node Type": "Hash", "Total Cost": 30, "Plan Rows": 50, "Actual Rows": 50, "Actual Loops": 1, "Actual Total Time": 0.5,
     "Plans": [
       {"Node Type": "Bitmap Heap Scan", "Relation Name": "customers", "Schema": "public", "Alias": "c",
        "Total Cost": 29, "Plan Rows": 50, "Actual Rows": 50, "Actual Loops": 1, "Actual Total Time": 0.4,
        "Recheck Cond": "((c.a = 1) AND (c.b = 2))",
        "Plans": [{"Node Type": "BitmapAnd", "Plans": [
          {"Node Type": "Bitmap Index Scan", "Index Name": "customers_a", "Total Cost": 4, "Plan Rows": 500},
          {"Node Type": "Bitmap Index Scan", "Index Name": "customers_b", "Total Cost": 4, "Plan Rows": 500}]}]}]}]},
  "Planning Time": 0.2, "Execution Time": 3.2}]`

func TestParsePostgres(t *testing.T) {
	p, err := parsePostgres(pgJoin)
	require.NoError(t, err)
	p.Dialect, p.Query = Postgres, "SELECT ..."
	require.True(t, p.Analyzed)
	require.Equal(t, "3.2ms", p.Time.String())
	require.Equal(t, 250.5, p.Cost)
	root := p.Nodes()[0]
	require.Equal(t, "Hash Left Join", root.String())
	seq := root.Children[0]
	require.Equal(t, "Seq Scan on public.orders o", seq.String())
	require.Equal(t, float64(10000), seq.ActualRows, "rows returned plus rows removed by the filter")
	heap := root.Children[1].Children[0]
	require.Equal(t, "customers_a, customers_b", heap.Index)
	require.Equal(t, "customers", heap.Children[0].Children[0].Table)
	require.NoError(t, p.Check(UsesIndex("customers", "customers_b"), UsesIndex("public.customers", ""), NoSeqScan("customers")))
	err = p.Check(NoSeqScan(), MaxRows(5000), UsesIndex("orders", ""), UsesIndex("nowhere", ""))
	require.Error(t, err)
	ce := err.(*CheckError)
	require.Len(t, ce.Violations, 4)
	msg := err.Error()
	for _, want := range []string{
		`NoSeqScan(): node "Seq Scan on public.orders o": full scan of table public.orders (row count unknown)`,
		`MaxRows(5000): node "Seq Scan on public.orders o": handles actually 10000 rows of table public.orders, more than 5000`,
		`UsesIndex(orders): node "Seq Scan on public.orders o": table public.orders is scanned in full`,
		`UsesIndex(nowhere): the plan does not read table nowhere`,
		"plan (postgres, analyzed):",
		"  ->  Seq Scan on public.orders o  (cost=180 rows=100) (actual rows=10000 loops=1 time=2ms)",
		"Rows Removed by Filter: 9900",
	} {
		require.Contains(t, msg, want)
	}
	_, err = parsePostgres(`[]`)
	require.Error(t, err)
}

func TestParseSQLite(t *testing.T) {
	lines := []sqliteLine{
		{3, 0, "MATERIALIZE c"},
		{6, 3, "SCAN t"},
		{16, 0, "SCAN c"},
		{20, 0, "SEARCH u USING AUTOMATIC COVERING INDEX (tid=?)"},
		{25, 0, "SEARCH b USING INTEGER PRIMARY KEY (rowid=?)"},
		{30, 0, "SCAN v USING COVERING INDEX v_x"},
		{40, 0, "USE TEMP B-TREE FOR ORDER BY"},
	}
	p := buildSQLite(lines, map[string]string{"b": "big"})
	p.Dialect = SQLite
	require.Equal(t, "MATERIALIZE c\n  ->  SCAN t\nSCAN c\nSEARCH u USING AUTOMATIC COVERING INDEX (tid=?)\n  Automatic index: built by a full scan of the table\nSEARCH b USING INTEGER PRIMARY KEY (rowid=?)\nSCAN v USING COVERING INDEX v_x\nUSE TEMP B-TREE FOR ORDER BY\n", p.String())
	full := map[string]bool{}
	p.Walk(func(n Node, _ int) {
		if n.FullScan {
			full[n.Table] = true
		}
	})
	require.Equal(t, map[string]bool{"t": true, "u": true, "v": true}, full, "c is a materialized CTE, not a table")
	require.NoError(t, p.Check(UsesIndex("big", "INTEGER PRIMARY KEY")))
	require.Error(t, p.Check(UsesIndex("v", "v_x")), "a full scan of an index is a full scan")
	require.Equal(t, "USE TEMP B-TREE", p.Nodes()[5].Op)
}

func TestVersionAtLeast(t *testing.T) {
	for v, want := range map[string]bool{"8.3.0": true, "8.4.2": true, "9.1.0-commercial": true, "8.0.36": false, "5.7.44-log": false, "": false, "x": false} {
		require.Equal(t, want, versionAtLeast(v, 8, 3), v)
	}
}

func TestMySQLIndexMerge(t *testing.T) {
	p, err := parseMySQL(`{"query_block": {"select_id": 1, "table": {"table_name": "t", "access_type": "index_merge",
		"key": "sort_union(col1,col3)", "rows": 2398}}}`, nil, false)
	require.NoError(t, err)
	require.NoError(t, p.Check(UsesIndex("t", "col3"), NoSeqScan()))
}
