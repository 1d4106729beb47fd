package lock_test

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/lock"
)

// TestInspectorForceRelease: real holders and waiters on a single node and
// a Cluster; the inspector lists them, and a force release is fenced: the
// holder's writes are refused at once, it sees ErrLockLost, and the waiter
// gets the lock with a newer token.
func TestInspectorForceRelease(t *testing.T) {
	for _, mk := range []func(testing.TB) *redistest.DB{redistest.New, redistest.NewCluster} {
		db := mk(t)
		name := "single"
		if db.Cluster {
			name = "cluster"
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			prefix := db.Prefix + "locks:"
			holder, err := lock.New(db.NewClient(t), lock.WithPrefix(prefix))
			require.NoError(t, err)
			waiter, err := lock.New(db.NewClient(t), lock.WithPrefix(prefix))
			require.NoError(t, err)
			fence, err := lock.NewFence(db.Client, db.Prefix+"fence:")
			require.NoError(t, err)

			other, err := holder.TryAcquire(ctx, "other", time.Minute)
			require.NoError(t, err)
			defer func() { _ = other.Release(context.Background()) }()

			var holderToken atomic.Uint64
			writeErr := make(chan error, 1)
			doErr := make(chan error, 1)
			go func() {
				doErr <- holder.Do(ctx, "report", 3*time.Second, func(ctx context.Context, token uint64) error {
					holderToken.Store(token)
					for {
						if err := fence.Set(context.WithoutCancel(ctx), "report", token, "holder"); err != nil {
							select {
							case writeErr <- err:
							default:
							}
							<-ctx.Done()
							return context.Cause(ctx)
						}
						select {
						case <-ctx.Done():
							return context.Cause(ctx)
						case <-time.After(10 * time.Millisecond):
						}
					}
				})
			}()
			require.Eventually(t, func() bool { return holderToken.Load() > 0 }, 10*time.Second, time.Millisecond)
			waiterLock := make(chan *lock.Lock, 1)
			go func() {
				l, err := waiter.Acquire(ctx, "report", time.Minute)
				if err == nil {
					waiterLock <- l
				}
				close(waiterLock)
			}()

			in, err := lock.NewInspector(db.Client, lock.WithPrefix(prefix))
			require.NoError(t, err)
			require.Eventually(t, func() bool {
				li, ok, err := in.Lock(ctx, "report")
				return err == nil && ok && li.Waiters == 1
			}, 10*time.Second, 5*time.Millisecond, "the waiter did not queue")
			locks, err := in.Locks(ctx)
			require.NoError(t, err)
			require.Len(t, locks, 2)
			assert.Equal(t, "other", locks[0].Key)
			r := locks[1]
			assert.Equal(t, "report", r.Key)
			// the last token issued: the holder's, or one it reserved for
			// in-process successors (WithLocalHandoff)
			assert.GreaterOrEqual(t, r.Token, holderToken.Load())
			assert.LessOrEqual(t, r.Token, holderToken.Load()+lock.DefaultLocalHandoff)
			assert.Equal(t, os.Getpid(), r.PID)
			assert.NotEmpty(t, r.Host)
			assert.Greater(t, r.TTL, time.Duration(0))
			assert.LessOrEqual(t, r.TTL, 3*time.Second)
			ws, err := in.Waiters(ctx, "report")
			require.NoError(t, err)
			require.Len(t, ws, 1)
			assert.Equal(t, os.Getpid(), ws[0].PID)
			assert.WithinDuration(t, time.Now(), ws[0].Since, time.Minute)

			_, err = in.ForceRelease(ctx, "report", lock.ExpectOwner("somebody-else"))
			assert.ErrorIs(t, err, lock.ErrNotHeld)
			_, err = in.ForceRelease(ctx, "nothing")
			assert.ErrorIs(t, err, lock.ErrNotHeld)

			rv, err := in.ForceRelease(ctx, "report", lock.ExpectOwner(r.Owner), lock.AdvanceFence(fence, "report"))
			require.NoError(t, err)
			assert.Equal(t, r.Owner, rv.Owner)
			assert.Greater(t, rv.Token, holderToken.Load())

			// The holder's next write is refused, and it loses the lock.
			select {
			case err := <-writeErr:
				assert.ErrorIs(t, err, lock.ErrStaleToken)
			case <-ctx.Done():
				t.Fatal("the holder's writes were not refused")
			}
			select {
			case err := <-doErr:
				assert.ErrorIs(t, err, lock.ErrLockLost)
			case <-ctx.Done():
				t.Fatal("the holder did not see the lock lost")
			}
			// The waiter got it, with a newer token that the fence takes.
			var wl *lock.Lock
			select {
			case wl = <-waiterLock:
			case <-ctx.Done():
			}
			require.NotNil(t, wl, "the waiter did not get the lock")
			assert.Greater(t, wl.Token(), rv.Token)
			require.NoError(t, fence.Set(ctx, "report", wl.Token(), "waiter"))
			err = fence.Set(ctx, "report", holderToken.Load(), "holder")
			assert.True(t, errors.Is(err, lock.ErrStaleToken))
			li, ok, err := in.Lock(ctx, "report")
			require.NoError(t, err)
			require.True(t, ok)
			assert.NotEqual(t, r.Owner, li.Owner)
			assert.Zero(t, li.Waiters)
			require.NoError(t, wl.Release(ctx))
			_, ok, err = in.Lock(ctx, "report")
			require.NoError(t, err)
			assert.False(t, ok)
		})
	}
}

func TestInspectorArguments(t *testing.T) {
	_, err := lock.NewInspector(nil)
	require.Error(t, err)
	db := redistest.New(t)
	in, err := lock.NewInspector(db.Client, lock.WithPrefix(db.Prefix))
	require.NoError(t, err)
	_, _, err = in.Lock(t.Context(), "")
	assert.Error(t, err)
	_, err = in.ForceRelease(t.Context(), "")
	assert.Error(t, err)
	locks, err := in.Locks(t.Context())
	require.NoError(t, err)
	assert.Empty(t, locks)
}
