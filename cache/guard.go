package cache

import (
	"hash/maphash"
	"sync/atomic"
)

// The local tier's guard against storing a value across an invalidation.
//
// A replica that reads a key from Redis stores the answer in its local tier
// when the reply arrives. The invalidation of a write made after the read was
// answered travels on another connection (the subscription) and may arrive
// first: dropping the key then removes nothing, and the store that follows
// would keep the old value until the local TTL. The same holds for a value
// this replica wrote itself when another replica overwrites it before the
// local store. So every invalidation, received or made here, first advances
// a counter of its key's stripe; a store carries the stripe's count taken
// before the Redis command it mirrors, and is dropped if the count moved by
// then (checked again after the store, so that an invalidation between the
// check and the store removes it). An invalidation that arrives after the
// store removes the value as before. Keys of one stripe share a counter: a
// busy neighbour only costs a store, never a stale read.

// guardStripes is the number of invalidation counters (a power of two).
const guardStripes = 1024

// guard holds the invalidation counters. The zero value is not ready: use
// newGuard. Safe for concurrent use.
type guard struct {
	seed maphash.Seed
	n    [guardStripes]atomic.Uint64
}

// stamp is a stripe's count at the start of a Redis command whose answer
// may be stored locally.
type stamp struct {
	i uint32
	n uint64
	// void: the store this stamp is for must not happen (an invalidation
	// arrived between a write and its own count).
	void bool
}

func newGuard() *guard { return &guard{seed: maphash.MakeSeed()} }

func (g *guard) stripe(key string) uint32 {
	return uint32(maphash.String(g.seed, key)) & (guardStripes - 1)
}

// stamp returns key's stripe count now.
func (g *guard) stamp(key string) stamp {
	i := g.stripe(key)
	return stamp{i: i, n: g.n[i].Load()}
}

// moved reports whether an invalidation of s's stripe was counted since s.
func (g *guard) moved(s stamp) bool { return s.void || g.n[s.i].Load() != s.n }

// invalidated counts an invalidation of key.
func (g *guard) invalidated(key string) { g.n[g.stripe(key)].Add(1) }

// wrote counts this replica's own write of key, answered after s was taken,
// and returns the stamp to store the written value with: void if another
// invalidation of the stripe was counted in between (it may be of a newer
// write of key).
func (g *guard) wrote(s stamp) stamp {
	n := g.n[s.i].Add(1)
	return stamp{i: s.i, n: n, void: n != s.n+1}
}

// invalidatedAll counts an invalidation of every key (the local tier was
// flushed: invalidations may have been lost).
func (g *guard) invalidatedAll() {
	for i := range g.n {
		g.n[i].Add(1)
	}
}
