package cache_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/cache"
)

// TestLeaseWaitAnnounced: a replica waiting for another's load of a key
// (Fetch, then FetchMany) marks the lease watched, and the holder's write
// then announces the value on the invalidation channel, which wakes the
// waiter; a fill nobody waits for announces nothing. The messages are read
// on the keys' node with a marker published after each step, so that the
// first message tells what the step published.
func TestLeaseWaitAnnounced(t *testing.T) {
	for _, rb := range redisBackends {
		t.Run("deploy="+rb.name, func(t *testing.T) {
			leakCheck(t)
			db := rb.mk(t)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			newCache := func() *cache.Cache[string] {
				c, err := cache.New[string](cache.WithRedis(db.NewClient(t)), cache.WithPrefix(db.Prefix),
					cache.WithLease(10*time.Second, 10*time.Second))
				require.NoError(t, err)
				t.Cleanup(func() { _ = c.Close() })
				return c
			}
			holder, waiter := newCache(), newCache()

			// Every key of the test hashes to the slot of "k" ({k}).
			var sub redis.UniversalClient = db.Client
			if cc, ok := db.Client.(*redis.ClusterClient); ok {
				node, err := cc.MasterForKey(ctx, db.Key("{k}"))
				require.NoError(t, err)
				sub = node
			}
			channel := db.Prefix + "~invalidate"
			ps := sub.Subscribe(ctx, channel)
			defer ps.Close()
			_, err := ps.Receive(ctx)
			require.NoError(t, err)
			msgs := ps.Channel()
			// first publishes a marker and returns the first message since
			// the last call: the key it announces, or "" for the marker.
			first := func() string {
				t.Helper()
				require.NoError(t, sub.Publish(ctx, channel, "marker").Err())
				var got []string
				for {
					select {
					case m := <-msgs:
						if m.Payload == "marker" {
							if len(got) == 0 {
								return ""
							}
							return got[0]
						}
						if len(m.Payload) > 8 {
							got = append(got, m.Payload[8:]) // after the writer's origin id
						}
					case <-ctx.Done():
						t.Fatal("no marker on the channel")
						return ""
					}
				}
			}
			flags := func(key string) byte {
				b, err := db.Client.Get(ctx, db.Key(key)).Bytes()
				if err != nil || len(b) < 2 {
					return 0
				}
				return b[1]
			}
			const leaseFlag, watchedFlag = 4, 8

			// A fill nobody waits for announces nothing.
			v, err := holder.Fetch(ctx, "{k}solo", func(context.Context) (string, error) { return "solo", nil })
			require.NoError(t, err)
			require.Equal(t, "solo", v)
			assert.Empty(t, first(), "an unwatched fill was announced")

			cases := []struct {
				name string
				key  string
				wait func(key string) (string, error)
			}{
				{"Fetch", "{k}one", func(key string) (string, error) {
					return waiter.Fetch(ctx, key, func(context.Context) (string, error) { return "", assert.AnError })
				}},
				{"FetchMany", "{k}many", func(key string) (string, error) {
					m, err := waiter.FetchMany(ctx, []string{key}, func(context.Context, []string) (map[string]string, error) {
						return nil, assert.AnError
					})
					return m[key], err
				}},
			}
			for _, tc := range cases {
				release := make(chan struct{})
				held := make(chan error, 1)
				go func() {
					_, err := holder.Fetch(ctx, tc.key, func(context.Context) (string, error) {
						<-release
						return "value", nil
					})
					held <- err
				}()
				require.Eventually(t, func() bool { return flags(tc.key)&leaseFlag != 0 }, 20*time.Second, time.Millisecond,
					"%s: the holder took no lease", tc.name)
				var got atomic.Value
				waited := make(chan error, 1)
				go func() {
					v, err := tc.wait(tc.key)
					got.Store(v)
					waited <- err
				}()
				require.Eventually(t, func() bool { return flags(tc.key)&watchedFlag != 0 }, 20*time.Second, time.Millisecond,
					"%s: the waiter did not mark the lease watched", tc.name)
				close(release)
				require.NoError(t, <-held, tc.name)
				require.NoError(t, <-waited, "%s: the waiter loaded the key itself", tc.name)
				assert.Equal(t, "value", got.Load(), tc.name)
				assert.True(t, strings.HasSuffix(first(), tc.key), "%s: the watched fill was not announced", tc.name)
			}
		})
	}
}
