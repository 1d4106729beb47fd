package scheduler

import (
	"context"
	"sort"
	"sync"
	"time"
)

// localBackend is the in-process backend of NewLocal: the same claim,
// pending and history semantics as Redis, in maps, with expiry against the
// scheduler's clock. Safe for concurrent use.
type localBackend struct {
	now func() time.Time

	mu     sync.Mutex // protects the fields below
	claims map[string]localClaim
	pend   map[string]map[string]time.Time // job -> id -> tick
	fence  map[string]uint64
	hist   map[string][][]byte
	ops    int // claims since the last sweep of expired entries
}

type localClaim struct {
	val     string
	expires time.Time
}

var _ backend = (*localBackend)(nil)

func newLocalBackend(now func() time.Time) *localBackend {
	return &localBackend{
		now:    now,
		claims: make(map[string]localClaim),
		pend:   make(map[string]map[string]time.Time),
		fence:  make(map[string]uint64),
		hist:   make(map[string][][]byte),
	}
}

func claimKey(job, id string) string { return job + "\x00" + id }

// get returns the live claim under k; the caller holds mu.
func (l *localBackend) get(k string) (localClaim, bool) {
	c, ok := l.claims[k]
	if ok && !l.now().Before(c.expires) {
		delete(l.claims, k)
		return localClaim{}, false
	}
	return c, ok
}

func (l *localBackend) claim(_ context.Context, a claimArgs) (claimResult, error) {
	sent := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ops++
	if l.ops >= 1024 {
		l.ops = 0
		now := l.now()
		for k, c := range l.claims {
			if !now.Before(c.expires) {
				delete(l.claims, k)
			}
		}
	}
	k := claimKey(a.job, a.id)
	if c, ok := l.get(k); ok && c.val != "run:"+a.owner {
		return claimResult{}, nil
	}
	l.claims[k] = localClaim{val: "run:" + a.owner, expires: l.now().Add(a.ttl)}
	if a.pending {
		p := l.pend[a.job]
		if p == nil {
			p = make(map[string]time.Time)
			l.pend[a.job] = p
		}
		p[a.id] = a.tick
	}
	var tok uint64
	if a.fence {
		l.fence[a.job]++
		tok = l.fence[a.job]
	}
	var ab []pendingTick
	if a.pending {
		for id, tick := range l.pend[a.job] {
			if tick.Before(a.oldest) || !tick.Before(a.tick) {
				continue
			}
			if _, ok := l.get(claimKey(a.job, id)); !ok {
				ab = append(ab, pendingTick{id: id, tick: tick})
			}
		}
		sort.Slice(ab, func(i, j int) bool { return ab[i].tick.Before(ab[j].tick) })
		if len(ab) > 16 {
			ab = ab[:16]
		}
	}
	return claimResult{ok: true, token: tok, sent: sent, abandoned: ab}, nil
}

func (l *localBackend) refresh(_ context.Context, job, id, owner string, ttl time.Duration) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := claimKey(job, id)
	c, ok := l.get(k)
	if !ok || c.val != "run:"+owner {
		return false, nil
	}
	c.expires = l.now().Add(ttl)
	l.claims[k] = c
	return true, nil
}

func (l *localBackend) complete(_ context.Context, a completeArgs) (bool, error) {
	job, id, owner, doneTTL, rec, keep := a.job, a.id, a.owner, a.doneTTL, a.rec, a.keep
	l.mu.Lock()
	defer l.mu.Unlock()
	k := claimKey(job, id)
	c, ok := l.get(k)
	if !ok || c.val == "run:"+owner {
		l.claims[k] = localClaim{val: "done:" + owner, expires: l.now().Add(doneTTL)}
		delete(l.pend[job], id)
	}
	if rec != nil && keep > 0 {
		h := append([][]byte{rec}, l.hist[job]...)
		if len(h) > keep {
			h = h[:keep]
		}
		l.hist[job] = h
	}
	return false, nil
}

func (l *localBackend) abandoned(_ context.Context, job string, oldest time.Time, limit int) ([]pendingTick, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []pendingTick
	for id, tick := range l.pend[job] {
		if tick.Before(oldest) {
			delete(l.pend[job], id)
			continue
		}
		if _, ok := l.get(claimKey(job, id)); !ok {
			out = append(out, pendingTick{id: id, tick: tick})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].tick.Before(out[j].tick) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (l *localBackend) history(_ context.Context, job string, n int) ([][]byte, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.hist[job]
	if len(h) > n {
		h = h[:n]
	}
	return append([][]byte(nil), h...), nil
}
