package sqlcheck

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// TB is the part of testing.TB that Assert uses; *testing.T, *testing.B and
// *testing.F satisfy it.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
}

// Assert checks the unit of work rec recorded against rules (see
// [CheckQueries]) and, when a rule is broken, fails t with an error that
// lists every broken rule, the statements and their plans. It returns
// whether every rule held. db is what the plans are explained on, usually
// the *sql.DB the statements went through; it may be nil when no rule needs
// a plan (only MaxQueries and NoRepeats).
//
//	rec.Reset()
//	handler.ServeHTTP(w, req)
//	sqlcheck.Assert(t, rec, db, sqlcheck.MaxQueries(3), sqlcheck.NoRepeats(1), sqlcheck.NoSeqScan())
func Assert(t TB, rec *Recorder, db DB, rules ...Rule) bool {
	t.Helper()
	ctx := context.Background()
	if c, ok := t.(interface{ Context() context.Context }); ok && c.Context() != nil {
		ctx = c.Context()
	}
	if err := CheckQueries(ctx, db, rec.Queries(), rules...); err != nil {
		t.Errorf("%v", err)
		return false
	}
	return true
}

// CheckQueries checks a unit of work, the queries (from Recorder.Queries),
// against rules: MaxQueries and NoRepeats count them; the plan rules
// (NoSeqScan, UsesIndex, MaxCost, MaxRows, MaxTime, NodeRule) are checked on
// the plan of each distinct shape, explained once on db with the arguments
// of its first query. Statements that cannot be explained (DDL, SET, BEGIN,
// ...) and those that failed when they ran are counted but not explained.
//
// It returns nil when every rule holds. Otherwise the error matches
// ErrRuleBroken and holds a *QueriesError for the counting rules and a
// *CheckError per plan that breaks a rule (errors.As finds them); an
// explain that fails is reported as its error. A plan rule with a nil db
// returns ErrNilDB.
func CheckQueries(ctx context.Context, db DB, queries []Query, rules ...Rule) error {
	if ctx == nil {
		ctx = context.Background()
	}
	rs := collect(rules)
	if len(rs.invalid) > 0 {
		return errors.Join(rs.invalid...)
	}
	var errs []error
	if qe := countRules(queries, rs); qe != nil {
		errs = append(errs, qe)
	}
	if len(rs.plan) > 0 {
		if isNil(db) {
			return errors.Join(append(errs, fmt.Errorf("%w: CheckQueries needs a db to explain the queries on for %s", ErrNilDB, planRuleNames(rs)))...)
		}
		cfg := explainConfig{dialect: rs.dialect, analyze: true}
		if rs.analyze != nil {
			cfg.analyze = *rs.analyze
		}
		seen := map[string]bool{}
		for _, q := range queries {
			if seen[q.Shape] || q.Err != nil || !explainable(firstKeyword(q.SQL)) {
				continue
			}
			seen[q.Shape] = true
			p, err := explain(WithoutRecording(ctx), db, q.SQL, q.Args, cfg)
			if err != nil {
				errs = append(errs, err)
				if ctx.Err() != nil {
					break
				}
				continue
			}
			if err := p.check(rs); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

func planRuleNames(rs *ruleSet) string {
	var names []string
	for _, r := range rs.plan {
		names = append(names, r.String())
	}
	return strings.Join(names, ", ")
}

// MaxQueries limits the statements in the recorded unit of work to n.
func MaxQueries(n int) Rule { return maxQueries(n) }

type maxQueries int

func (r maxQueries) String() string { return fmt.Sprintf("MaxQueries(%d)", int(r)) }

func (r maxQueries) apply(rs *ruleSet) {
	if r < 0 {
		rs.reject(r, "n must be >= 0")
		return
	}
	rs.maxQueries = append(rs.maxQueries, int(r))
}

// NoRepeats finds N+1 loops: no shape may run more than n times in the
// recorded unit of work. NoRepeats(1) requires every statement to be
// different.
func NoRepeats(n int) Rule { return noRepeats(n) }

type noRepeats int

func (r noRepeats) String() string { return fmt.Sprintf("NoRepeats(%d)", int(r)) }

func (r noRepeats) apply(rs *ruleSet) {
	if r < 1 {
		rs.reject(r, "n must be >= 1")
		return
	}
	rs.noRepeats = append(rs.noRepeats, int(r))
}

// QueriesError is the error of a unit of work that breaks MaxQueries or
// NoRepeats. Its message names the rule and lists the statements by shape
// with their counts.
type QueriesError struct {
	// Queries are the statements of the unit of work.
	Queries []Query
	// Broken lists each broken rule with why: "MaxQueries(3): 52
	// statements", "NoRepeats(1): 51 × SELECT ...".
	Broken []string
}

// Error names the broken rules and lists the statements by shape.
func (e *QueriesError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "sqlcheck: %d statements recorded:\n", len(e.Queries))
	for _, br := range e.Broken {
		b.WriteString("  " + br + "\n")
	}
	b.WriteString("statements by shape:\n")
	for _, s := range shapeCounts(e.Queries) {
		fmt.Fprintf(&b, "  %d × %s\n", s.n, oneLine(s.shape, 300))
	}
	return strings.TrimRight(b.String(), "\n")
}

// Is reports whether target is ErrRuleBroken.
func (e *QueriesError) Is(target error) bool { return target == ErrRuleBroken }

type shapeCount struct {
	shape string
	n     int
}

// shapeCounts counts the queries by shape, in order of first appearance.
func shapeCounts(qs []Query) []shapeCount {
	var out []shapeCount
	index := map[string]int{}
	for _, q := range qs {
		i, ok := index[q.Shape]
		if !ok {
			i = len(out)
			index[q.Shape] = i
			out = append(out, shapeCount{shape: q.Shape})
		}
		out[i].n++
	}
	return out
}

func countRules(qs []Query, rs *ruleSet) *QueriesError {
	var broken []string
	for _, n := range rs.maxQueries {
		if len(qs) > n {
			broken = append(broken, fmt.Sprintf("%s: %d statements, more than %d", maxQueries(n), len(qs), n))
		}
	}
	for _, n := range rs.noRepeats {
		for _, s := range shapeCounts(qs) {
			if s.n > n {
				broken = append(broken, fmt.Sprintf("%s: %d × %s (an N+1 loop? batch it: IN (...), a join, or one multi-row statement)", noRepeats(n), s.n, oneLine(s.shape, 200)))
			}
		}
	}
	if len(broken) == 0 {
		return nil
	}
	return &QueriesError{Queries: qs, Broken: broken}
}
