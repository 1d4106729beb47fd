package ratelimit

import (
	"hash/maphash"
	"sync"
)

// shards is a bounded map from key to V split into independently locked
// shards. Callers lock the shard of a key and work on its map directly, so
// the hot path allocates nothing for an existing key.
type shards[V any] struct {
	seed maphash.Seed
	mask uint64
	per  int // most keys per shard
	s    []shard[V]
}

type shard[V any] struct {
	mu sync.Mutex // protects m
	m  map[string]V
	_  [48]byte // keep shards' mutexes on separate cache lines
}

func newShards[V any](maxKeys int) *shards[V] {
	n := 1
	for n < 64 && n*64 < maxKeys {
		n <<= 1
	}
	s := &shards[V]{seed: maphash.MakeSeed(), mask: uint64(n - 1), per: max(1, (maxKeys+n-1)/n), s: make([]shard[V], n)}
	for i := range s.s {
		s.s[i].m = make(map[string]V)
	}
	return s
}

func (s *shards[V]) shard(key string) *shard[V] {
	return &s.s[maphash.String(s.seed, key)&s.mask]
}

// makeRoom drops one key when the shard is full. score says how much keeping
// a value is worth: <= 0 means the value is equivalent to no value (a bucket
// back at full burst, an expired entry) and is dropped first. Up to 8 keys
// are sampled (map iteration starts at a random place) and the lowest score
// goes, so a full shard costs O(1) per insert. The caller holds sh.mu.
func (sh *shard[V]) makeRoom(per int, score func(V) int64) {
	if len(sh.m) < per {
		return
	}
	var victim string
	best := int64(-1)
	probes := 0
	for k, v := range sh.m {
		sc := score(v)
		if sc <= 0 {
			delete(sh.m, k)
			return
		}
		if best < 0 || sc < best {
			victim, best = k, sc
		}
		if probes++; probes == 8 {
			break
		}
	}
	delete(sh.m, victim)
}

// len returns the number of keys held.
func (s *shards[V]) len() int {
	n := 0
	for i := range s.s {
		sh := &s.s[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}
