package redistest

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestScriptHeaderProblems: each way a header can disagree with its
// script's code or its tests is reported, and a header that agrees is not.
func TestScriptHeaderProblems(t *testing.T) {
	const good = `-- s.lua: a script.
--
-- KEYS[1]   stream
-- ARGV[1]   group
-- ARGV[2..] entry IDs
--
-- Returns a count.
-- Errors: WRONGTYPE.
--
-- Tests: …/s/one, …/s/two/more.
local n = redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 2)) -- ARGV[9] in a comment is not read
return n
`
	cases := []string{"s/one", "s/two/more", "other/one"}
	tests := []struct {
		name  string
		src   string
		cases []string
		want  []string
	}{
		{name: "agrees", src: good, cases: cases},
		{name: "key not documented", src: good + "redis.call('DEL', KEYS[2])\n", cases: cases,
			want: []string{"KEYS[2] is read but not documented"}},
		{name: "argv covered by the range", src: good + "redis.call('DEL', ARGV[3])\n", cases: cases},
		{name: "range not documented", src: "-- Returns 1.\n-- Errors: none.\nfor i = 3, #ARGV do end\n",
			want: []string{"ARGV[3..] is read but not documented as an open range"}},
		{name: "range documented later than read", src: "-- ARGV[4..] x\n-- Returns 1.\n-- Errors: none.\nredis.call('DEL', unpack(ARGV, 2))\n",
			want: []string{"ARGV[2..] is read but not documented as an open range"}},
		{name: "documented, not read", src: "-- KEYS[1] a\n-- ARGV[2] b\n-- Returns 1.\n-- Errors: none.\nreturn KEYS[1]\n",
			want: []string{"ARGV[2] is documented but not read"}},
		{name: "no returns nor errors", src: "-- KEYS[1] a\nreturn KEYS[1]\n",
			want: []string{`no "Returns" line`, `no "Errors" line`}},
		{name: "case not named", src: good, cases: append(cases, "s/three"),
			want: []string{"test case s/three is not named in the header"}},
		{name: "named case is no test", src: good, cases: []string{"s/one"},
			want: []string{"the header names s/two/more, which is not a test case"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, ScriptHeaderProblems("s", tt.src, tt.cases))
		})
	}
	h := ParseScriptHeader("s", good)
	assert.Equal(t, ScriptHeader{Keys: []int{1}, Argv: []int{1}, FromArgv: 2, Returns: true, Errors: true,
		Cases: []string{"s/one", "s/two/more"}}, h)
}
