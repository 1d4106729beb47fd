package main

import (
	"context"
	"math"
	"math/rand/v2"
	"time"
)

// symbols is the fixed list the simulated feed draws from.
var symbols = []string{"ACME", "GLOBX", "INITECH", "UMBRL", "WAYNE", "STARK", "HOOLI", "SOYL"}

// quote is one price observation from the feed.
type quote struct {
	ID     string    `json:"-"`
	Symbol string    `json:"symbol"`
	Price  float64   `json:"price"`
	TS     time.Time `json:"ts"`
}

// runFeed delivers rate quotes per second to deliver until ctx is done or,
// when count > 0, count quotes have been delivered. Prices follow a random
// walk per symbol.
func runFeed(ctx context.Context, rate, count int, deliver func(quote)) {
	if rate <= 0 {
		return
	}
	prices := make(map[string]float64, len(symbols))
	for i, s := range symbols {
		prices[s] = 50 + 25*float64(i)
	}
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
				s := symbols[rand.IntN(len(symbols))]
				p := math.Max(0.01, prices[s]*(1+rand.NormFloat64()*0.001))
				prices[s] = p
				deliver(quote{Symbol: s, Price: math.Round(p*100) / 100, TS: now.UTC()})
			}
		}
	}
}
