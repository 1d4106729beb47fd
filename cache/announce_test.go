package cache_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/cache"
	"github.com/outrigger-dev/outrigger/internal/redistest"
)

// TestLoadAnnouncedOnlyToWaiters: the write of a loaded value is published
// on the invalidation channel only when another replica waited for the load
// (it marked the lease); a load no one waited for writes without a message.
// Each case publishes a marker after the load: the first message on the
// channel tells whether the load's write published one.
func TestLoadAnnouncedOnlyToWaiters(t *testing.T) {
	for _, waiter := range []bool{false, true} {
		t.Run("waiter="+boolStr(waiter), func(t *testing.T) {
			db := redistest.New(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			channel := db.Prefix + "~invalidate"
			ps := db.Client.Subscribe(ctx, channel)
			defer ps.Close()
			_, err := ps.Receive(ctx)
			require.NoError(t, err)
			msgs := ps.Channel()

			newReplica := func() *cache.Cache[string] {
				c, err := cache.New[string](cache.WithRedis(db.NewClient(t)), cache.WithPrefix(db.Prefix),
					cache.WithLocal(100, time.Minute), cache.WithLease(10*time.Second, 10*time.Second))
				require.NoError(t, err)
				t.Cleanup(func() { _ = c.Close() })
				return c
			}
			holder, other := newReplica(), newReplica()
			unblock := make(chan struct{})
			loaded := make(chan error, 1)
			go func() {
				_, err := holder.Fetch(ctx, "k", func(context.Context) (string, error) {
					<-unblock
					return "v", nil
				})
				loaded <- err
			}()
			// the holder's lease is in the key
			require.Eventually(t, func() bool {
				b, err := db.Client.Get(ctx, db.Key("k")).Bytes()
				return err == nil && len(b) >= 30 && b[1]&4 != 0
			}, 30*time.Second, time.Millisecond)
			waited := make(chan string, 1)
			if waiter {
				go func() {
					v, err := other.Fetch(ctx, "k", func(context.Context) (string, error) { return "second load", nil })
					if err != nil {
						v = err.Error()
					}
					waited <- v
				}()
				require.Eventually(t, func() bool {
					b, err := db.Client.Get(ctx, db.Key("k")).Bytes()
					return err == nil && len(b) >= 30 && b[1]&8 != 0
				}, 30*time.Second, time.Millisecond, "the waiting replica did not mark the lease")
			}
			close(unblock)
			require.NoError(t, <-loaded)
			if waiter {
				require.Equal(t, "v", <-waited)
			}
			require.NoError(t, db.Client.Publish(ctx, channel, "marker").Err())
			var first *redis.Message
			select {
			case first = <-msgs:
			case <-ctx.Done():
				t.Fatal("no message on the channel")
			}
			if waiter {
				require.True(t, strings.HasSuffix(first.Payload, "k"), "first message %q: the load's write was not announced", first.Payload)
			} else {
				require.Equal(t, "marker", first.Payload, "a load no one waited for was announced")
			}
		})
	}
}
