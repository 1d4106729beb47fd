package lock_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/lock"
)

// scriptEnv is one branch test's view of a lock's keys.
type scriptEnv struct {
	redistest.Peek
	t    *testing.T
	ctx  context.Context
	c    redis.UniversalClient
	pre  string
	keys []string // lock, fence, queue, queue info, wake prefix
}

func (e *scriptEnv) lockKey() string  { return e.keys[0] }
func (e *scriptEnv) fenceKey() string { return e.keys[1] }
func (e *scriptEnv) wake(owner string) string {
	return e.keys[4] + owner
}

// waiter queues owner with an entry deadline, a ttl and (reserve > 0) the
// tokens it reserves; reserve 0 writes the older "deadline|ttl" format.
func (e *scriptEnv) waiter(owner string, score float64, deadline time.Time, ttl time.Duration, reserve int) {
	e.t.Helper()
	info := strconv.FormatInt(deadline.UnixMicro(), 10) + "|" + strconv.FormatInt(ttl.Milliseconds(), 10)
	if reserve > 0 {
		info += "|" + strconv.Itoa(reserve)
	}
	require.NoError(e.t, e.c.ZAdd(e.ctx, e.keys[2], redis.Z{Score: score, Member: owner}).Err())
	require.NoError(e.t, e.c.HSet(e.ctx, e.keys[3], owner, info).Err())
}

// queued returns the queue's members, oldest first.
func (e *scriptEnv) queued() []string { return e.ZRange(e.keys[2]) }

func (e *scriptEnv) wakeMsgs(owner string) []string { return e.LRange(e.wake(owner)) }

func (e *scriptEnv) fence() uint64 {
	e.t.Helper()
	v := e.Get(e.fenceKey())
	if v == "" {
		return 0
	}
	n, err := strconv.ParseUint(v, 10, 64)
	require.NoError(e.t, err)
	return n
}

// grantTo checks that owner holds the lock with a grant pushed to its wake
// list, and returns the granted token.
func (e *scriptEnv) grantTo(owner string) uint64 {
	e.t.Helper()
	require.Equal(e.t, owner, e.Get(e.lockKey()), "the lock is granted to %s", owner)
	msgs := e.wakeMsgs(owner)
	require.Len(e.t, msgs, 1, "%s's wake list", owner)
	parts := strings.Split(msgs[0], "|")
	require.Len(e.t, parts, 3, "grant %q", msgs[0])
	require.Equal(e.t, "g", parts[0])
	tok, err := strconv.ParseUint(parts[1], 10, 64)
	require.NoError(e.t, err)
	return tok
}

func ints(t *testing.T, v any) []int64 {
	t.Helper()
	arr, ok := v.([]any)
	require.Truef(t, ok, "reply %v (%T), want an array", v, v)
	out := make([]int64, len(arr))
	for i, x := range arr {
		n, ok := x.(int64)
		require.Truef(t, ok, "reply[%d] %v (%T), want an integer", i, x, x)
		out[i] = n
	}
	return out
}

// highToken is a fencing counter far ahead of Redis TIME in µs.
const highToken = 5_000_000_000_000_000

