package sqlcheck

import (
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
)

// jvalue is a JSON value that keeps the order of object members, which the
// MySQL plans depend on (the tables of a join, in join order).
type jvalue struct {
	obj    []jmember // an object, in document order
	arr    []jvalue  // an array
	scalar any       // string, json.Number, bool or nil
	isObj  bool
	isArr  bool
}

type jmember struct {
	key string
	val jvalue
}

// parseOrdered decodes one JSON document.
func parseOrdered(raw string) (jvalue, error) {
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	v, err := decodeValue(dec, 0)
	if err != nil {
		return jvalue{}, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return jvalue{}, errors.New("trailing data after the JSON document")
	}
	return v, nil
}

// maxDepth bounds the nesting parseOrdered accepts.
const maxDepth = 200

func decodeValue(dec *json.Decoder, depth int) (jvalue, error) {
	if depth > maxDepth {
		return jvalue{}, errors.New("JSON nested too deep")
	}
	tok, err := dec.Token()
	if err != nil {
		return jvalue{}, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			v := jvalue{isObj: true}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return jvalue{}, err
				}
				k, _ := kt.(string)
				mv, err := decodeValue(dec, depth+1)
				if err != nil {
					return jvalue{}, err
				}
				v.obj = append(v.obj, jmember{k, mv})
			}
			_, err := dec.Token() // }
			return v, err
		case '[':
			v := jvalue{isArr: true}
			for dec.More() {
				ev, err := decodeValue(dec, depth+1)
				if err != nil {
					return jvalue{}, err
				}
				v.arr = append(v.arr, ev)
			}
			_, err := dec.Token() // ]
			return v, err
		}
		return jvalue{}, errors.New("unexpected JSON delimiter")
	default:
		return jvalue{scalar: t}, nil
	}
}

// get returns the member key of an object.
func (v jvalue) get(key string) (jvalue, bool) {
	for _, m := range v.obj {
		if m.key == key {
			return m.val, true
		}
	}
	return jvalue{}, false
}

// str returns member key as a string ("" if absent); numbers and booleans
// are formatted.
func (v jvalue) str(key string) string {
	m, ok := v.get(key)
	if !ok {
		return ""
	}
	switch s := m.scalar.(type) {
	case string:
		return s
	case json.Number:
		return s.String()
	case bool:
		return strconv.FormatBool(s)
	}
	if m.isArr {
		var parts []string
		for _, e := range m.arr {
			if s, ok := e.scalar.(string); ok {
				parts = append(parts, s)
			}
		}
		return strings.Join(parts, ", ")
	}
	return ""
}

// num returns member key as a number, accepting MySQL's numbers in strings
// ("1010.25"); ok is false when it is absent or not a number.
func (v jvalue) num(key string) (float64, bool) {
	m, ok := v.get(key)
	if !ok {
		return 0, false
	}
	var s string
	switch x := m.scalar.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = x
	default:
		return 0, false
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	return f, err == nil
}
