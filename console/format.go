package console

import (
	"fmt"
	"html/template"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/outrigger-dev/outrigger/cache"
)

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"ago":   ago,
	"until": until,
	"dur":   humanDuration,
	"num":   num,
	"rate":  rate,
	"trunc": trunc,
	"path":  url.PathEscape,
	"query": query,
	"hitRate": func(s *cache.Stats) string {
		hits := s.LocalHits + s.RedisHits
		if hits+s.Misses == 0 {
			return "—"
		}
		return strconv.FormatFloat(100*float64(hits)/float64(hits+s.Misses), 'f', 1, 64) + "%"
	},
	"clock": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.Local().Format("2006-01-02 15:04:05")
	},
}

// ago writes how long ago t was: "12s ago", "3m ago", "2h ago", "4d ago".
func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := time.Since(t)
	if d < 0 {
		return "in " + humanDuration(-d)
	}
	if d < time.Second {
		return "just now"
	}
	return humanDuration(d) + " ago"
}

// until writes how long until t: "in 12s".
func until(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	d := time.Until(t)
	if d <= 0 {
		return "now"
	}
	return "in " + humanDuration(d)
}

// humanDuration writes d with one or two units: "850ms", "12s", "3m 20s",
// "2h 5m", "4d 3h".
func humanDuration(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < time.Hour:
		return two(int(d/time.Minute), "m", int(d%time.Minute/time.Second), "s")
	case d < 48*time.Hour:
		return two(int(d/time.Hour), "h", int(d%time.Hour/time.Minute), "m")
	}
	return two(int(d/(24*time.Hour)), "d", int(d%(24*time.Hour)/time.Hour), "h")
}

func two(a int, au string, b int, bu string) string {
	if b == 0 {
		return strconv.Itoa(a) + au
	}
	return strconv.Itoa(a) + au + " " + strconv.Itoa(b) + bu
}

// num writes n with thousands separators: 12,345.
func num(n any) string {
	var v int64
	switch x := n.(type) {
	case int:
		v = int64(x)
	case int64:
		v = x
	case uint64:
		v = int64(x)
	default:
		return fmt.Sprint(n)
	}
	s := strconv.FormatInt(v, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// rate writes a per-second rate: "0", "0.3/s", "12/s", "1.2k/s".
func rate(v float64) string {
	switch {
	case v <= 0:
		return "0"
	case v < 1:
		return strconv.FormatFloat(v*60, 'f', 0, 64) + "/min"
	case v < 10:
		return strconv.FormatFloat(v, 'f', 1, 64) + "/s"
	case v < 1000:
		return strconv.FormatFloat(v, 'f', 0, 64) + "/s"
	}
	return strconv.FormatFloat(v/1000, 'f', 1, 64) + "k/s"
}

// trunc shortens s to n runes with an ellipsis.
func trunc(n int, s string) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// query builds "?k=v&..." from pairs, dropping empty values.
func query(kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}
