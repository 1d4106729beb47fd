package lock_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/lock"
)

// TestWaiterGivesUpAtWakeRound: a waiter whose context ends just as its
// wait round ends (BLPOP timed out, or a wake-up arrived) must still leave
// the queue; otherwise the next release hands the lock to it, and the lock
// is stranded for the waiter's TTL. The backoff is made equal to the
// context's timeout so that the two coincide often. (The contract test
// acquire-ctx-done hit this about once in fifteen runs.)
func TestWaiterGivesUpAtWakeRound(t *testing.T) {
	leakCheck(t)
	ctx := context.Background()
	db := redistest.New(t)
	stranded := 0
	n := runs(100, 1000)
	for i := range n {
		l, err := lock.New(db.Client, lock.WithPrefix(db.Prefix), lock.WithBackoff(20*time.Millisecond, 20*time.Millisecond))
		require.NoError(t, err)
		a, err := l.TryAcquire(ctx, "k", 10*time.Second)
		require.NoError(t, err)
		wctx, cancel := context.WithTimeout(ctx, time.Duration(10+i%15)*time.Millisecond)
		_, err = l.Acquire(wctx, "k", 5*time.Second)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.NoError(t, a.Release(ctx))
		b, err := l.TryAcquire(ctx, "k", time.Second)
		if err != nil {
			stranded++
			// wait the stranded grant out
			b, err = l.Acquire(ctx, "k", time.Second)
			require.NoError(t, err)
		}
		require.NoError(t, b.Release(ctx))
	}
	require.Zero(t, stranded, "of %d waiters that gave up, %d were handed the lock afterwards", n, stranded)
}
