package cache_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/cache"
)

// TestScriptBranches runs every branch of scripts/write.lua,
// scripts/release.lua and scripts/mark.lua by hand, on a single node and on a Cluster (the
// scripts' header comments list these cases). The key holds cur before the
// call (absent when ""); the call returns want and leaves after in the key.
func TestScriptBranches(t *testing.T) {
	const ours, theirs = 1001, 2002
	value := cache.MakeEnvelope(false, ours, "v")
	other := cache.MakeEnvelope(false, theirs, "w")
	lease := cache.MakeEnvelope(true, ours, "")
	theirLease := cache.MakeEnvelope(true, theirs, "")
	fresh := cache.MakeEnvelope(false, 3003, "new")
	marked, theirMarked := cache.MarkedLease(ours), cache.MarkedLease(theirs)
	cases := []struct {
		name      string
		script    *redis.Script
		cur       string
		args      []any // after the channel and message, which the test adds
		want      int64
		after     string // "" = absent
		published bool
	}{
		{name: "write/set over a value", script: cache.WriteScript, cur: value, args: []any{fresh, "60000", "set", cache.NonceArg(0)}, want: 1, after: fresh, published: true},
		// a load's write is announced only to replicas waiting for it
		{name: "write/fill absent", script: cache.WriteScript, args: []any{fresh, "60000", "fill", cache.NonceArg(0)}, want: 1, after: fresh},
		{name: "write/fill over a lease", script: cache.WriteScript, cur: theirLease, args: []any{fresh, "60000", "fill", cache.NonceArg(0)}, want: 1, after: fresh},
		{name: "write/fill over a marked lease", script: cache.WriteScript, cur: theirMarked, args: []any{fresh, "60000", "fill", cache.NonceArg(0)}, want: 1, after: fresh, published: true},
		{name: "write/fill over a value refused", script: cache.WriteScript, cur: value, args: []any{fresh, "60000", "fill", cache.NonceArg(0)}, want: 0, after: value},
		{name: "write/fill over a foreign value", script: cache.WriteScript, cur: "not an entry", args: []any{fresh, "60000", "fill", cache.NonceArg(0)}, want: 1, after: fresh},
		{name: "write/refresh over the expected value", script: cache.WriteScript, cur: value, args: []any{fresh, "60000", "refresh", cache.NonceArg(ours)}, want: 1, after: fresh, published: true},
		{name: "write/refresh over another value refused", script: cache.WriteScript, cur: other, args: []any{fresh, "60000", "refresh", cache.NonceArg(ours)}, want: 0, after: other},
		{name: "release/absent", script: cache.ReleaseScript, args: []any{cache.NonceArg(ours)}, want: 0},
		{name: "release/foreign value", script: cache.ReleaseScript, cur: "not an entry", args: []any{cache.NonceArg(ours)}, want: 0, after: "not an entry"},
		{name: "release/a value", script: cache.ReleaseScript, cur: value, args: []any{cache.NonceArg(ours)}, want: 0, after: value},
		{name: "release/another's lease", script: cache.ReleaseScript, cur: theirLease, args: []any{cache.NonceArg(ours)}, want: 0, after: theirLease},
		{name: "release/our lease", script: cache.ReleaseScript, cur: lease, args: []any{cache.NonceArg(ours)}, want: 1, published: true},
		{name: "release/our marked lease", script: cache.ReleaseScript, cur: marked, args: []any{cache.NonceArg(ours)}, want: 1, published: true},
		{name: "mark/absent", script: cache.MarkScript, args: []any{cache.NonceArg(ours)}, want: 0},
		{name: "mark/a value", script: cache.MarkScript, cur: value, args: []any{cache.NonceArg(ours)}, want: 0, after: value},
		{name: "mark/foreign value", script: cache.MarkScript, cur: "not an entry", args: []any{cache.NonceArg(ours)}, want: 0, after: "not an entry"},
		{name: "mark/another lease", script: cache.MarkScript, cur: theirLease, args: []any{cache.NonceArg(ours)}, want: 0, after: theirLease},
		{name: "mark/the lease", script: cache.MarkScript, cur: lease, args: []any{cache.NonceArg(ours)}, want: 1, after: marked},
		{name: "mark/marked twice", script: cache.MarkScript, cur: marked, args: []any{cache.NonceArg(ours)}, want: 1, after: marked},
	}
	for _, rb := range redisBackends {
		db := rb.mk(t)
		for i, tc := range cases {
			// A channel per case: on a Cluster a PUBLISH reaches the other
			// nodes over the cluster bus, so a late copy of an earlier case's
			// message would reach this case's subscription on another node.
			for _, channel := range []string{"", db.Prefix + "~chan" + strconv.Itoa(i)} {
				t.Run("deploy="+rb.name+"/"+tc.name+"/channel="+strconv.FormatBool(channel != ""), func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					defer cancel()
					key := db.Key("s" + strconv.Itoa(i) + strconv.FormatBool(channel != ""))
					if tc.cur != "" {
						require.NoError(t, db.Client.Set(ctx, key, tc.cur, time.Minute).Err())
					}
					var msgs <-chan *redis.Message
					// subscribed on the key's node, where the script publishes,
					// so the messages keep their order
					var sub redis.UniversalClient = db.Client
					if channel != "" {
						if cc, ok := db.Client.(*redis.ClusterClient); ok {
							node, err := cc.MasterForKey(ctx, key)
							require.NoError(t, err)
							sub = node
						}
						ps := sub.Subscribe(ctx, channel)
						defer ps.Close()
						_, err := ps.Receive(ctx)
						require.NoError(t, err)
						msgs = ps.Channel()
					}
					args := append(append([]any(nil), tc.args...), channel, "msg:"+tc.name)
					got, err := tc.script.Run(ctx, db.Client, []string{key}, args...).Int64()
					require.NoError(t, err)
					assert.Equal(t, tc.want, got, "reply")
					stored, err := db.Client.Get(ctx, key).Result()
					if tc.after == "" {
						assert.ErrorIs(t, err, redis.Nil, "key left: %q", stored)
					} else {
						require.NoError(t, err)
						assert.Equal(t, tc.after, stored, "stored value")
						ttl, err := db.Client.PTTL(ctx, key).Result()
						require.NoError(t, err)
						assert.Positive(t, ttl, "the key lost its TTL")
					}
					if channel != "" {
						// a marker published after the call on the same node: the
						// first message tells whether the script published
						require.NoError(t, sub.Publish(ctx, channel, "marker").Err())
						want := "marker"
						if tc.published {
							want = "msg:" + tc.name
						}
						select {
						case m := <-msgs:
							assert.Equal(t, want, m.Payload, "first message on the channel")
						case <-ctx.Done():
							t.Fatal("no message on the channel")
						}
					}
				})
			}
		}
	}
}
