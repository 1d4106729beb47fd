package sqlcheck

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Rule is a requirement on query plans (NoSeqScan, UsesIndex, MaxCost,
// MaxRows, MaxTime, NodeRule), on a recorded unit of work (MaxQueries,
// NoRepeats), or a setting of the others (MinRows, a Dialect, Analyze).
// Plan.Check applies the plan rules and ignores those about the unit of
// work, which CheckQueries and Assert apply. Rules are values: one can be
// used in any number of checks, at the same time.
type Rule interface {
	// String returns the rule as written, "NoSeqScan(items)", for messages.
	String() string
	apply(rs *ruleSet)
}

// ruleSet is the rules of one check, sorted by what they apply to.
type ruleSet struct {
	plan       []planRule
	minRows    int64 // NoSeqScan exempts tables with fewer rows; 0: none
	maxQueries []int
	noRepeats  []int
	dialect    Dialect
	analyze    *bool
	invalid    []error
}

// reject records that rule r was built with a bad argument, and why.
func (rs *ruleSet) reject(r Rule, why string) {
	rs.invalid = append(rs.invalid, fmt.Errorf("%w: %s: %s", ErrInvalidRule, r, why))
}

// planRule checks one plan and returns what it breaks.
type planRule interface {
	Rule
	check(p *Plan, rs *ruleSet) []Violation
}

func collect(rules []Rule) *ruleSet {
	rs := &ruleSet{}
	for _, r := range rules {
		if r == nil {
			rs.invalid = append(rs.invalid, fmt.Errorf("%w: nil rule", ErrInvalidRule))
			continue
		}
		r.apply(rs)
	}
	return rs
}

// Violation is one rule broken by one plan.
type Violation struct {
	// Rule is the rule broken, as written: "NoSeqScan(items)".
	Rule string
	// Node is the offending node; nil when the rule is about the plan as a
	// whole and no node is to blame.
	Node *Node
	// Reason says what is wrong, naming the table.
	Reason string
}

// String formats the violation: the rule, the node, the reason.
func (v Violation) String() string {
	if v.Node != nil {
		return fmt.Sprintf("%s: node %q: %s", v.Rule, v.Node.String(), v.Reason)
	}
	return v.Rule + ": " + v.Reason
}

// CheckError is the error of a plan that breaks rules. Its message lists
// every rule broken, with the node and the table, followed by the plan.
type CheckError struct {
	Plan       *Plan
	Violations []Violation
}

// Error lists the violations and prints the plan.
func (e *CheckError) Error() string {
	var b strings.Builder
	n := len(e.Violations)
	word := "rules"
	if n == 1 {
		word = "rule"
	}
	fmt.Fprintf(&b, "sqlcheck: %d %s broken by %s\n", n, word, oneLine(e.Plan.Query, 300))
	for _, v := range e.Violations {
		b.WriteString("  " + v.String() + "\n")
	}
	how := "estimated, not run"
	if e.Plan.Analyzed {
		how = "analyzed"
	}
	fmt.Fprintf(&b, "plan (%s, %s):\n", e.Plan.Dialect, how)
	for _, line := range strings.Split(strings.TrimRight(e.Plan.String(), "\n"), "\n") {
		b.WriteString("  " + line + "\n")
	}
	if e.Plan.AnalyzeError != nil {
		fmt.Fprintf(&b, "  (not analyzed: %v)\n", e.Plan.AnalyzeError)
	}
	return strings.TrimRight(b.String(), "\n")
}

// Is reports whether target is ErrRuleBroken.
func (e *CheckError) Is(target error) bool { return target == ErrRuleBroken }

// Check returns nil when the plan keeps every rule, else a *CheckError
// listing every rule it breaks with the offending node (errors.Is(err,
// ErrRuleBroken)). A rule built with a bad argument makes Check return an
// error matching ErrInvalidRule. MaxQueries and NoRepeats are about a
// recorded unit of work: Check ignores them.
func (p *Plan) Check(rules ...Rule) error {
	rs := collect(rules)
	return p.check(rs)
}

func (p *Plan) check(rs *ruleSet) error {
	if len(rs.invalid) > 0 {
		return rs.invalid[0]
	}
	var vs []Violation
	for _, r := range rs.plan {
		vs = append(vs, r.check(p, rs)...)
	}
	if len(vs) == 0 {
		return nil
	}
	return &CheckError{Plan: p, Violations: vs}
}

// root returns the first top-level node of p, nil if there is none.
func (p *Plan) root() *Node {
	if len(p.nodes) == 0 {
		return nil
	}
	return &p.nodes[0]
}

// all returns pointers to every node of p, parents first.
func (p *Plan) all() []*Node {
	var out []*Node
	walkPtr(p.nodes, func(n *Node) { out = append(out, n) })
	return out
}

// NoSeqScan forbids full scans (see Node.FullScan): of any table, or of the
// tables named (table or schema.table, any case). Tables with fewer rows than
// a MinRows rule of the same check are exempt.
func NoSeqScan(tables ...string) Rule { return noSeqScan{tables} }

type noSeqScan struct{ tables []string }

func (r noSeqScan) String() string { return "NoSeqScan(" + strings.Join(r.tables, ", ") + ")" }

func (r noSeqScan) apply(rs *ruleSet) {
	for _, t := range r.tables {
		if strings.TrimSpace(t) == "" {
			rs.reject(r, "a table name is empty")
			return
		}
	}
	rs.plan = append(rs.plan, r)
}

func (r noSeqScan) check(p *Plan, rs *ruleSet) []Violation {
	var vs []Violation
	for _, n := range p.all() {
		if !n.FullScan || !r.covers(n) {
			continue
		}
		if rs.minRows > 0 && n.TableRows >= 0 && n.TableRows < rs.minRows {
			continue
		}
		size := "row count unknown"
		if n.TableRows >= 0 {
			size = strconv.FormatInt(n.TableRows, 10) + " rows"
			if n.TableRows > maxCount {
				size = "more than " + strconv.Itoa(maxCount) + " rows"
			}
		}
		vs = append(vs, Violation{Rule: r.String(), Node: n, Reason: fmt.Sprintf("full scan of table %s (%s)", qualified(n), size)})
	}
	return vs
}

func (r noSeqScan) covers(n *Node) bool {
	if len(r.tables) == 0 {
		return true
	}
	for _, t := range r.tables {
		if n.matchTable(t) {
			return true
		}
	}
	return false
}

func qualified(n *Node) string {
	if n.Schema != "" {
		return n.Schema + "." + n.Table
	}
	return n.Table
}

// MinRows exempts from NoSeqScan the tables with fewer than n rows: a full
// scan of a ten-row lookup table is fine. A table whose size is unknown is
// not exempt.
func MinRows(n int64) Rule { return minRows(n) }

type minRows int64

func (r minRows) String() string { return fmt.Sprintf("MinRows(%d)", int64(r)) }

func (r minRows) apply(rs *ruleSet) {
	if r < 0 {
		rs.reject(r, "n must be >= 0")
		return
	}
	rs.minRows = int64(r)
}

// UsesIndex requires the plan to read table through index: at least one node
// reads the table, and every node that reads its rows does so through the
// index and none scans it in full. An empty index accepts any index.
func UsesIndex(table, index string) Rule { return usesIndex{table, index} }

type usesIndex struct{ table, index string }

func (r usesIndex) String() string {
	if r.index == "" {
		return fmt.Sprintf("UsesIndex(%s)", r.table)
	}
	return fmt.Sprintf("UsesIndex(%s, %s)", r.table, r.index)
}

func (r usesIndex) apply(rs *ruleSet) {
	if strings.TrimSpace(r.table) == "" {
		rs.reject(r, "the table name is empty")
		return
	}
	rs.plan = append(rs.plan, r)
}

func (r usesIndex) check(p *Plan, _ *ruleSet) []Violation {
	var vs []Violation
	found := false
	for _, n := range p.all() {
		if !n.access || !n.matchTable(r.table) {
			continue
		}
		found = true
		switch {
		case n.FullScan && n.Index == "":
			vs = append(vs, Violation{Rule: r.String(), Node: n, Reason: fmt.Sprintf("table %s is scanned in full, not read through an index", qualified(n))})
		case n.FullScan:
			vs = append(vs, Violation{Rule: r.String(), Node: n, Reason: fmt.Sprintf("table %s is read by a full scan of index %s", qualified(n), n.Index)})
		case n.Index == "":
			vs = append(vs, Violation{Rule: r.String(), Node: n, Reason: fmt.Sprintf("table %s is read without an index", qualified(n))})
		case r.index != "" && !hasIndex(n.Index, r.index):
			vs = append(vs, Violation{Rule: r.String(), Node: n, Reason: fmt.Sprintf("table %s is read through index %s, not %s", qualified(n), n.Index, r.index)})
		}
	}
	if !found {
		vs = append(vs, Violation{Rule: r.String(), Reason: fmt.Sprintf("the plan does not read table %s", r.table)})
	}
	return vs
}

func hasIndex(list, want string) bool {
	for _, i := range strings.Split(list, ", ") {
		if strings.EqualFold(i, unquote(want)) {
			return true
		}
	}
	return false
}

// MaxCost limits the planner's estimated total cost of the statement
// (Plan.Cost, in the database's own units). A plan without costs (SQLite,
// MariaDB before 11) breaks it: the rule cannot be checked there.
func MaxCost(c float64) Rule { return maxCost(c) }

type maxCost float64

func (r maxCost) String() string { return "MaxCost(" + fmtFloat(float64(r)) + ")" }

func (r maxCost) apply(rs *ruleSet) {
	if r < 0 || r != r {
		rs.reject(r, "the cost must be >= 0")
		return
	}
	rs.plan = append(rs.plan, r)
}

func (r maxCost) check(p *Plan, _ *ruleSet) []Violation {
	root := p.root()
	switch {
	case p.Cost < 0:
		return []Violation{{Rule: r.String(), Reason: fmt.Sprintf("%s reports no cost for this plan", p.Dialect)}}
	case p.Cost > float64(r):
		return []Violation{{Rule: r.String(), Node: root, Reason: fmt.Sprintf("estimated cost %s is more than %s%s", fmtFloat(p.Cost), fmtFloat(float64(r)), tablesOf(p))}}
	}
	return nil
}

// tablesOf lists the tables a plan reads, for messages.
func tablesOf(p *Plan) string {
	var ts []string
	seen := map[string]bool{}
	for _, n := range p.all() {
		if n.Table != "" && !seen[qualified(n)] {
			seen[qualified(n)] = true
			ts = append(ts, qualified(n))
		}
	}
	if len(ts) == 0 {
		return ""
	}
	return " (tables " + strings.Join(ts, ", ") + ")"
}

// MaxRows limits the rows any one node handles: the rows it read when the
// plan is analyzed (Node.ActualRows), else the planner's estimate
// (Node.EstRows). A plan without row counts (SQLite) breaks it: the rule
// cannot be checked there.
func MaxRows(n int64) Rule { return maxRows(n) }

type maxRows int64

func (r maxRows) String() string { return fmt.Sprintf("MaxRows(%d)", int64(r)) }

func (r maxRows) apply(rs *ruleSet) {
	if r < 0 {
		rs.reject(r, "n must be >= 0")
		return
	}
	rs.plan = append(rs.plan, r)
}

func (r maxRows) check(p *Plan, _ *ruleSet) []Violation {
	var vs []Violation
	counted := false
	for _, n := range p.all() {
		rows, what := n.EstRows, "an estimated"
		if p.Analyzed && n.ActualRows >= 0 {
			rows, what = n.ActualRows, "actually"
		}
		if rows < 0 {
			continue
		}
		counted = true
		if rows > float64(r) {
			on := ""
			if n.Table != "" {
				on = " of table " + qualified(n)
			}
			vs = append(vs, Violation{Rule: r.String(), Node: n, Reason: fmt.Sprintf("handles %s %s rows%s, more than %d", what, fmtFloat(rows), on, int64(r))})
		}
	}
	if !counted {
		return []Violation{{Rule: r.String(), Reason: fmt.Sprintf("%s reports no row counts for this plan", p.Dialect)}}
	}
	return vs
}

// MaxTime limits how long the statement took when Explain ran it
// (Plan.Time). A plan that was not analyzed (SQLite, MySQL, Analyze(false),
// a statement that failed to run) breaks it: the rule cannot be checked
// there. Timings vary from run to run: prefer MaxRows and MaxCost in tests.
func MaxTime(d time.Duration) Rule { return maxTime(d) }

type maxTime time.Duration

func (r maxTime) String() string { return "MaxTime(" + time.Duration(r).String() + ")" }

func (r maxTime) apply(rs *ruleSet) {
	if r < 0 {
		rs.reject(r, "the duration must be >= 0")
		return
	}
	rs.plan = append(rs.plan, r)
}

func (r maxTime) check(p *Plan, _ *ruleSet) []Violation {
	root := p.root()
	switch {
	case !p.Analyzed:
		return []Violation{{Rule: r.String(), Reason: fmt.Sprintf("the statement was not run (%s plan not analyzed), so it has no time", p.Dialect)}}
	case p.Time < 0:
		return []Violation{{Rule: r.String(), Reason: fmt.Sprintf("%s reports no execution time for this statement", p.Dialect)}}
	case p.Time > time.Duration(r):
		return []Violation{{Rule: r.String(), Node: root, Reason: fmt.Sprintf("took %s, more than %s%s", p.Time, time.Duration(r), tablesOf(p))}}
	}
	return nil
}

// NodeRule is a rule of your own: fn is called for every node of the plan
// and a non-nil error it returns is reported as a violation of the rule
// called name, on that node.
//
//	noFilesort := sqlcheck.NodeRule("NoFilesort", func(n sqlcheck.Node) error {
//		if n.Op == "filesort" {
//			return errors.New("sorts without an index")
//		}
//		return nil
//	})
func NodeRule(name string, fn func(n Node) error) Rule { return nodeRule{name, fn} }

type nodeRule struct {
	name string
	fn   func(Node) error
}

func (r nodeRule) String() string { return r.name }

func (r nodeRule) apply(rs *ruleSet) {
	if r.fn == nil || strings.TrimSpace(r.name) == "" {
		rs.invalid = append(rs.invalid, fmt.Errorf("%w: NodeRule(%q) needs a name and a function", ErrInvalidRule, r.name))
		return
	}
	rs.plan = append(rs.plan, r)
}

func (r nodeRule) check(p *Plan, _ *ruleSet) (vs []Violation) {
	for _, n := range p.all() {
		err := func() (err error) {
			defer func() {
				if v := recover(); v != nil {
					err = fmt.Errorf("panic: %v", v)
				}
			}()
			return r.fn(*n)
		}()
		if err != nil {
			vs = append(vs, Violation{Rule: r.name, Node: n, Reason: err.Error()})
		}
	}
	return vs
}
