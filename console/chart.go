package console

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"
)

// chartSeries is one line of a chart. Values below 0 are unknown and
// leave a gap.
type chartSeries struct {
	Name   string
	Values []float64
	Color  int // palette index (CSS classes s0..s5)
}

// Chart geometry, in SVG user units (the SVG scales to its box).
const (
	chartW, chartH        = 640.0, 210.0
	padL, padR            = 52.0, 14.0
	padT, padB            = 14.0, 26.0
	plotW, plotH          = chartW - padL - padR, chartH - padT - padB
	chartTicks            = 4
	chartMinutesPerXLabel = 15
)

// lineChart renders series over the minutes xs as an inline SVG line
// chart with a y axis from 0, grid lines, time labels and a legend: no
// script, nothing fetched, readable without colour (the legend names the
// lines in order).
func lineChart(title, unit string, xs []time.Time, series []chartSeries) template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<figure class="chart"><figcaption><span class="chart-title">%s</span> <span class="chart-unit">%s</span>`,
		template.HTMLEscapeString(title), template.HTMLEscapeString(unit))
	if len(series) > 1 || (len(series) == 1 && series[0].Name != "") {
		b.WriteString(`<span class="legend">`)
		for _, s := range series {
			fmt.Fprintf(&b, `<span class="key"><span class="swatch s%d"></span>%s</span>`, s.Color%6, template.HTMLEscapeString(s.Name))
		}
		b.WriteString(`</span>`)
	}
	b.WriteString(`</figcaption>`)
	top := 0.0
	for _, s := range series {
		for _, v := range s.Values {
			if v > top {
				top = v
			}
		}
	}
	top = niceCeil(top)
	fmt.Fprintf(&b, `<svg viewBox="0 0 %g %g" role="img" aria-label="%s" preserveAspectRatio="none">`, chartW, chartH, template.HTMLEscapeString(title))
	// grid and y labels
	for i := 0; i <= chartTicks; i++ {
		v := top * float64(i) / chartTicks
		y := padT + plotH - plotH*float64(i)/chartTicks
		cls := "grid"
		if i == 0 {
			cls = "axis"
		}
		fmt.Fprintf(&b, `<line class="%s" x1="%g" y1="%.1f" x2="%g" y2="%.1f"/>`, cls, padL, y, chartW-padR, y)
		fmt.Fprintf(&b, `<text class="ylabel" x="%g" y="%.1f">%s</text>`, padL-6, y+4, shortNumber(v))
	}
	n := len(xs)
	x := func(i int) float64 {
		if n <= 1 {
			return padL + plotW
		}
		return padL + plotW*float64(i)/float64(n-1)
	}
	// x labels every 15 minutes, and the last minute
	for i, t := range xs {
		if t.Minute()%chartMinutesPerXLabel == 0 && i < n-3 || i == n-1 {
			label := t.Local().Format("15:04")
			if i == n-1 {
				label = "now"
			}
			fmt.Fprintf(&b, `<line class="tick" x1="%.1f" y1="%g" x2="%.1f" y2="%g"/>`, x(i), padT+plotH, x(i), padT+plotH+4)
			fmt.Fprintf(&b, `<text class="xlabel" x="%.1f" y="%g">%s</text>`, x(i), chartH-6, label)
		}
	}
	empty := true
	for _, s := range series {
		var pts []string
		flush := func() {
			if len(pts) == 1 {
				fmt.Fprintf(&b, `<circle class="dot s%d" cx="%s" r="2.5"/>`, s.Color%6, strings.Replace(pts[0], ",", `" cy="`, 1))
			} else if len(pts) > 1 {
				fmt.Fprintf(&b, `<polyline class="line s%d" points="%s"/>`, s.Color%6, strings.Join(pts, " "))
			}
			pts = pts[:0]
		}
		for i, v := range s.Values {
			if v < 0 || math.IsNaN(v) {
				flush()
				continue
			}
			if v > 0 {
				empty = false
			}
			y := padT + plotH
			if top > 0 {
				y -= plotH * v / top
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y))
		}
		flush()
	}
	if empty {
		fmt.Fprintf(&b, `<text class="empty" x="%g" y="%g">all zero over the last hour</text>`, padL+plotW/2, padT+plotH/2)
	}
	b.WriteString(`</svg></figure>`)
	return template.HTML(b.String()) // built from escaped parts
}

// niceCeil returns the top of the y axis for a largest value v: four
// grid steps of 1, 2 or 5 times a power of ten (at least 1 each, so that a
// quiet chart still has whole-number grid lines).
func niceCeil(v float64) float64 {
	step := v / chartTicks
	if step <= 1 {
		return chartTicks
	}
	p := math.Pow(10, math.Floor(math.Log10(step)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= step {
			return chartTicks * m * p
		}
	}
	return chartTicks * 10 * p
}

// shortNumber writes 1500 as "1.5k".
func shortNumber(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}
