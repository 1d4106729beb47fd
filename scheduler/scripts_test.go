package scheduler_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/scheduler"
)

// branchEnv is one branch test's view of a job's keys.
type branchEnv struct {
	redistest.Peek
	t     *testing.T
	base  string // <ns>{job}:
	lease string // <ns>lease:{job}, the job's lease (package lock)
}

func (e *branchEnv) claimKey(id string) string { return e.base + "tick:" + id }
func (e *branchEnv) pending() string           { return e.base + "pending" }
func (e *branchEnv) history() string           { return e.base + "history" }

// TestScriptBranches runs every branch of the scheduler's scripts
// (claim.lua, refresh.lua, complete.lua, abandoned.lua) by hand, on a
// single node and on a Cluster, and checks the reply and the keys each
// leaves behind. A branch that does not run (a typo, an undefined global)
// fails here. The scripts' header comments name these subtests.
func TestScriptBranches(t *testing.T) {
	const tick, older, oldest = 3_000_000, 2_000_000, 1_000_000 // unix micros
	us := strconv.Itoa
	type call struct {
		keys func(e *branchEnv) []string
		args func(e *branchEnv) []any
	}
	claim := func(owner, score, id, fence, oldestArg string) call {
		return call{
			keys: func(e *branchEnv) []string { return []string{e.claimKey(id), e.pending(), e.base + "fence"} },
			args: func(e *branchEnv) []any {
				return []any{owner, 5000, score, id, fence, 60000, oldestArg, e.base + "tick:"}
			},
		}
	}
	// claimLease is a trigger's claim that takes the job's lease too.
	claimLease := func(owner, leaseOwner string) call {
		return call{
			keys: func(e *branchEnv) []string {
				return []string{e.claimKey("trigger"), e.pending(), e.base + "fence", e.base + "paused", e.lease, e.lease + ":fence"}
			},
			args: func(e *branchEnv) []any {
				return []any{owner, 5000, "", "trigger", "0", 60000, "", e.base + "tick:", "0", leaseOwner, 7000}
			},
		}
	}
	// leaseToken checks a claim reply {2, token} whose token is Redis TIME
	// (µs), and that the lease's counter holds it.
	leaseToken := func(e *branchEnv, v any) {
		arr, ok := v.([]any)
		require.True(e.t, ok, "got %v, want {2, token}", v)
		require.Len(e.t, arr, 2)
		assert.Equal(e.t, int64(2), arr[0])
		tok, _ := arr[1].(int64)
		assert.InDelta(e.t, time.Now().UnixMicro(), tok, float64(time.Minute.Microseconds()), "token from Redis TIME")
		assert.Equal(e.t, strconv.FormatInt(tok, 10), e.Get(e.lease+":fence"))
	}
	refresh := func(owner string) call {
		return call{
			keys: func(e *branchEnv) []string { return []string{e.claimKey(us(tick))} },
			args: func(*branchEnv) []any { return []any{owner, 9000} },
		}
	}
	complete := func(owner, rec string, keep int) call {
		return call{
			keys: func(e *branchEnv) []string { return []string{e.claimKey(us(tick)), e.pending(), e.history()} },
			args: func(*branchEnv) []any { return []any{owner, 60000, us(tick), rec, keep, 600000} },
		}
	}
	// completeLease completes our run of tick and releases its lease "lk".
	completeLease := func() call {
		return call{
			keys: func(e *branchEnv) []string {
				return []string{e.claimKey(us(tick)), e.pending(), e.history(), e.lease, e.lease + ":q", e.lease + ":w:lk:rel"}
			},
			args: func(*branchEnv) []any { return []any{"me", 60000, us(tick), `{"r":1}`, 2, 600000, "lk"} },
		}
	}
	abandoned := func(limit int) call {
		return call{
			keys: func(e *branchEnv) []string { return []string{e.pending()} },
			args: func(e *branchEnv) []any { return []any{oldest, e.base + "tick:", limit} },
		}
	}
	// pendingTicks queues ids at scores: one abandoned (no claim), one
	// still claimed, one older than the window, and the current tick.
	pendingTicks := func(e *branchEnv) {
		e.Do("ZADD", e.pending(), oldest-1, "too-old", older, "abandoned", older+1, "alive", tick, us(tick))
		e.Do("SET", e.claimKey("alive"), "run:other", "PX", 60000)
	}
	cases := []struct {
		name   string
		script string
		setup  func(e *branchEnv)
		call   call
		check  func(e *branchEnv, v any)
	}{
		// claim.lua
		{name: "claim/free", script: "claim", call: claim("me", "", "trigger", "0", ""),
			check: func(e *branchEnv, v any) {
				assert.Equal(e.t, []any{int64(1), int64(0)}, v)
				assert.Equal(e.t, "run:me", e.Get(e.claimKey("trigger")))
				assert.InDelta(e.t, 5000, e.PTTL(e.claimKey("trigger")).Milliseconds(), 1000)
				assert.Empty(e.t, e.ZRange(e.pending()), "not pending")
			}},
		{name: "claim/free/fence", script: "claim", call: claim("me", "", "trigger", "1", ""),
			setup: func(e *branchEnv) { e.Do("SET", e.base+"fence", 41) },
			check: func(e *branchEnv, v any) { assert.Equal(e.t, []any{int64(1), int64(42)}, v) }},
		{name: "claim/held-by-other", script: "claim", call: claim("me", "", "trigger", "1", ""),
			setup: func(e *branchEnv) { e.Do("SET", e.claimKey("trigger"), "run:other", "PX", 60000) },
			check: func(e *branchEnv, v any) {
				assert.EqualValues(e.t, 0, v)
				assert.Equal(e.t, "run:other", e.Get(e.claimKey("trigger")))
				assert.Empty(e.t, e.Get(e.base+"fence"), "no token issued")
			}},
		{name: "claim/completed", script: "claim", call: claim("me", "", "trigger", "0", ""),
			setup: func(e *branchEnv) { e.Do("SET", e.claimKey("trigger"), "done:me", "PX", 60000) },
			check: func(e *branchEnv, v any) { assert.EqualValues(e.t, 0, v, "done, even by us") }},
		{name: "claim/ours-again", script: "claim", call: claim("me", "", "trigger", "0", ""),
			setup: func(e *branchEnv) { e.Do("SET", e.claimKey("trigger"), "run:me", "PX", 100) },
			check: func(e *branchEnv, v any) {
				assert.Equal(e.t, []any{int64(1), int64(0)}, v, "a retry whose reply was lost")
				assert.Greater(e.t, e.PTTL(e.claimKey("trigger")), time.Second, "renewed")
			}},
		{name: "claim/pending", script: "claim", call: claim("me", us(tick), us(tick), "0", us(oldest)),
			check: func(e *branchEnv, v any) {
				assert.Equal(e.t, []any{int64(1), int64(0)}, v, "nothing abandoned")
				assert.Equal(e.t, []string{us(tick)}, e.ZRange(e.pending()))
				assert.Greater(e.t, e.PTTL(e.pending()), 30*time.Second, "pending expires")
			}},
		{name: "claim/pending/abandoned", script: "claim", call: claim("me", us(tick), us(tick), "0", us(oldest)),
			setup: pendingTicks,
			check: func(e *branchEnv, v any) {
				assert.Equal(e.t, []any{int64(1), int64(0), "abandoned", us(older)}, v,
					"only the expired claim inside the window, before this tick")
			}},
		{name: "claim/lease/free", script: "claim", call: claimLease("me", "lk"),
			check: func(e *branchEnv, v any) {
				leaseToken(e, v)
				assert.Equal(e.t, "run:me", e.Get(e.claimKey("trigger")))
				assert.Equal(e.t, "lk", e.Get(e.lease))
				assert.InDelta(e.t, 7000, e.PTTL(e.lease).Milliseconds(), 1000)
			}},
		{name: "claim/lease/counter-ahead", script: "claim", call: claimLease("me", "lk"),
			setup: func(e *branchEnv) { e.Do("SET", e.lease+":fence", "99999999999999999") },
			check: func(e *branchEnv, v any) {
				assert.Equal(e.t, []any{int64(2), int64(100000000000000000)}, v, "last + 1")
				assert.Equal(e.t, "100000000000000000", e.Get(e.lease+":fence"))
			}},
		{name: "claim/lease/ours-again", script: "claim", call: claimLease("me", "lk"),
			setup: func(e *branchEnv) {
				e.Do("SET", e.claimKey("trigger"), "run:me", "PX", 100)
				e.Do("SET", e.lease, "lk", "PX", 100)
			},
			check: func(e *branchEnv, v any) {
				leaseToken(e, v)
				assert.Greater(e.t, e.PTTL(e.lease), time.Second, "renewed")
			}},
		{name: "claim/lease/held", script: "claim", call: claimLease("me", "lk"),
			setup: func(e *branchEnv) {
				e.Do("SET", e.lease, "other", "PX", 60000)
				e.Do("SET", e.lease+":fence", 5)
			},
			check: func(e *branchEnv, v any) {
				assert.Equal(e.t, []any{int64(3), int64(0)}, v, "claimed, lease held by another run")
				assert.Equal(e.t, "run:me", e.Get(e.claimKey("trigger")), "the claim is ours: the tick is recorded as skipped")
				assert.Equal(e.t, "other", e.Get(e.lease))
				assert.Equal(e.t, "5", e.Get(e.lease+":fence"), "no token issued")
			}},
		{name: "claim/lease/claim-lost", script: "claim", call: claimLease("me", "lk"),
			setup: func(e *branchEnv) { e.Do("SET", e.claimKey("trigger"), "run:other", "PX", 60000) },
			check: func(e *branchEnv, v any) {
				assert.EqualValues(e.t, 0, v)
				assert.Empty(e.t, e.Get(e.lease), "lease not taken")
				assert.Empty(e.t, e.Get(e.lease+":fence"))
			}},
		{name: "claim/lease/refused", script: "claim", call: claimLease("me", "lk"),
			setup: func(e *branchEnv) { e.Do("HSET", e.lease, "f", "v") },
			check: func(e *branchEnv, v any) {
				assert.Equal(e.t, []any{int64(4), int64(0)}, v, "claimed; the lease is left to the lock package")
				assert.Equal(e.t, "run:me", e.Get(e.claimKey("trigger")))
				assert.Empty(e.t, e.Get(e.lease+":fence"), "no token issued")
			}},

		// refresh.lua
		{name: "refresh/ours", script: "refresh", call: refresh("me"),
			setup: func(e *branchEnv) { e.Do("SET", e.claimKey(us(tick)), "run:me", "PX", 100) },
			check: func(e *branchEnv, v any) {
				assert.EqualValues(e.t, 1, v)
				assert.Greater(e.t, e.PTTL(e.claimKey(us(tick))), 5*time.Second)
			}},
		{name: "refresh/not-ours", script: "refresh", call: refresh("me"),
			setup: func(e *branchEnv) { e.Do("SET", e.claimKey(us(tick)), "run:other", "PX", 1000) },
			check: func(e *branchEnv, v any) {
				assert.EqualValues(e.t, 0, v)
				assert.LessOrEqual(e.t, e.PTTL(e.claimKey(us(tick))), time.Second)
			}},
		{name: "refresh/done", script: "refresh", call: refresh("me"),
			setup: func(e *branchEnv) { e.Do("SET", e.claimKey(us(tick)), "done:me", "PX", 1000) },
			check: func(e *branchEnv, v any) { assert.EqualValues(e.t, 0, v) }},

		// complete.lua
		{name: "complete/ours", script: "complete", call: complete("me", `{"r":1}`, 2),
			setup: func(e *branchEnv) {
				e.Do("SET", e.claimKey(us(tick)), "run:me", "PX", 1000)
				e.Do("ZADD", e.pending(), tick, us(tick), older, "other")
			},
			check: func(e *branchEnv, v any) {
				assert.EqualValues(e.t, 1, v)
				assert.Equal(e.t, "done:me", e.Get(e.claimKey(us(tick))))
				assert.Greater(e.t, e.PTTL(e.claimKey(us(tick))), 30*time.Second, "the done marker outlives the window")
				assert.Equal(e.t, []string{"other"}, e.ZRange(e.pending()))
				assert.Equal(e.t, []string{`{"r":1}`}, e.LRange(e.history()))
				assert.Greater(e.t, e.PTTL(e.history()), time.Minute)
			}},
		{name: "complete/expired", script: "complete", call: complete("me", `{"r":1}`, 2),
			check: func(e *branchEnv, v any) {
				assert.EqualValues(e.t, 1, v, "nobody caught it up: done")
				assert.Equal(e.t, "done:me", e.Get(e.claimKey(us(tick))))
			}},
		{name: "complete/taken-over", script: "complete", call: complete("me", `{"r":1}`, 2),
			setup: func(e *branchEnv) {
				e.Do("SET", e.claimKey(us(tick)), "run:other", "PX", 60000)
				e.Do("ZADD", e.pending(), tick, us(tick))
			},
			check: func(e *branchEnv, v any) {
				assert.EqualValues(e.t, 0, v)
				assert.Equal(e.t, "run:other", e.Get(e.claimKey(us(tick))), "left to its new owner")
				assert.Equal(e.t, []string{us(tick)}, e.ZRange(e.pending()))
				assert.Equal(e.t, []string{`{"r":1}`}, e.LRange(e.history()), "our run is still recorded")
			}},
		{name: "complete/no-record", script: "complete", call: complete("me", "", 2),
			check: func(e *branchEnv, v any) {
				assert.EqualValues(e.t, 1, v)
				assert.Empty(e.t, e.LRange(e.history()))
			}},
		{name: "complete/keep-none", script: "complete", call: complete("me", `{"r":1}`, 0),
			check: func(e *branchEnv, v any) {
				assert.EqualValues(e.t, 1, v)
				assert.Empty(e.t, e.LRange(e.history()))
			}},
		{name: "complete/trim", script: "complete", call: complete("me", "new", 2),
			setup: func(e *branchEnv) { e.Do("RPUSH", e.history(), "b", "a") },
			check: func(e *branchEnv, v any) {
				assert.EqualValues(e.t, 1, v)
				assert.Equal(e.t, []string{"new", "b"}, e.LRange(e.history()), "newest first, keep 2")
			}},
		{name: "complete/lease/released", script: "complete", call: completeLease(),
			setup: func(e *branchEnv) {
				e.Do("SET", e.claimKey(us(tick)), "run:me", "PX", 1000)
				e.Do("SET", e.lease, "lk", "PX", 60000)
			},
			check: func(e *branchEnv, v any) {
				assert.EqualValues(e.t, 3, v, "done (1) + lease released (2)")
				assert.Equal(e.t, "done:me", e.Get(e.claimKey(us(tick))))
				assert.Empty(e.t, e.Get(e.lease), "released")
				assert.Equal(e.t, "1", e.Get(e.lease+":w:lk:rel"), "tombstone, as release.lua leaves")
				assert.Equal(e.t, []string{`{"r":1}`}, e.LRange(e.history()))
			}},
		{name: "complete/lease/waiters", script: "complete", call: completeLease(),
			setup: func(e *branchEnv) {
				e.Do("SET", e.claimKey(us(tick)), "run:me", "PX", 1000)
				e.Do("SET", e.lease, "lk", "PX", 60000)
				e.Do("ZADD", e.lease+":q", 1, "waiter")
			},
			check: func(e *branchEnv, v any) {
				assert.EqualValues(e.t, 1, v, "done; the lease is left to release.lua (hand-off)")
				assert.Equal(e.t, "lk", e.Get(e.lease))
				assert.Empty(e.t, e.Get(e.lease+":w:lk:rel"))
			}},
		{name: "complete/lease/not-ours", script: "complete", call: completeLease(),
			setup: func(e *branchEnv) {
				e.Do("SET", e.claimKey(us(tick)), "run:me", "PX", 1000)
				e.Do("SET", e.lease, "other", "PX", 60000)
			},
			check: func(e *branchEnv, v any) {
				assert.EqualValues(e.t, 1, v)
				assert.Equal(e.t, "other", e.Get(e.lease), "left")
				assert.Empty(e.t, e.Get(e.lease+":w:lk:rel"))
			}},
		{name: "complete/lease/refused", script: "complete", call: completeLease(),
			setup: func(e *branchEnv) {
				e.Do("SET", e.claimKey(us(tick)), "run:me", "PX", 1000)
				e.Do("HSET", e.lease, "f", "v")
			},
			check: func(e *branchEnv, v any) {
				assert.EqualValues(e.t, 1, v, "recorded; the lease is left to release.lua, which reports it")
				assert.Equal(e.t, "done:me", e.Get(e.claimKey(us(tick))))
				assert.Equal(e.t, []string{`{"r":1}`}, e.LRange(e.history()))
			}},

		// abandoned.lua
		{name: "abandoned/found", script: "abandoned", call: abandoned(16), setup: pendingTicks,
			check: func(e *branchEnv, v any) {
				assert.Equal(e.t, []any{"abandoned", us(older), us(tick), us(tick)}, v,
					"claims that expired, inside the window, oldest first")
				assert.NotContains(e.t, e.ZRange(e.pending()), "too-old", "pruned")
			}},
		{name: "abandoned/limit", script: "abandoned", call: abandoned(1), setup: pendingTicks,
			check: func(e *branchEnv, v any) { assert.Equal(e.t, []any{"abandoned", us(older)}, v) }},
		{name: "abandoned/none", script: "abandoned", call: abandoned(16),
			check: func(e *branchEnv, v any) { assert.Equal(e.t, []any{}, v) }},
	}
	for _, b := range redisBackends {
		db := b.mk(t)
		for i, tc := range cases {
			t.Run("redis="+b.name+"/"+tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				e := &branchEnv{Peek: redistest.Peek{TB: t, Ctx: ctx, C: db.Client}, t: t, base: db.Prefix + "{job" + strconv.Itoa(i) + "}:",
					lease: db.Prefix + "lease:{job" + strconv.Itoa(i) + "}"}
				if tc.setup != nil {
					tc.setup(e)
				}
				v, err := scheduler.Script(tc.script).Run(ctx, db.Client, tc.call.keys(e), tc.call.args(e)...).Result()
				require.NoError(t, err, "the %s script's branch must run", tc.script)
				tc.check(e, v)
			})
		}
	}
}
