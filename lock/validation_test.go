package lock_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/lock"
)

// TestValidation: constructors and options reject bad input with an error
// naming the argument, and never panic.
func TestValidation(t *testing.T) {
	leakCheck(t)
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	t.Cleanup(func() { _ = c.Close() })
	var nilClient *redis.Client
	cases := []struct {
		name string
		err  func() error
		want string
	}{
		{"New(nil)", func() error { _, err := lock.New(nil); return err }, "client"},
		{"New(typed nil)", func() error { _, err := lock.New(nilClient); return err }, "client"},
		{"NewRedlock(nil)", func() error { _, err := lock.NewRedlock(nil); return err }, "clients"},
		{"NewRedlock([]{nil})", func() error {
			_, err := lock.NewRedlock([]redis.UniversalClient{c, nil})
			return err
		}, "clients[1]"},
		{"NewFence(nil)", func() error { _, err := lock.NewFence(nil, "p"); return err }, "client"},
		{"NewStoreFence(nil)", func() error { _, err := lock.NewStoreFence(nil); return err }, "store"},
		{"WithBackoff(0)", func() error { _, err := lock.New(c, lock.WithBackoff(0, time.Second)); return err }, "WithBackoff min"},
		{"WithBackoff(max<min)", func() error {
			_, err := lock.New(c, lock.WithBackoff(time.Second, time.Millisecond))
			return err
		}, "WithBackoff max"},
		{"WithMaxWait(-1)", func() error { _, err := lock.New(c, lock.WithMaxWait(-1)); return err }, "WithMaxWait"},
		{"WithMaxHold(-1)", func() error { _, err := lock.New(c, lock.WithMaxHold(-1)); return err }, "WithMaxHold"},
		{"WithDrift(0.5)", func() error { _, err := lock.New(c, lock.WithDrift(0.5)); return err }, "WithDrift"},
		{"WithDrift(-0.1)", func() error { _, err := lock.NewRedlock([]redis.UniversalClient{c}, lock.WithDrift(-0.1)); return err }, "WithDrift"},
		{"WithMargin(-1)", func() error { _, err := lock.New(c, lock.WithMargin(-1)); return err }, "WithMargin"},
		{"WithWaitReplicas(-1)", func() error { _, err := lock.New(c, lock.WithWaitReplicas(-1, time.Second)); return err }, "WithWaitReplicas n"},
		{"WithWaitReplicas(1, 0)", func() error { _, err := lock.New(c, lock.WithWaitReplicas(1, 0)); return err }, "WithWaitReplicas timeout"},
		{"WithNodeTimeout(0)", func() error {
			_, err := lock.NewRedlock([]redis.UniversalClient{c}, lock.WithNodeTimeout(0))
			return err
		}, "WithNodeTimeout"},
		{"ValidateOptions", func() error { return lock.ValidateOptions(lock.WithMaxWait(-time.Second)) }, "WithMaxWait"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.err()
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.Contains(t, err.Error(), "lock: ")
		})
	}
	// Valid options are accepted, and NewLocal never fails.
	_, err := lock.New(c, lock.WithPrefix("p:"), lock.WithBackoff(time.Millisecond, time.Second),
		lock.WithMaxWait(time.Second), lock.WithAutoRefresh(true), lock.WithMaxHold(time.Minute),
		lock.WithDrift(0.02), lock.WithMargin(time.Millisecond), lock.WithWaitReplicas(1, time.Second),
		lock.WithHandoff(false), lock.WithNodeTimeout(time.Second), lock.WithLogger(nil), nil)
	require.NoError(t, err)
	require.NotNil(t, lock.NewLocal(lock.WithMaxWait(-1)))
	// Argument validation on a Locker that would fail to dial: no network.
	l, err := lock.New(c)
	require.NoError(t, err)
	ctx := context.Background()
	for _, ttl := range []time.Duration{0, -time.Second, 999 * time.Microsecond} {
		_, err = l.TryAcquire(ctx, "k", ttl)
		require.ErrorContains(t, err, "ttl must be >= 1ms")
	}
	_, err = l.Acquire(ctx, "", time.Second)
	require.ErrorContains(t, err, "key must not be empty")
	require.ErrorContains(t, l.Do(ctx, "k", time.Second, nil), "fn must not be nil")
	// The zero Lock holds nothing and does not panic.
	var zero lock.Lock
	require.ErrorIs(t, zero.Release(ctx), lock.ErrLockLost)
	require.ErrorIs(t, zero.Refresh(ctx, time.Second), lock.ErrLockLost)
	_, err = zero.TTL(ctx)
	require.ErrorIs(t, err, lock.ErrLockLost)
}
