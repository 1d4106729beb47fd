package ratelimit

import "time"

// gcra is one Limit in the integer form both the Lua scripts and the local
// limiter use. Time is in microseconds. A key's theoretical arrival time (TAT)
// is tq + tr/R with 0 <= tr < R, so the emission interval Period/Rate is exact
// even when Rate does not divide Period. "Used" quota U = (TAT - now) × R is an
// integer in units of 1/R µs; one event costs P = Period in those units and
// the bucket holds TOL = Burst × P. Limit.Validate keeps TOL below 2^53.
type gcra struct {
	lim Limit
	R   int64 // Rate
	P   int64 // Period in µs: the cost of one event in scaled units
	TOL int64 // Burst × P
}

func newGCRA(l Limit) gcra {
	p := l.Period.Microseconds()
	return gcra{lim: l, R: int64(l.Rate), P: p, TOL: int64(l.Burst) * p}
}

// used returns U for a stored TAT at time now.
func (g *gcra) used(tq, tr, now int64) int64 {
	if tq < now {
		return 0
	}
	return (tq-now)*g.R + tr
}

// avail returns how many events fit now given U (never negative).
func (g *gcra) avail(u int64) int64 {
	if u >= g.TOL {
		return 0
	}
	return (g.TOL - u) / g.P
}

// tat turns U' back into a stored TAT at time now.
func (g *gcra) tat(u, now int64) (tq, tr int64) {
	return now + u/g.R, u % g.R
}

// retryAfter returns the µs until n events fit, given U; -1 if never.
func (g *gcra) retryAfter(u, n int64) int64 {
	need := u + n*g.P - g.TOL
	if n > int64(g.lim.Burst) {
		return -1
	}
	if need <= 0 {
		return 0
	}
	return ceilDiv(need, g.R)
}

// resetAfter returns the µs until U is back to zero.
func (g *gcra) resetAfter(u int64) int64 { return ceilDiv(u, g.R) }

func us(d int64) time.Duration { return time.Duration(d) * time.Microsecond }

// tat is a stored theoretical arrival time q + r/R µs.
type tat struct{ q, r int64 }

// decision is the outcome of decide, in the same form the scripts return.
type decision struct {
	allowed   bool
	remaining int64
	retry     int64 // µs; -1 never
	reset     int64 // µs
	tight     int   // index of the deciding limit
	take      int64 // events recorded
}

// decide is gcra.lua in Go for the in-process limiters: it checks n events
// (taking up to m >= n when they fit) against every limit, all-or-nothing,
// and updates st when allowed. st may be nil for a key with no state, in
// which case nothing is written.
func decide(specs []gcra, st []tat, now, n, m int64) decision {
	var d decision
	avail := int64(-1)
	never := false
	var uBuf [4]int64
	u := uBuf[:0]
	for i := range specs {
		g := &specs[i]
		var ui int64
		if st != nil {
			ui = g.used(st[i].q, st[i].r, now)
		}
		u = append(u, ui)
		a := g.avail(ui)
		if avail < 0 || a < avail {
			avail, d.tight = a, i
		}
		if n > int64(g.lim.Burst) {
			never = true
		}
	}
	switch {
	case n == 0:
		d.allowed = true
	case !never && avail >= n:
		d.allowed = true
		d.take = min(m, avail)
	}
	if d.take > 0 {
		for i := range specs {
			g := &specs[i]
			ui := u[i] + d.take*g.P
			if st != nil {
				st[i].q, st[i].r = g.tat(ui, now)
			}
			d.reset = max(d.reset, g.resetAfter(ui))
		}
	} else {
		for i := range specs {
			d.reset = max(d.reset, specs[i].resetAfter(u[i]))
		}
		if !d.allowed {
			if never {
				d.retry = -1
				for i := range specs {
					if n > int64(specs[i].lim.Burst) {
						d.tight = i
						break
					}
				}
			} else {
				d.tight = 0
				for i := range specs {
					if w := specs[i].retryAfter(u[i], n); w > d.retry {
						d.retry, d.tight = w, i
					}
				}
			}
		}
	}
	d.remaining = max(avail-d.take, 0)
	return d
}
