package scheduler

import (
	"encoding/json"
	"strconv"
	"time"
)

// appendJSON appends r as json.Marshal encodes it (History reads it back
// with json.Unmarshal), without reflection: a run's record is written on
// every run. Like json.Marshal it fails, returning nil, for a time whose
// year is outside [0, 9999].
func (r *RunRecord) appendJSON(b []byte) []byte {
	for _, t := range [...]time.Time{r.Tick, r.Start, r.End} {
		if y := t.Year(); y < 0 || y > 9999 {
			return nil
		}
	}
	b = append(b, `{"job":`...)
	b = appendJSONString(b, r.Job)
	b = append(b, `,"tick":`...)
	b = appendJSONTime(b, r.Tick)
	b = append(b, `,"node":`...)
	b = appendJSONString(b, r.Node)
	b = append(b, `,"start":`...)
	b = appendJSONTime(b, r.Start)
	b = append(b, `,"end":`...)
	b = appendJSONTime(b, r.End)
	if r.Error != "" {
		b = append(b, `,"error":`...)
		b = appendJSONString(b, r.Error)
	}
	b = append(b, `,"attempt":`...)
	b = strconv.AppendInt(b, int64(r.Attempt), 10)
	if r.Token != 0 {
		b = append(b, `,"token":`...)
		b = strconv.AppendUint(b, r.Token, 10)
	}
	b = append(b, `,"kind":`...)
	b = appendJSONString(b, string(r.Kind))
	if r.Skipped {
		b = append(b, `,"skipped":true`...)
	}
	return append(b, '}')
}

// appendJSONString appends s quoted as encoding/json does: plain printable
// ASCII as it is, anything else through json.Marshal (its escapes of
// control, HTML and invalid characters).
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendJSONTime appends t as time.Time's MarshalJSON does (RFC 3339 with
// nanoseconds; the caller checked its year).
func appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}
