package lock_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/lock"
)

// localWaiters starts n goroutines that Acquire key on l one after the
// other (each queued before the next starts: waitQueued must report it)
// and send their lock to the returned channel in the order they got it.
type acquired struct {
	i  int
	lk *lock.Lock
}

func startWaiters(t *testing.T, l lock.Locker, key string, ttl time.Duration, ids []int, queued func() bool) (<-chan acquired, *sync.WaitGroup) {
	t.Helper()
	ctx := context.Background()
	out := make(chan acquired, len(ids))
	var wg sync.WaitGroup
	for _, i := range ids {
		wg.Go(func() {
			lk, err := l.Acquire(ctx, key, ttl)
			if err != nil {
				t.Errorf("waiter %d: %v", i, err)
				return
			}
			out <- acquired{i, lk}
		})
		if queued != nil {
			require.Eventually(t, queued, 5*time.Second, time.Millisecond, "waiter %d queued", i)
		} else {
			time.Sleep(20 * time.Millisecond) // in-process queue: no outside view
		}
	}
	return out, &wg
}

func recv(t *testing.T, ch <-chan acquired) acquired {
	t.Helper()
	select {
	case a := <-ch:
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("no waiter got the lock within 10s")
		return acquired{}
	}
}

// TestLocalHandoff checks WithLocalHandoff: goroutines of one RedisLocker
// pass the lock on without a round trip, with tokens that stay strictly
// increasing across processes, a cap that lets other processes in, and a
// fallback to Redis when the holder is lost.
func TestLocalHandoff(t *testing.T) {
	leakCheck(t)
	ctx := context.Background()
	db := redistest.New(t)
	fence := func(key string) uint64 {
		v, err := db.Client.Get(ctx, db.Prefix+"{"+key+"}:fence").Result()
		require.NoError(t, err)
		n, err := strconv.ParseUint(v, 10, 64)
		require.NoError(t, err)
		return n
	}

	t.Run("no-round-trip", func(t *testing.T) {
		c := db.NewClient(t)
		cnt := redistest.NewCounter()
		c.AddHook(cnt)
		l, err := lock.New(c, lock.WithPrefix(db.Prefix))
		require.NoError(t, err)
		a, err := l.Acquire(ctx, "nrt", 10*time.Second)
		require.NoError(t, err)
		ch, wg := startWaiters(t, l, "nrt", 10*time.Second, []int{1, 2, 3}, nil)
		cnt.Reset()
		prev := a
		require.NoError(t, prev.Release(ctx))
		for want := 1; want <= 3; want++ {
			got := recv(t, ch)
			require.Equal(t, want, got.i, "FIFO")
			require.Equal(t, prev.Token()+1, got.lk.Token(), "next reserved token")
			require.Greater(t, time.Until(got.lk.Deadline()), 8*time.Second, "inherits the expiry")
			d, err := got.lk.TTL(ctx)
			require.NoError(t, err, "the successor owns the lock in Redis")
			require.Greater(t, d, 8*time.Second)
			if want < 3 {
				cnt.Reset()
				require.NoError(t, got.lk.Release(ctx))
				require.Zero(t, cnt.RoundTrips(), "an in-process hand-off makes no round trip")
			}
			prev = got.lk
		}
		wg.Wait()
		require.GreaterOrEqual(t, fence("nrt"), prev.Token(), "the tokens handed on were reserved in Redis")
		require.EqualValues(t, 3, l.Stats().LocalHandedOff)
		require.NoError(t, prev.Release(ctx))
		// Released for real: free for anyone.
		b, err := l.TryAcquire(ctx, "nrt", time.Second)
		require.NoError(t, err)
		require.Greater(t, b.Token(), prev.Token())
		require.NoError(t, b.Release(ctx))
	})

	t.Run("cap-then-keep", func(t *testing.T) {
		l, err := lock.New(db.NewClient(t), lock.WithPrefix(db.Prefix), lock.WithLocalHandoff(2))
		require.NoError(t, err)
		a, err := l.Acquire(ctx, "cap", 10*time.Second)
		require.NoError(t, err)
		ch, wg := startWaiters(t, l, "cap", 10*time.Second, []int{1, 2, 3, 4}, nil)
		toks := []uint64{a.Token()}
		prev := a
		for range 4 {
			require.NoError(t, prev.Release(ctx))
			prev = recv(t, ch).lk
			toks = append(toks, prev.Token())
		}
		wg.Wait()
		require.NoError(t, prev.Release(ctx))
		require.Equal(t, toks[0]+1, toks[1])
		require.Equal(t, toks[0]+2, toks[2])
		// The third hand-off went through Redis, which kept the lock (no
		// other process waits) under a new token past the reserved range.
		require.Greater(t, toks[3], toks[0]+2)
		require.Equal(t, toks[3]+1, toks[4])
		require.EqualValues(t, 3, l.Stats().LocalHandedOff)
		require.EqualValues(t, 1, l.Stats().HandedOff, "the kept one")
	})

	t.Run("fair-to-other-processes", func(t *testing.T) {
		a, err := lock.New(db.NewClient(t), lock.WithPrefix(db.Prefix), lock.WithLocalHandoff(2))
		require.NoError(t, err)
		b, err := lock.New(db.NewClient(t), lock.WithPrefix(db.Prefix))
		require.NoError(t, err)
		first, err := a.Acquire(ctx, "fair", 10*time.Second)
		require.NoError(t, err)
		chA, wgA := startWaiters(t, a, "fair", 10*time.Second, []int{1, 2, 3, 4}, nil)
		chB, wgB := startWaiters(t, b, "fair", 10*time.Second, []int{100}, func() bool {
			n, _ := db.Client.ZCard(ctx, db.Prefix+"{fair}:q").Result()
			return n == 1
		})
		// a: first -> 1 -> 2 (two local hand-offs), then b's waiter, which
		// queued in Redis long before 1 and 2 got the lock.
		require.NoError(t, first.Release(ctx))
		one := recv(t, chA)
		require.Equal(t, 1, one.i)
		require.NoError(t, one.lk.Release(ctx))
		two := recv(t, chA)
		require.Equal(t, 2, two.i)
		require.NoError(t, two.lk.Release(ctx))
		other := recv(t, chB)
		require.Equal(t, 100, other.i, "after the cap, another process's waiter gets the lock")
		require.Greater(t, other.lk.Token(), two.lk.Token())
		select {
		case x := <-chA:
			t.Fatalf("waiter %d got the lock while b holds it", x.i)
		case <-time.After(50 * time.Millisecond):
		}
		require.NoError(t, other.lk.Release(ctx))
		wgB.Wait()
		three := recv(t, chA)
		require.Equal(t, 3, three.i)
		require.Greater(t, three.lk.Token(), other.lk.Token())
		require.NoError(t, three.lk.Release(ctx))
		four := recv(t, chA)
		require.NoError(t, four.lk.Release(ctx))
		wgA.Wait()
	})

	t.Run("other-ttl-through-redis", func(t *testing.T) {
		l, err := lock.New(db.NewClient(t), lock.WithPrefix(db.Prefix))
		require.NoError(t, err)
		a, err := l.Acquire(ctx, "ttl", 10*time.Second)
		require.NoError(t, err)
		ch, wg := startWaiters(t, l, "ttl", 3*time.Second, []int{1}, nil)
		require.NoError(t, a.Release(ctx))
		got := recv(t, ch)
		wg.Wait()
		require.Greater(t, got.lk.Token(), a.Token()+uint64(lock.DefaultLocalHandoff), "a token from Redis, past a's reserved range")
		require.Zero(t, l.Stats().LocalHandedOff)
		d, err := got.lk.TTL(ctx)
		require.NoError(t, err)
		require.LessOrEqual(t, d, 3*time.Second, "its own ttl")
		require.NoError(t, got.lk.Release(ctx))
	})

	t.Run("near-expiry-through-redis", func(t *testing.T) {
		l, err := lock.New(db.NewClient(t), lock.WithPrefix(db.Prefix))
		require.NoError(t, err)
		a, err := l.Acquire(ctx, "near", time.Second)
		require.NoError(t, err)
		ch, wg := startWaiters(t, l, "near", time.Second, []int{1}, nil)
		time.Sleep(200 * time.Millisecond) // less than 90% of the validity left
		require.NoError(t, a.Release(ctx))
		got := recv(t, ch)
		wg.Wait()
		require.Greater(t, got.lk.Token(), a.Token()+uint64(lock.DefaultLocalHandoff), "kept through Redis: a new token")
		require.Greater(t, time.Until(got.lk.Deadline()), 900*time.Millisecond, "with a fresh expiry")
		require.NoError(t, got.lk.Release(ctx))
	})

	t.Run("holder-lost", func(t *testing.T) {
		l, err := lock.New(db.NewClient(t), lock.WithPrefix(db.Prefix))
		require.NoError(t, err)
		a, err := l.Acquire(ctx, "lost", 300*time.Millisecond)
		require.NoError(t, err)
		ch, wg := startWaiters(t, l, "lost", 300*time.Millisecond, []int{1, 2}, nil)
		// a never releases in time: the waiters go to Redis once it is lost.
		one := recv(t, ch)
		require.Equal(t, 1, one.i)
		require.Greater(t, one.lk.Token(), a.Token()+uint64(lock.DefaultLocalHandoff))
		<-a.Lost()
		require.ErrorIs(t, a.Release(ctx), lock.ErrLockLost, "a late release of the lost lock")
		_, err = one.lk.TTL(ctx)
		require.NoError(t, err, "and it did not touch the new holder's lock")
		require.NoError(t, one.lk.Release(ctx))
		two := recv(t, ch)
		require.Equal(t, 2, two.i)
		require.NoError(t, two.lk.Release(ctx))
		wg.Wait()
	})

	t.Run("waiter-gives-up", func(t *testing.T) {
		l, err := lock.New(db.NewClient(t), lock.WithPrefix(db.Prefix), lock.WithMaxWait(100*time.Millisecond))
		require.NoError(t, err)
		a, err := l.Acquire(ctx, "quit", 10*time.Second)
		require.NoError(t, err)
		_, err = l.Acquire(ctx, "quit", 10*time.Second)
		require.ErrorIs(t, err, lock.ErrNotAcquired, "max wait while queued in-process")
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		_, err = l.Acquire(cctx, "quit", 10*time.Second)
		cancel()
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.NoError(t, a.Release(ctx))
		other, err := lock.New(db.NewClient(t), lock.WithPrefix(db.Prefix))
		require.NoError(t, err)
		b, err := other.TryAcquire(ctx, "quit", time.Second)
		require.NoError(t, err, "released for real: no waiter was left to hand it to")
		require.NoError(t, b.Release(ctx))
	})

	t.Run("do-and-auto-refresh", func(t *testing.T) {
		l, err := lock.New(db.NewClient(t), lock.WithPrefix(db.Prefix), lock.WithAutoRefresh(true))
		require.NoError(t, err)
		var mu sync.Mutex
		var toks []uint64
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for range 5 {
					err := l.Do(ctx, "do", 300*time.Millisecond, func(ctx context.Context, token uint64) error {
						mu.Lock()
						toks = append(toks, token)
						mu.Unlock()
						time.Sleep(time.Millisecond)
						return ctx.Err()
					})
					if err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		require.Len(t, toks, 20)
		for i := 1; i < len(toks); i++ {
			require.Greater(t, toks[i], toks[i-1])
		}
		require.NotZero(t, l.Stats().LocalHandedOff)
	})
}