// TestScriptBranches runs every branch of the lock's scripts (acquire.lua,
// release.lua, refresh.lua, pttl.lua, cancel.lua, fence.lua, and the
// helpers of common.lua they include) by hand, on a single node and on a
// Cluster, and checks the reply and the keys each leaves behind. A branch
// that does not run (a typo, an undefined global) fails here. The scripts'
// header comments name these subtests.
func TestScriptBranches(t *testing.T) {
	now := func() int64 { return time.Now().UnixMicro() }
	live := func() time.Time { return time.Now().Add(time.Minute) }
	cases := []struct {
		name   string
		script string
		setup  func(e *scriptEnv)
		args   []any
		check  func(e *scriptEnv, reply any)
	}{
		// acquire.lua
		{name: "acquire/free", script: "acquire", args: []any{"me", 10000, 0, 0},
			check: func(e *scriptEnv, v any) {
				r := ints(e.t, v)
				require.Len(e.t, r, 3)
				assert.EqualValues(e.t, 1, r[0])
				assert.GreaterOrEqual(e.t, r[1], r[2], "token >= Redis TIME")
				assert.Equal(e.t, "me", e.Get(e.lockKey()))
				assert.Greater(e.t, e.PTTL(e.lockKey()), 5*time.Second)
				assert.EqualValues(e.t, r[1], e.fence(), "counter = token")
			}},
		{name: "acquire/free/counter-ahead", script: "acquire", args: []any{"me", 10000, 0, 0},
			setup: func(e *scriptEnv) { e.Do("SET", e.fenceKey(), highToken) },
			check: func(e *scriptEnv, v any) {
				r := ints(e.t, v)
				assert.EqualValues(e.t, []int64{1, highToken + 1, r[2]}, r)
			}},
		{name: "acquire/free/reserve", script: "acquire", args: []any{"me", 10000, 0, 0, 5},
			check: func(e *scriptEnv, v any) {
				r := ints(e.t, v)
				assert.EqualValues(e.t, 1, r[0])
				assert.EqualValues(e.t, r[1]+4, e.fence(), "counter = token + reserve - 1")
			}},
		{name: "acquire/ours-again", script: "acquire", args: []any{"me", 10000, 0, 0},
			setup: func(e *scriptEnv) {
				e.Do("SET", e.lockKey(), "me", "PX", 1000)
				e.Do("SET", e.fenceKey(), highToken)
			},
			check: func(e *scriptEnv, v any) {
				r := ints(e.t, v)
				assert.EqualValues(e.t, []int64{1, highToken + 1, r[2]}, r, "a new token")
				assert.Greater(e.t, e.PTTL(e.lockKey()), 5*time.Second, "extended to ttl")
			}},
		{name: "acquire/free/was-queued", script: "acquire", args: []any{"me", 10000, 1000, 1},
			setup: func(e *scriptEnv) { e.waiter("me", 1, live(), 10*time.Second, 1) },
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 1, ints(e.t, v)[0])
				assert.Empty(e.t, e.queued(), "left the queue")
				n, err := e.c.HLen(e.ctx, e.keys[3]).Result()
				require.NoError(e.t, err)
				assert.Zero(e.t, n)
			}},
		{name: "acquire/held/queue", script: "acquire", args: []any{"me", 10000, 2000, 0},
			setup: func(e *scriptEnv) { e.Do("SET", e.lockKey(), "other", "PX", 5000) },
			check: func(e *scriptEnv, v any) {
				r := ints(e.t, v)
				assert.EqualValues(e.t, 0, r[0])
				assert.True(e.t, r[1] > 0 && r[1] <= 5000, "holder's pttl %d", r[1])
				assert.Equal(e.t, []string{"me"}, e.queued())
				info, err := e.c.HGet(e.ctx, e.keys[3], "me").Result()
				require.NoError(e.t, err)
				parts := strings.Split(info, "|")
				require.Len(e.t, parts, 3, "info %q", info)
				dl, _ := strconv.ParseInt(parts[0], 10, 64)
				assert.InDelta(e.t, float64(r[2]+2_000_000), float64(dl), 1, "entry deadline = now + life")
				assert.Equal(e.t, []string{"10000", "1"}, parts[1:])
				assert.Greater(e.t, e.PTTL(e.keys[2]), 10*time.Second, "queue expiry")
				assert.Greater(e.t, e.PTTL(e.keys[3]), 10*time.Second, "queue info expiry")
			}},
		{name: "acquire/held/try", script: "acquire", args: []any{"me", 10000, 0, 0},
			setup: func(e *scriptEnv) { e.Do("SET", e.lockKey(), "other", "PX", 5000) },
			check: func(e *scriptEnv, v any) {
				r := ints(e.t, v)
				assert.EqualValues(e.t, 0, r[0])
				assert.Empty(e.t, e.queued(), "a try does not queue")
				assert.Equal(e.t, "other", e.Get(e.lockKey()))
			}},

		// release.lua (and common.lua's bump, next_token, handoff, free)
		{name: "release/fast", script: "release", args: []any{"me", 0, "1"},
			setup: func(e *scriptEnv) { e.Do("SET", e.lockKey(), "me", "PX", 5000) },
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 1, v)
				assert.Empty(e.t, e.Get(e.lockKey()))
				assert.Equal(e.t, "1", e.Get(e.wake("me")+":rel"), "tombstone")
			}},
		{name: "release/slow/bump", script: "release", args: []any{"me", strconv.Itoa(highToken), "0"},
			setup: func(e *scriptEnv) { e.Do("SET", e.lockKey(), "me", "PX", 5000) },
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 1, v)
				assert.Empty(e.t, e.Get(e.lockKey()))
				assert.EqualValues(e.t, highToken, e.fence(), "counter raised to our token")
				assert.Equal(e.t, "1", e.Get(e.wake("me")+":rel"), "tombstone")
			}},
		{name: "release/slow/bump-lower", script: "release", args: []any{"me", "7", "1"},
			setup: func(e *scriptEnv) {
				e.Do("SET", e.lockKey(), "me", "PX", 5000)
				e.Do("SET", e.fenceKey(), highToken)
			},
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 1, v)
				assert.EqualValues(e.t, highToken, e.fence(), "a lower token leaves the counter")
			}},
		{name: "release/grant", script: "release", args: []any{"me", 0, "1"},
			setup: func(e *scriptEnv) {
				e.Do("SET", e.lockKey(), "me", "PX", 5000)
				e.waiter("w1", 1, live(), 7*time.Second, 1)
				e.waiter("w2", 2, live(), 7*time.Second, 1)
			},
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 1, v)
				tok := e.grantTo("w1")
				assert.Equal(e.t, tok, e.fence())
				assert.InDelta(e.t, 7000, e.PTTL(e.lockKey()).Milliseconds(), 1000, "the waiter's ttl")
				assert.Equal(e.t, []string{"w2"}, e.queued(), "the next one still waits")
				assert.Equal(e.t, "1", e.Get(e.wake("me")+":rel"), "tombstone")
			}},
		{name: "release/grant/dead-waiter-skipped", script: "release", args: []any{"me", 0, "1"},
			setup: func(e *scriptEnv) {
				e.Do("SET", e.lockKey(), "me", "PX", 5000)
				e.waiter("dead", 1, time.Now().Add(-time.Second), 7*time.Second, 1)
				e.waiter("w", 2, live(), 7*time.Second, 1)
			},
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 1, v)
				e.grantTo("w")
				assert.Empty(e.t, e.wakeMsgs("dead"))
				assert.Empty(e.t, e.queued())
			}},
		{name: "release/grant/own-entry-skipped", script: "release", args: []any{"me", 0, "1"},
			setup: func(e *scriptEnv) {
				e.Do("SET", e.lockKey(), "me", "PX", 5000)
				e.waiter("me", 1, live(), 7*time.Second, 1)
				e.waiter("w", 2, live(), 7*time.Second, 1)
			},
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 1, v)
				e.grantTo("w")
			}},
		{name: "release/grant/entry-without-info-skipped", script: "release", args: []any{"me", 0, "1"},
			setup: func(e *scriptEnv) {
				e.Do("SET", e.lockKey(), "me", "PX", 5000)
				e.Do("ZADD", e.keys[2], 1, "ghost")
			},
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 1, v)
				assert.Empty(e.t, e.Get(e.lockKey()), "nobody to hand it to: deleted")
				assert.Empty(e.t, e.queued())
			}},
		{name: "release/grant/info-without-reserve", script: "release", args: []any{"me", 0, "1"},
			setup: func(e *scriptEnv) {
				e.Do("SET", e.lockKey(), "me", "PX", 5000)
				e.waiter("w", 1, live(), 7*time.Second, 0)
			},
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 1, v)
				assert.Equal(e.t, e.grantTo("w"), e.fence(), "one token")
			}},
		{name: "release/grant/reserve", script: "release", args: []any{"me", 0, "1"},
			setup: func(e *scriptEnv) {
				e.Do("SET", e.lockKey(), "me", "PX", 5000)
				e.waiter("w", 1, live(), 7*time.Second, 3)
			},
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 1, v)
				assert.Equal(e.t, e.grantTo("w")+2, e.fence(), "counter = token + reserve - 1")
			}},
		{name: "release/wake", script: "release", args: []any{"me", 0, "0"},
			setup: func(e *scriptEnv) {
				e.Do("SET", e.lockKey(), "me", "PX", 5000)
				e.waiter("w", 1, live(), 7*time.Second, 1)
			},
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 1, v)
				assert.Empty(e.t, e.Get(e.lockKey()), "deleted")
				assert.Equal(e.t, []string{"n"}, e.wakeMsgs("w"), "woken")
			}},
		{name: "release/keep", script: "release", args: []any{"me", 0, "1", 3, 7000},
			setup: func(e *scriptEnv) { e.Do("SET", e.lockKey(), "me", "PX", 2000) },
			check: func(e *scriptEnv, v any) {
				r := ints(e.t, v)
				require.Len(e.t, r, 2)
				assert.EqualValues(e.t, 2, r[0])
				assert.Equal(e.t, "me", e.Get(e.lockKey()), "kept")
				assert.Greater(e.t, e.PTTL(e.lockKey()), 5*time.Second, "with the kept ttl")
				assert.EqualValues(e.t, r[1]+2, e.fence(), "reserving 3 tokens")
				assert.Empty(e.t, e.Get(e.wake("me")+":rel"), "no tombstone: still held")
			}},
		{name: "release/keep/waiter-first", script: "release", args: []any{"me", 0, "1", 3, 7000},
			setup: func(e *scriptEnv) {
				e.Do("SET", e.lockKey(), "me", "PX", 2000)
				e.waiter("w", 1, live(), 7*time.Second, 1)
			},
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 1, v)
				e.grantTo("w")
				assert.Equal(e.t, "1", e.Get(e.wake("me")+":rel"), "tombstone")
			}},
		{name: "release/resent", script: "release", args: []any{"me", 0, "1"},
			setup: func(e *scriptEnv) { e.Do("SET", e.wake("me")+":rel", "1", "PX", 10000) },
			check: func(e *scriptEnv, v any) { assert.EqualValues(e.t, 1, v, "the tombstone says it was ours") }},
		{name: "release/expired/pass-on", script: "release", args: []any{"me", 0, "1"},
			setup: func(e *scriptEnv) { e.waiter("w", 1, live(), 7*time.Second, 1) },
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 0, v, "not ours any more")
				e.grantTo("w")
			}},
		{name: "release/taken", script: "release", args: []any{"me", 0, "1"},
			setup: func(e *scriptEnv) {
				e.Do("SET", e.lockKey(), "other", "PX", 5000)
				e.waiter("w", 1, live(), 7*time.Second, 1)
			},
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 0, v)
				assert.Equal(e.t, "other", e.Get(e.lockKey()))
				assert.Equal(e.t, []string{"w"}, e.queued(), "the holder's waiter still waits")
			}},

		// refresh.lua
		{name: "refresh/ours", script: "refresh", args: []any{"me", 0, 10000},
			setup: func(e *scriptEnv) { e.Do("SET", e.lockKey(), "me", "PX", 1000) },
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 1, v)
				assert.Greater(e.t, e.PTTL(e.lockKey()), 5*time.Second)
				assert.Zero(e.t, e.fence(), "token 0: counter untouched")
			}},
		{name: "refresh/ours/bump", script: "refresh", args: []any{"me", strconv.Itoa(highToken), 10000},
			setup: func(e *scriptEnv) { e.Do("SET", e.lockKey(), "me", "PX", 1000) },
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 1, v)
				assert.EqualValues(e.t, highToken, e.fence())
			}},
		{name: "refresh/ours/bump-lower", script: "refresh", args: []any{"me", "7", 10000},
			setup: func(e *scriptEnv) {
				e.Do("SET", e.lockKey(), "me", "PX", 1000)
				e.Do("SET", e.fenceKey(), highToken)
			},
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 1, v)
				assert.EqualValues(e.t, highToken, e.fence())
			}},
		{name: "refresh/not-ours", script: "refresh", args: []any{"me", 0, 10000},
			setup: func(e *scriptEnv) { e.Do("SET", e.lockKey(), "other", "PX", 1000) },
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 0, v)
				assert.LessOrEqual(e.t, e.PTTL(e.lockKey()), time.Second, "not extended")
			}},

		// pttl.lua
		{name: "pttl/ours", script: "pttl", args: []any{"me"},
			setup: func(e *scriptEnv) { e.Do("SET", e.lockKey(), "me", "PX", 5000) },
			check: func(e *scriptEnv, v any) {
				n, ok := v.(int64)
				require.True(e.t, ok)
				assert.True(e.t, n > 0 && n <= 5000, "pttl %d", n)
			}},
		{name: "pttl/not-ours", script: "pttl", args: []any{"me"},
			setup: func(e *scriptEnv) { e.Do("SET", e.lockKey(), "other", "PX", 5000) },
			check: func(e *scriptEnv, v any) { assert.EqualValues(e.t, -3, v) }},

		// cancel.lua
		{name: "cancel/granted/pass-on", script: "cancel", args: []any{"me", "1"},
			setup: func(e *scriptEnv) {
				e.Do("SET", e.lockKey(), "me", "PX", 5000)
				e.waiter("me", 1, live(), 5*time.Second, 1)
				e.waiter("w", 2, live(), 7*time.Second, 1)
			},
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 1, v, "we held it")
				e.grantTo("w")
				assert.Equal(e.t, []string{"c"}, e.wakeMsgs("me"), "our BLPOP ends")
				assert.Empty(e.t, e.queued())
			}},
		{name: "cancel/granted/delete", script: "cancel", args: []any{"me", "1"},
			setup: func(e *scriptEnv) {
				e.Do("SET", e.lockKey(), "me", "PX", 5000)
				e.waiter("me", 1, live(), 5*time.Second, 1)
			},
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 1, v)
				assert.Empty(e.t, e.Get(e.lockKey()), "nobody waits: deleted")
				assert.Equal(e.t, []string{"c"}, e.wakeMsgs("me"))
				assert.Greater(e.t, e.PTTL(e.wake("me")), time.Duration(0), "the marker expires")
			}},
		{name: "cancel/granted/wake", script: "cancel", args: []any{"me", "0"},
			setup: func(e *scriptEnv) {
				e.Do("SET", e.lockKey(), "me", "PX", 5000)
				e.waiter("w", 1, live(), 7*time.Second, 1)
			},
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 1, v)
				assert.Empty(e.t, e.Get(e.lockKey()))
				assert.Equal(e.t, []string{"n"}, e.wakeMsgs("w"))
			}},
		{name: "cancel/free/pass-turn", script: "cancel", args: []any{"me", "1"},
			setup: func(e *scriptEnv) {
				e.waiter("me", 1, live(), 5*time.Second, 1)
				e.waiter("w", 2, live(), 7*time.Second, 1)
			},
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 0, v)
				e.grantTo("w")
			}},
		{name: "cancel/held-by-other", script: "cancel", args: []any{"me", "1"},
			setup: func(e *scriptEnv) {
				e.Do("SET", e.lockKey(), "other", "PX", 5000)
				e.waiter("me", 1, live(), 5*time.Second, 1)
				e.waiter("w", 2, live(), 7*time.Second, 1)
			},
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 0, v)
				assert.Equal(e.t, "other", e.Get(e.lockKey()))
				assert.Equal(e.t, []string{"w"}, e.queued(), "only we left")
				assert.Equal(e.t, []string{"c"}, e.wakeMsgs("me"))
			}},

		// fence.lua (its own key: <prefix>{resource})
		{name: "fence/first", script: "fence", args: []any{"150", "c", ""},
			check: func(e *scriptEnv, v any) {
				arr := v.([]any)
				assert.Equal(e.t, []any{int64(1), "150"}, arr)
				assert.Equal(e.t, "150", e.hget("t"))
			}},
		{name: "fence/stale/shorter", script: "fence", args: []any{"99", "s", "x"},
			setup: func(e *scriptEnv) { e.Do("HSET", e.resKey(), "t", "100") },
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{int64(0), "100"}, v)
				assert.Empty(e.t, e.hget("v"), "a stale set writes nothing")
			}},
		{name: "fence/stale/same-length", script: "fence", args: []any{"120", "c", ""},
			setup: func(e *scriptEnv) { e.Do("HSET", e.resKey(), "t", "150") },
			check: func(e *scriptEnv, v any) { assert.Equal(e.t, []any{int64(0), "150"}, v) }},
		{name: "fence/equal", script: "fence", args: []any{"150", "c", ""},
			setup: func(e *scriptEnv) { e.Do("HSET", e.resKey(), "t", "150") },
			check: func(e *scriptEnv, v any) { assert.Equal(e.t, []any{int64(1), "150"}, v) }},
		{name: "fence/newer/set", script: "fence", args: []any{"1000", "s", "v1"},
			setup: func(e *scriptEnv) { e.Do("HSET", e.resKey(), "t", "150", "v", "v0") },
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{int64(1), "1000"}, v)
				assert.Equal(e.t, "1000", e.hget("t"))
				assert.Equal(e.t, "v1", e.hget("v"))
			}},
		{name: "fence/newer/check", script: "fence", args: []any{"1000", "c", "ignored"},
			setup: func(e *scriptEnv) { e.Do("HSET", e.resKey(), "t", "150", "v", "v0") },
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{int64(1), "1000"}, v)
				assert.Equal(e.t, "v0", e.hget("v"), "a check leaves the value")
			}},
	}
	for _, topo := range []struct {
		name string
		mk   func(testing.TB) *redistest.DB
	}{{"single", redistest.New}, {"cluster", redistest.NewCluster}} {
		db := topo.mk(t)
		for i, tc := range cases {
			t.Run("topology="+topo.name+"/"+tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				e := &scriptEnv{Peek: redistest.Peek{TB: t, Ctx: ctx, C: db.Client}, t: t, ctx: ctx, c: db.Client, pre: db.Prefix + "br" + strconv.Itoa(i) + ":"}
				e.keys = lock.Keys(e.pre, "k")
				if tc.setup != nil {
					tc.setup(e)
				}
				keys := lock.ReleaseKeys(e.pre, "k", "me")
				if tc.script == "fence" {
					keys = []string{e.resKey()}
				}
				before := now()
				v, err := lock.Script(tc.script).Run(ctx, db.Client, keys, tc.args...).Result()
				require.NoError(t, err, "the %s script's branch must run", tc.script)
				if r, ok := v.([]any); ok && len(r) == 3 && tc.script == "acquire" {
					assert.GreaterOrEqual(t, r[2], before-1_000_000, "Redis TIME in µs")
				}
				tc.check(e, v)
			})
		}
	}
}

func (e *scriptEnv) resKey() string { return e.pre + "{res}" }

func (e *scriptEnv) hget(field string) string {
	e.t.Helper()
	v, err := e.c.HGet(e.ctx, e.resKey(), field).Result()
	if err == redis.Nil {
		return ""
	}
	require.NoError(e.t, err)
	return v
}
