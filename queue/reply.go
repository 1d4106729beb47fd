package queue

import (
	"strconv"

	"github.com/outrigger-dev/outrigger/internal/rediserr"
)

// scriptReply reads the array a script answered with, element by element,
// checking each one's type. The first element of the wrong type (or an
// array of the wrong length) sets err to a rediserr.BadReply naming the
// script, which rediserr classifies as Invalid: a script that answers with
// something else than its header says is a bug, to be returned, never
// read as zeros.
type scriptReply struct {
	script string // "stats.lua", for the error
	v      []any
	err    error
}

// newScriptReply reads v, the reply of script, which must have n elements
// (n < 0: at least -n).
func newScriptReply(script string, v []any, n int) *scriptReply {
	r := &scriptReply{script: script, v: v}
	switch {
	case n >= 0 && len(v) != n:
		r.err = rediserr.BadReply("%s: %d elements, want %d in %v", script, len(v), n, v)
	case n < 0 && len(v) < -n:
		r.err = rediserr.BadReply("%s: %d elements, want at least %d in %v", script, len(v), -n, v)
	}
	return r
}

// at returns element i, or nil with err set when there is none.
func (r *scriptReply) at(i int) any {
	if r.err != nil {
		return nil
	}
	if i >= len(r.v) {
		r.err = rediserr.BadReply("%s: no element %d in %v", r.script, i, r.v)
		return nil
	}
	return r.v[i]
}

func (r *scriptReply) bad(i int, want string) {
	if r.err == nil {
		r.err = rediserr.BadReply("%s: element %d is %v (%T), want %s", r.script, i, r.v[i], r.v[i], want)
	}
}

// int returns element i, an integer or a string holding one.
func (r *scriptReply) int(i int) int64 {
	switch x := r.at(i).(type) {
	case int64:
		return x
	case string:
		if n, err := strconv.ParseInt(x, 10, 64); err == nil {
			return n
		}
	}
	r.bad(i, "an integer")
	return 0
}

// str returns element i, a string.
func (r *scriptReply) str(i int) string {
	if s, ok := r.at(i).(string); ok {
		return s
	}
	r.bad(i, "a string")
	return ""
}

// fields returns element i, a flat array of string fields and their
// values, as a map.
func (r *scriptReply) fields(i int) map[string]any {
	flat, ok := r.at(i).([]any)
	if !ok || len(flat)%2 != 0 {
		r.bad(i, "field/value pairs")
		return nil
	}
	m := make(map[string]any, len(flat)/2)
	for j := 0; j < len(flat); j += 2 {
		f, ok := flat[j].(string)
		if !ok {
			r.bad(i, "field/value pairs")
			return nil
		}
		m[f] = flat[j+1]
	}
	return m
}

// entry returns element i, a stream entry {entry ID, {field, value, ...}}.
func (r *scriptReply) entry(i int) (string, map[string]any) {
	pair, ok := r.at(i).([]any)
	if !ok || len(pair) != 2 {
		r.bad(i, "a stream entry")
		return "", nil
	}
	e := newScriptReply(r.script, pair, 2)
	id, fields := e.str(0), e.fields(1)
	if e.err != nil {
		r.bad(i, "a stream entry")
		return "", nil
	}
	return id, fields
}
