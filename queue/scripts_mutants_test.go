package queue_test

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/redistest"
)

// probe is a testing.TB that records failures instead of failing the
// test: the mutation test runs a case against a mutant and wants it to
// fail. Everything else goes to the real test.
type probe struct {
	testing.TB
	failed atomic.Bool
}

func (p *probe) Fail()                 { p.failed.Store(true) }
func (p *probe) Failed() bool          { return p.failed.Load() }
func (p *probe) FailNow()              { p.failed.Store(true); runtime.Goexit() }
func (p *probe) Error(...any)          { p.Fail() }
func (p *probe) Errorf(string, ...any) { p.Fail() }
func (p *probe) Fatal(...any)          { p.FailNow() }
func (p *probe) Fatalf(string, ...any) { p.FailNow() }
func (p *probe) Log(...any)            {}
func (p *probe) Logf(string, ...any)   {}

// caseFails reports whether tc fails against script.
func caseFails(t *testing.T, db *redistest.DB, tag string, tc scriptCase, script *redis.Script) bool {
	t.Helper()
	p := &probe{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				p.Fail() // a check that met a reply it did not expect
			}
		}()
		runScriptCase(p, db, tag, tc, script)
	}()
	<-done
	return p.Failed()
}

// mutant is a script with one change: a return that answers something
// else, a Redis call left out, or a condition negated.
type mutant struct {
	what string // "line 12: return 'mutant'"
	src  string
}

// balanced reports whether s closes every ( and { it opens.
func balanced(s string) bool {
	n := 0
	for _, c := range s {
		switch c {
		case '(', '{':
			n++
		case ')', '}':
			n--
		}
	}
	return n == 0
}

// mutants returns src's mutants: each return that fits on its line
// answers 'mutant', each statement that is a Redis call (over as many lines
// as it takes) is commented out, and each single-line if or elseif
// condition is negated.
func mutants(src string) []mutant {
	lines := strings.Split(src, "\n")
	var out []mutant
	with := func(from, to int, repl ...string) string {
		l := append(append(append([]string(nil), lines[:from]...), repl...), lines[to:]...)
		return strings.Join(l, "\n")
	}
	for i, l := range lines {
		code := strings.TrimSpace(l)
		indent := l[:len(l)-len(strings.TrimLeft(l, " "))]
		switch {
		case strings.HasPrefix(code, "--"):
		case strings.HasPrefix(code, "return ") && balanced(code):
			out = append(out, mutant{fmt.Sprintf("line %d: %s -> return 'mutant'", i+1, code), with(i, i+1, indent+"return 'mutant'")})
		case strings.HasPrefix(code, "redis.call(") || strings.HasPrefix(code, "redis.pcall("):
			j, stmt := i, code
			for !balanced(stmt) && j+1 < len(lines) {
				j++
				stmt += lines[j]
			}
			var repl []string
			for _, x := range lines[i : j+1] {
				repl = append(repl, "-- "+x)
			}
			out = append(out, mutant{fmt.Sprintf("line %d: %s left out", i+1, code), with(i, j+1, repl...)})
		case (strings.HasPrefix(code, "if ") || strings.HasPrefix(code, "elseif ")) && strings.HasSuffix(code, " then"):
			kw, cond, _ := strings.Cut(code, " ")
			cond = strings.TrimSuffix(cond, " then")
			out = append(out, mutant{fmt.Sprintf("line %d: %s negated", i+1, code), with(i, i+1, indent+kw+" not ("+cond+") then")})
		}
	}
	return out
}

// equivalent are the mutants no case can tell from the script, each with
// the reason.
var equivalent = map[string]string{}

// TestScriptBranchesCatchMutants checks that TestScriptBranches can fail:
// for every mutant of every script (a return answering something else, a
// Redis call left out, a condition negated), at least one of the script's
// cases fails against it, on a single node. A mutant that survives is a
// branch or an effect no case checks.
func TestScriptBranchesCatchMutants(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every case of a script once per mutant")
	}
	db := redistest.New(t)
	byScript := map[string][]scriptCase{}
	for _, c := range scriptCases() {
		byScript[c.script()] = append(byScript[c.script()], c)
	}
	run, total := 0, 0
	defer func() { t.Logf("%d mutants of %d scripts, %d case runs", total, len(byScript), run) }()
	for script, cases := range byScript {
		src, err := os.ReadFile("scripts/" + script + ".lua")
		require.NoError(t, err)
		// the control: the script as written passes its cases through the probe
		for _, tc := range cases {
			run++
			require.False(t, caseFails(t, db, fmt.Sprintf("m%d", run), tc, redis.NewScript(string(src))), "%s fails unmutated", tc.name)
		}
		ms := mutants(string(src))
		require.NotEmpty(t, ms, "%s has no mutants", script)
		total += len(ms)
		for _, m := range ms {
			key := script + ": " + m.what
			killed := false
			s := redis.NewScript(m.src)
			// a mutant that does not compile would be killed by every case
			require.NoError(t, s.Load(t.Context(), db.Client).Err(), "%s does not compile", key)
			for _, tc := range cases {
				run++
				if caseFails(t, db, fmt.Sprintf("m%d", run), tc, s) {
					killed = true
					break
				}
			}
			if reason, ok := equivalent[key]; ok {
				assert.False(t, killed, "%s is listed as equivalent (%s) but a case kills it", key, reason)
				continue
			}
			assert.True(t, killed, "no case of %s fails with %s", script, m.what)
		}
	}
}
