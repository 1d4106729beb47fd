package lock_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/lock"
)

// TestContract runs one table of behaviours against every backend: local,
// Redis (single node), Redis Cluster and Redlock over 3 servers.
func TestContract(t *testing.T) {
	leakCheck(t)
	ctx := context.Background()
	hooks := &hookLog{}
	cases := []struct {
		name string
		opts []lock.Option
		run  func(t *testing.T, l lock.Locker)
	}{
		{"try-acquire-excludes", nil, func(t *testing.T, l lock.Locker) {
			a, err := l.TryAcquire(ctx, "k", 5*time.Second)
			require.NoError(t, err)
			require.NotZero(t, a.Token())
			require.Equal(t, "k", a.Key())
			_, err = l.TryAcquire(ctx, "k", 5*time.Second)
			require.ErrorIs(t, err, lock.ErrNotAcquired)
			other, err := l.TryAcquire(ctx, "other", 5*time.Second)
			require.NoError(t, err, "a different key is independent")
			require.NoError(t, other.Release(ctx))
			require.NoError(t, a.Release(ctx))
			b, err := l.TryAcquire(ctx, "k", 5*time.Second)
			require.NoError(t, err)
			require.Greater(t, b.Token(), a.Token())
			require.NoError(t, b.Release(ctx))
		}},
		{"hooks", []lock.Option{lock.WithHooks(hooks.hooks())}, func(t *testing.T, l lock.Locker) {
			hooks.reset()
			a, err := l.TryAcquire(ctx, "k", 5*time.Second)
			require.NoError(t, err)
			_, err = l.TryAcquire(ctx, "k", 5*time.Second)
			require.ErrorIs(t, err, lock.ErrNotAcquired)
			require.NoError(t, a.Release(ctx))
			b, err := l.Acquire(ctx, "k", 100*time.Millisecond)
			require.NoError(t, err)
			select {
			case <-b.Lost():
			case <-time.After(10 * time.Second):
				t.Fatal("Lost did not close after the TTL")
			}
			got := hooks.snapshot()
			require.Len(t, got.acquires, 3, "OnAcquire calls")
			require.Equal(t, a.Token(), got.acquires[0].token)
			require.NoError(t, got.acquires[0].err)
			require.ErrorIs(t, got.acquires[1].err, lock.ErrNotAcquired)
			require.Zero(t, got.acquires[1].token)
			require.Equal(t, b.Token(), got.acquires[2].token)
			for _, a := range got.acquires {
				require.Equal(t, "k", a.key)
				require.Positive(t, a.wait)
			}
			require.Equal(t, []string{"k"}, got.released, "OnRelease calls")
			require.Len(t, got.lost, 1, "OnLost calls (the released lock is not lost)")
			require.ErrorIs(t, got.lost[0], lock.ErrLockLost)
		}},
		{"use-after-release", nil, func(t *testing.T, l lock.Locker) {
			a, err := l.TryAcquire(ctx, "k", 5*time.Second)
			require.NoError(t, err)
			require.NoError(t, a.Release(ctx))
			select {
			case <-a.Lost():
			default:
				t.Fatal("Lost not closed after Release")
			}
			require.ErrorIs(t, a.Release(ctx), lock.ErrReleased)
			require.ErrorIs(t, a.Release(ctx), lock.ErrLockLost)
			require.ErrorIs(t, a.Refresh(ctx, time.Second), lock.ErrLockLost)
			_, err = a.TTL(ctx)
			require.ErrorIs(t, err, lock.ErrLockLost)
		}},
		{"ttl-and-refresh", nil, func(t *testing.T, l lock.Locker) {
			a, err := l.TryAcquire(ctx, "k", 300*time.Millisecond)
			require.NoError(t, err)
			d, err := a.TTL(ctx)
			require.NoError(t, err)
			require.True(t, d > 0 && d <= 300*time.Millisecond, "TTL %v", d)
			require.NoError(t, a.Refresh(ctx, 10*time.Second))
			d, err = a.TTL(ctx)
			require.NoError(t, err)
			require.Greater(t, d, 5*time.Second)
			require.True(t, a.Deadline().After(time.Now().Add(5*time.Second)))
			require.NoError(t, a.Release(ctx))
		}},
		{"expiry-loses-lock", nil, func(t *testing.T, l lock.Locker) {
			a, err := l.TryAcquire(ctx, "k", 100*time.Millisecond)
			require.NoError(t, err)
			select {
			case <-a.Lost():
			case <-time.After(10 * time.Second):
				t.Fatal("Lost did not close after the TTL")
			}
			var b *lock.Lock
			require.Eventually(t, func() bool {
				b, err = l.TryAcquire(ctx, "k", 5*time.Second)
				return err == nil
			}, 10*time.Second, 5*time.Millisecond)
			require.Greater(t, b.Token(), a.Token())
			require.ErrorIs(t, a.Refresh(ctx, time.Second), lock.ErrLockLost)
			require.ErrorIs(t, a.Release(ctx), lock.ErrLockLost)
			_, err = b.TTL(ctx)
			require.NoError(t, err, "the old holder's release must not touch the new lock")
			require.NoError(t, b.Release(ctx))
		}},
		{"lost-asked-late", nil, func(t *testing.T, l lock.Locker) {
			a, err := l.TryAcquire(ctx, "k", 50*time.Millisecond)
			require.NoError(t, err)
			require.Eventually(t, func() bool { return time.Now().After(a.Deadline()) }, 10*time.Second, time.Millisecond)
			select {
			case <-a.Lost():
			default:
				t.Fatal("Lost asked for after the deadline is not closed")
			}
			require.ErrorIs(t, a.Refresh(ctx, time.Second), lock.ErrLockLost, "a refresh after the deadline does not count")
		}},
		{"acquire-waits-for-release", nil, func(t *testing.T, l lock.Locker) {
			a, err := l.Acquire(ctx, "k", 10*time.Second)
			require.NoError(t, err)
			got := make(chan *lock.Lock, 1)
			errc := make(chan error, 1)
			go func() {
				b, err := l.Acquire(ctx, "k", 10*time.Second)
				errc <- err
				got <- b
			}()
			select {
			case <-errc:
				t.Fatal("Acquire returned while the lock was held")
			case <-time.After(50 * time.Millisecond):
			}
			require.NoError(t, a.Release(ctx))
			require.NoError(t, <-errc)
			b := <-got
			require.Greater(t, b.Token(), a.Token())
			_, err = l.TryAcquire(ctx, "k", time.Second)
			require.ErrorIs(t, err, lock.ErrNotAcquired, "the waiter holds it")
			require.NoError(t, b.Release(ctx))
		}},
		{"acquire-after-holder-vanished", nil, func(t *testing.T, l lock.Locker) {
			a, err := l.TryAcquire(ctx, "k", 200*time.Millisecond)
			require.NoError(t, err)
			b, err := l.Acquire(ctx, "k", 5*time.Second) // a never releases
			require.NoError(t, err)
			require.Greater(t, b.Token(), a.Token())
			require.NoError(t, b.Release(ctx))
		}},
		{"acquire-ctx-done", nil, func(t *testing.T, l lock.Locker) {
			a, err := l.TryAcquire(ctx, "k", 10*time.Second)
			require.NoError(t, err)
			cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			_, err = l.Acquire(cctx, "k", time.Second)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			c2, cancel2 := context.WithCancel(ctx)
			cancel2()
			_, err = l.Acquire(c2, "k", time.Second)
			require.ErrorIs(t, err, context.Canceled)
			require.NoError(t, a.Release(ctx))
			b, err := l.TryAcquire(ctx, "k", time.Second)
			require.NoError(t, err, "a waiter that gave up must not strand the lock")
			require.NoError(t, b.Release(ctx))
		}},
		{"max-wait", []lock.Option{lock.WithMaxWait(150 * time.Millisecond)}, func(t *testing.T, l lock.Locker) {
			a, err := l.TryAcquire(ctx, "k", 10*time.Second)
			require.NoError(t, err)
			_, err = l.Acquire(ctx, "k", time.Second)
			require.ErrorIs(t, err, lock.ErrNotAcquired)
			require.NoError(t, a.Release(ctx))
			b, err := l.TryAcquire(ctx, "k", time.Second)
			require.NoError(t, err)
			require.NoError(t, b.Release(ctx))
		}},
		{"do-runs-and-releases", nil, func(t *testing.T, l lock.Locker) {
			var seen uint64
			err := l.Do(ctx, "k", 5*time.Second, func(ctx context.Context, token uint64) error {
				seen = token
				_, err := l.TryAcquire(ctx, "k", time.Second)
				require.ErrorIs(t, err, lock.ErrNotAcquired)
				return nil
			})
			require.NoError(t, err)
			require.NotZero(t, seen)
			b, err := l.TryAcquire(ctx, "k", time.Second)
			require.NoError(t, err, "Do released the lock")
			require.Greater(t, b.Token(), seen)
			require.NoError(t, b.Release(ctx))
		}},
		{"do-returns-fn-error-and-panic", nil, func(t *testing.T, l lock.Locker) {
			boom := errors.New("boom")
			err := l.Do(ctx, "k", 5*time.Second, func(context.Context, uint64) error { return boom })
			require.ErrorIs(t, err, boom)
			err = l.Do(ctx, "k", 5*time.Second, func(context.Context, uint64) error { panic("kaput") })
			require.ErrorContains(t, err, "kaput")
			b, err := l.TryAcquire(ctx, "k", time.Second)
			require.NoError(t, err, "released after the panic")
			require.NoError(t, b.Release(ctx))
			require.Error(t, l.Do(ctx, "k", time.Second, nil))
		}},
		{"do-refreshes-past-ttl", nil, func(t *testing.T, l lock.Locker) {
			// Generous TTL: a refresh must complete within ~2/3 of it even on
			// a loaded machine: 1 s TTL, held for over 2 TTLs: each refresh has ~660 ms to
			// land, which a loaded machine under -race still gives it
			err := l.Do(ctx, "k", time.Second, func(fctx context.Context, _ uint64) error {
				deadline := time.Now().Add(2300 * time.Millisecond)
				for time.Now().Before(deadline) {
					if fctx.Err() != nil {
						return fctx.Err()
					}
					if _, err := l.TryAcquire(ctx, "k", time.Second); !errors.Is(err, lock.ErrNotAcquired) {
						return errors.New("lock not held while fn runs")
					}
					time.Sleep(20 * time.Millisecond)
				}
				return nil
			})
			require.NoError(t, err)
		}},
		{"do-max-hold-cancels", []lock.Option{lock.WithMaxHold(time.Second)}, func(t *testing.T, l lock.Locker) {
			start := time.Now()
			err := l.Do(ctx, "k", 400*time.Millisecond, func(fctx context.Context, _ uint64) error {
				select {
				case <-fctx.Done():
					require.ErrorIs(t, context.Cause(fctx), lock.ErrLockLost)
					return nil
				case <-time.After(20 * time.Second):
					return errors.New("fn's context was not cancelled")
				}
			})
			require.ErrorIs(t, err, lock.ErrLockLost)
			require.GreaterOrEqual(t, time.Since(start), 500*time.Millisecond, "refreshed past the first TTL")
			require.Less(t, time.Since(start), 15*time.Second, "stopped refreshing at MaxHold")
		}},
		{"do-parent-cancel", nil, func(t *testing.T, l lock.Locker) {
			cctx, cancel := context.WithCancel(ctx)
			err := l.Do(cctx, "k", 5*time.Second, func(fctx context.Context, _ uint64) error {
				cancel()
				<-fctx.Done()
				return fctx.Err()
			})
			require.ErrorIs(t, err, context.Canceled)
			b, err := l.TryAcquire(ctx, "k", time.Second)
			require.NoError(t, err, "released although the parent context was done")
			require.NoError(t, b.Release(ctx))
		}},
		{"auto-refresh", []lock.Option{lock.WithAutoRefresh(true)}, func(t *testing.T, l lock.Locker) {
			// A TTL roomy enough that a refresh delayed by a loaded machine
			// (every ttl/3) still lands before the loss deadline.
			a, err := l.TryAcquire(ctx, "k", time.Second)
			require.NoError(t, err)
			time.Sleep(3100 * time.Millisecond) // more than 3 TTLs: must still be held
			select {
			case <-a.Lost():
				t.Fatal("auto-refreshed lock lost")
			default:
			}
			_, err = l.TryAcquire(ctx, "k", time.Second)
			require.ErrorIs(t, err, lock.ErrNotAcquired)
			require.NoError(t, a.Release(ctx))
		}},
		{"validation", nil, func(t *testing.T, l lock.Locker) {
			_, err := l.TryAcquire(ctx, "", time.Second)
			require.ErrorContains(t, err, "key")
			_, err = l.Acquire(ctx, "k", 0)
			require.ErrorContains(t, err, "ttl")
			_, err = l.Acquire(ctx, "k", 500*time.Microsecond)
			require.ErrorContains(t, err, "ttl")
			require.ErrorContains(t, l.Do(ctx, "", time.Second, func(context.Context, uint64) error { return nil }), "key")
			a, err := l.TryAcquire(ctx, "k", time.Second)
			require.NoError(t, err)
			require.ErrorContains(t, a.Refresh(ctx, -time.Second), "ttl")
			require.NoError(t, a.Release(ctx))
		}},
		{"mutual-exclusion", nil, func(t *testing.T, l lock.Locker) {
			var inside, overlaps, done atomic.Int64
			var last atomic.Uint64
			var wg sync.WaitGroup
			for range 6 {
				wg.Go(func() {
					for range 8 {
						err := l.Do(ctx, "k", 5*time.Second, func(_ context.Context, token uint64) error {
							if inside.Add(1) != 1 {
								overlaps.Add(1)
							}
							if prev := last.Swap(token); prev >= token {
								overlaps.Add(1)
							}
							time.Sleep(time.Millisecond)
							inside.Add(-1)
							return nil
						})
						if err != nil {
							t.Errorf("Do: %v", err)
							return
						}
						done.Add(1)
					}
				})
			}
			wg.Wait()
			require.Zero(t, overlaps.Load())
			require.EqualValues(t, 48, done.Load())
		}},
	}
	for _, b := range backends(t) {
		t.Run("backend="+b.name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					c.run(t, b.mk(t, c.opts...))
				})
			}
		})
	}
}

// hookLog records lock.Hooks calls.
type hookLog struct {
	mu       sync.Mutex
	acquires []acquireCall
	released []string
	lost     []error
}

type acquireCall struct {
	key   string
	wait  time.Duration
	token uint64
	err   error
}

func (h *hookLog) hooks() lock.Hooks {
	return lock.Hooks{
		OnAcquire: func(key string, wait time.Duration, token uint64, err error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.acquires = append(h.acquires, acquireCall{key, wait, token, err})
		},
		OnRelease: func(key string, held time.Duration) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.released = append(h.released, key)
		},
		OnLost: func(key string, cause error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.lost = append(h.lost, cause)
		},
	}
}

func (h *hookLog) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.acquires, h.released, h.lost = nil, nil, nil
}

func (h *hookLog) snapshot() hookLog {
	h.mu.Lock()
	defer h.mu.Unlock()
	return hookLog{acquires: append([]acquireCall(nil), h.acquires...), released: append([]string(nil), h.released...), lost: append([]error(nil), h.lost...)}
}
