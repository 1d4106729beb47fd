package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/outrigger-dev/outrigger/broadcast"
)

// chartPoints is how many recent prices of a symbol the board keeps (the
// page's chart).
const chartPoints = 120

// board is a replica's view of the live channels, kept by its own
// subscriptions: the latest quote and recent prices of every symbol, the
// figures of every replica and the viewer counts, each with the position it
// reflects. The page is rendered from a snapshot and subscribes from those
// positions, so it misses nothing between the two. Safe for concurrent use.
type board struct {
	hub *broadcast.Hub
	log *slog.Logger

	mu          sync.Mutex // protects the fields below
	quotes      map[string]*symbolBoard
	replicas    map[string]replicaFigures
	replicasPos broadcast.Position
	viewers     viewerCounts
	viewersPos  broadcast.Position
}

// symbolBoard is one symbol's row of the page.
type symbolBoard struct {
	Symbol  string     `json:"symbol"`
	Pos     position   `json:"pos"` // of the last quote below (or where the board started)
	Last    *liveQuote `json:"last,omitempty"`
	Points  []point    `json:"points"`  // oldest first, at most chartPoints
	Updates uint64     `json:"updates"` // quotes this replica's board has seen
}

// point is one price of a chart: t in Unix milliseconds.
type point struct {
	T int64   `json:"t"`
	P float64 `json:"p"`
}

// position is a broadcast.Position as the browser client takes it (since).
type position struct {
	Epoch  string `json:"epoch"`
	Offset uint64 `json:"offset"`
}

func toPosition(p broadcast.Position) position { return position{Epoch: p.Epoch, Offset: p.Offset} }

// boardState is what GET /v1/board answers and the page embeds.
type boardState struct {
	Replica     string           `json:"replica"` // the replica that answered
	At          time.Time        `json:"at"`
	Symbols     []symbolBoard    `json:"symbols"`
	Replicas    []replicaFigures `json:"replicas"` // by name
	ReplicasPos position         `json:"replicas_pos"`
	Viewers     viewerCounts     `json:"viewers"`
	ViewersPos  position         `json:"viewers_pos"`
}

func newBoard(hub *broadcast.Hub, log *slog.Logger) *board {
	b := &board{hub: hub, log: log, quotes: map[string]*symbolBoard{}, replicas: map[string]replicaFigures{}}
	for _, s := range symbols {
		b.quotes[s] = &symbolBoard{Symbol: s, Points: []point{}}
	}
	return b
}

// start follows every channel until ctx is done.
func (b *board) start(ctx context.Context, wg *sync.WaitGroup) {
	for _, sym := range symbols {
		wg.Go(func() { b.follow(ctx, quoteChannelPrefix+sym, chartPoints, b.applyQuote(sym)) })
	}
	wg.Go(func() { b.follow(ctx, replicasChannel, 16, b.applyReplica) })
	wg.Go(func() { b.follow(ctx, viewersChannel, 1, b.applyViewers) })
}

// follow subscribes to ch, starting from its last seed messages, and hands
// every message (or, after a resync, the new position) to apply until ctx
// is done. After an error it subscribes again from the last position.
func (b *board) follow(ctx context.Context, ch string, seed uint64, apply func(m *broadcast.Message, pos broadcast.Position)) {
	var last broadcast.Position
	for ctx.Err() == nil {
		err := b.followOnce(ctx, ch, seed, &last, apply)
		if ctx.Err() != nil {
			return
		}
		b.log.Warn("live: board subscription ended; subscribing again", "channel", ch, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (b *board) followOnce(ctx context.Context, ch string, seed uint64, last *broadcast.Position, apply func(*broadcast.Message, broadcast.Position)) error {
	var sub *broadcast.Subscription
	var err error
	if last.IsZero() {
		sub, _, err = subscribeRecent(ctx, b.hub, ch, seed)
	} else {
		sub, err = b.hub.Subscribe(ctx, ch, broadcast.Since(*last))
	}
	if err != nil {
		return err
	}
	defer sub.Close()
	*last = sub.Position()
	apply(nil, *last)
	for {
		m, err := sub.Next(ctx)
		switch {
		case errors.Is(err, broadcast.ErrResync):
			*last = sub.Position()
			apply(nil, *last)
			continue
		case err != nil:
			return err
		}
		if m.Kind == broadcast.Publication {
			*last = m.Position
			apply(&m, m.Position)
		}
	}
}

func (b *board) applyQuote(sym string) func(*broadcast.Message, broadcast.Position) {
	return func(m *broadcast.Message, pos broadcast.Position) {
		var q liveQuote
		if m != nil && json.Unmarshal(m.Data, &q) != nil {
			m = nil // not ours: only move the position
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		sb := b.quotes[sym]
		sb.Pos = toPosition(pos)
		if m == nil {
			return
		}
		// Offsets are publish order; replicas store batches concurrently, so
		// the chart and the latest quote go by the quote's time.
		sb.Updates++
		if sb.Last == nil || !q.TS.Before(sb.Last.TS) {
			sb.Last = &q
		}
		pt := point{T: q.TS.UnixMilli(), P: q.Price}
		i := len(sb.Points)
		for i > 0 && sb.Points[i-1].T > pt.T {
			i--
		}
		sb.Points = slices.Insert(sb.Points, i, pt)
		if len(sb.Points) > chartPoints {
			sb.Points = append(sb.Points[:0], sb.Points[len(sb.Points)-chartPoints:]...)
		}
	}
}

func (b *board) applyReplica(m *broadcast.Message, pos broadcast.Position) {
	var f replicaFigures
	ok := m != nil && json.Unmarshal(m.Data, &f) == nil && f.Replica != ""
	b.mu.Lock()
	defer b.mu.Unlock()
	b.replicasPos = pos
	if ok {
		b.replicas[f.Replica] = f
	}
	// Forget replicas silent for a minute: the page shows the others.
	for name, r := range b.replicas {
		if time.Since(r.At) > time.Minute {
			delete(b.replicas, name)
		}
	}
}

func (b *board) applyViewers(m *broadcast.Message, pos broadcast.Position) {
	var v viewerCounts
	ok := m != nil && json.Unmarshal(m.Data, &v) == nil
	b.mu.Lock()
	defer b.mu.Unlock()
	b.viewersPos = pos
	if ok {
		b.viewers = v
	}
}

// snapshot copies the board for the page, as answered by replica.
func (b *board) snapshot(replica string) boardState {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := boardState{Replica: replica, At: time.Now().UTC(), ReplicasPos: toPosition(b.replicasPos), Viewers: b.viewers, ViewersPos: toPosition(b.viewersPos)}
	if st.Viewers.Symbols == nil {
		st.Viewers.Symbols = map[string]int{}
	}
	for _, sym := range symbols {
		sb := *b.quotes[sym]
		sb.Points = append([]point(nil), sb.Points...)
		if sb.Last != nil {
			q := *sb.Last
			sb.Last = &q
		}
		st.Symbols = append(st.Symbols, sb)
	}
	for _, r := range b.replicas {
		st.Replicas = append(st.Replicas, r)
	}
	sort.Slice(st.Replicas, func(i, j int) bool { return st.Replicas[i].Replica < st.Replicas[j].Replica })
	if st.Replicas == nil {
		st.Replicas = []replicaFigures{}
	}
	return st
}
