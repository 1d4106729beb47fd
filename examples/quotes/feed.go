package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"math"
	mrand "math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// symbols is the fixed list the simulated feed draws from.
var symbols = []string{"ACME", "GLOBX", "INITECH", "UMBRL", "WAYNE", "STARK", "HOOLI", "SOYL"}

// quote is one price observation from the feed, as queued and stored.
type quote struct {
	ID     string    `json:"id"`
	Symbol string    `json:"symbol"`
	Price  float64   `json:"price"`
	TS     time.Time `json:"ts"`
}

// idSource hands out quote IDs unique across replicas and restarts: a
// random per-process prefix and a counter. It is safe for concurrent use.
type idSource struct {
	prefix string
	n      atomic.Uint64
}

func newIDSource() *idSource {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return &idSource{prefix: hex.EncodeToString(b[:]) + "-"}
}

func (s *idSource) next() string { return s.prefix + strconv.FormatUint(s.n.Add(1), 10) }

// prices is a random walk per symbol, safe for concurrent use.
type prices struct {
	mu sync.Mutex // protects p
	p  map[string]float64
}

func newPrices() *prices {
	p := &prices{p: make(map[string]float64, len(symbols))}
	for i, s := range symbols {
		p.p[s] = 50 + 25*float64(i)
	}
	return p
}

// quote returns the next quote of a random symbol.
func (p *prices) quote(ids *idSource, now time.Time) quote {
	s := symbols[mrand.IntN(len(symbols))]
	p.mu.Lock()
	v := math.Max(0.01, p.p[s]*(1+mrand.NormFloat64()*0.001))
	p.p[s] = v
	p.mu.Unlock()
	return quote{ID: ids.next(), Symbol: s, Price: math.Round(v*100) / 100, TS: now.UTC()}
}

// runFeed delivers rate quotes per second to deliver until ctx is done or,
// when count > 0, count quotes have been delivered. deliver is the
// third party's callback: it must return quickly.
func runFeed(ctx context.Context, rate, count int, ids *idSource, deliver func(context.Context, quote)) {
	if rate <= 0 {
		return
	}
	p := newPrices()
	const tick = 10 * time.Millisecond
	t := time.NewTicker(tick)
	defer t.Stop()
	sent := 0
	start := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			due := int(float64(rate) * now.Sub(start).Seconds())
			for ; sent < due; sent++ {
				if count > 0 && sent >= count {
					return
				}
				deliver(ctx, p.quote(ids, now))
			}
		}
	}
}

// runBurst delivers n quotes as fast as workers concurrent callbacks can,
// as a third party's backlog arriving at once would.
func runBurst(ctx context.Context, n, workers int, ids *idSource, deliver func(context.Context, quote)) {
	p := newPrices()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil && next.Add(1) <= int64(n) {
				deliver(ctx, p.quote(ids, time.Now()))
			}
		})
	}
	wg.Wait()
}
