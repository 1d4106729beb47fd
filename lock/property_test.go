package lock_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/lock"
)

// outcome classifies an error the same way for every backend.
func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, lock.ErrReleased):
		return "released"
	case errors.Is(err, lock.ErrLockLost):
		return "lost"
	case errors.Is(err, lock.ErrNotAcquired):
		return "not-acquired"
	default:
		return "error: " + err.Error()
	}
}

// model runs one operation sequence on one Locker and returns the outcome of
// every step. Tokens are checked to increase per key along the way.
type model struct {
	l     lock.Locker
	held  map[[2]int]*lock.Lock // (actor, key) -> last lock obtained
	last  map[int]uint64        // key -> last token
	steps []string
}

func (m *model) step(t *testing.T, op, actor, key int) {
	ctx := context.Background()
	k := fmt.Sprintf("k%d", key)
	h := m.held[[2]int{actor, key}]
	var res string
	switch op {
	case 0, 1: // TryAcquire (twice as likely)
		lk, err := m.l.TryAcquire(ctx, k, time.Minute)
		res = outcome(err)
		if err == nil {
			require.Greater(t, lk.Token(), m.last[key], "tokens increase per key")
			m.last[key] = lk.Token()
			m.held[[2]int{actor, key}] = lk
		}
	case 2: // Release
		if h == nil {
			res = "no-lock"
			break
		}
		res = outcome(h.Release(ctx))
	case 3: // Refresh
		if h == nil {
			res = "no-lock"
			break
		}
		res = outcome(h.Refresh(ctx, time.Minute))
	case 4: // TTL
		if h == nil {
			res = "no-lock"
			break
		}
		d, err := h.TTL(ctx)
		res = outcome(err)
		if err == nil && (d <= 0 || d > time.Minute) {
			res = fmt.Sprintf("bad ttl %v", d)
		}
	}
	m.steps = append(m.steps, fmt.Sprintf("op%d(actor %d, key %d) = %s", op, actor, key, res))
}

// TestPropertyLocalMatchesRedis runs random sequences of TryAcquire,
// Release, Refresh and TTL by several actors on a few keys against the
// in-process backend and the Redis one, and requires the same outcome at
// every step.
func TestPropertyLocalMatchesRedis(t *testing.T) {
	leakCheck(t)
	db := redistest.New(t)
	seqs, ops := 200, 40
	if long() {
		seqs = 2000
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	for s := range seqs {
		rl, err := lock.New(db.Client, lock.WithPrefix(fmt.Sprintf("%sseq%d:", db.Prefix, s)))
		require.NoError(t, err)
		a := &model{l: lock.NewLocal(), held: map[[2]int]*lock.Lock{}, last: map[int]uint64{}}
		b := &model{l: rl, held: map[[2]int]*lock.Lock{}, last: map[int]uint64{}}
		for range ops {
			op, actor, key := r.IntN(5), r.IntN(3), r.IntN(2)
			a.step(t, op, actor, key)
			b.step(t, op, actor, key)
			i := len(a.steps) - 1
			if a.steps[i] != b.steps[i] {
				t.Fatalf("seed %d, sequence %d, step %d: local %q, redis %q\nhistory:\n%q", seed, s, i, a.steps[i], b.steps[i], a.steps)
			}
		}
		// Leave nothing held.
		for _, m := range []*model{a, b} {
			for _, h := range m.held {
				_ = h.Release(context.Background())
			}
		}
	}
}
