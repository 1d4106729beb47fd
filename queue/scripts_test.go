package queue_test

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/queue"
)

// scriptEnv is one branch test's view of a queue's keys, all under one
// hash tag (as NewRedis lays them out).
type scriptEnv struct {
	redistest.Peek
	t    testing.TB
	base string // <prefix>{s<i>}:
	now  int64  // Redis TIME in ms, read just before the call
	ids  map[string]string
}

func (e *scriptEnv) stream() string    { return e.base + "stream" }
func (e *scriptEnv) delayed() string   { return e.base + "delayed" }
func (e *scriptEnv) payloads() string  { return e.base + "payloads" }
func (e *scriptEnv) dead() string      { return e.base + "dead" }
func (e *scriptEnv) deadIndex() string { return e.base + "deadindex" }
func (e *scriptEnv) metrics() string   { return e.base + "m:1" }
func (e *scriptEnv) paused() string    { return e.base + "paused" }
func (e *scriptEnv) call() string      { return e.base + "id:call:c1" }
func (e *scriptEnv) idKey(id string) string {
	return e.base + "id:" + id
}
func (e *scriptEnv) dedupKey(k string) string { return e.base + "dedup:" + k }
func (e *scriptEnv) wake() string             { return e.base + "wake:me" }

// group creates the consumer group on the stream (and the stream).
func (e *scriptEnv) group() { e.Do("XGROUP", "CREATE", e.stream(), "consumers", "0", "MKSTREAM") }

// add appends an entry to a stream and returns its entry ID.
func (e *scriptEnv) add(key string, fields ...string) string {
	e.t.Helper()
	args := []any{"XADD", key, "*"}
	for _, f := range fields {
		args = append(args, f)
	}
	id, err := e.C.Do(e.Ctx, args...).Text()
	require.NoError(e.t, err)
	return id
}

// deliver reads up to n new entries as consumer and returns their IDs.
func (e *scriptEnv) deliver(consumer string, n int) []string {
	e.t.Helper()
	res, err := e.C.XReadGroup(e.Ctx, &redis.XReadGroupArgs{Group: "consumers", Consumer: consumer, Streams: []string{e.stream(), ">"}, Count: int64(n)}).Result()
	require.NoError(e.t, err)
	var ids []string
	for _, m := range res[0].Messages {
		ids = append(ids, m.ID)
	}
	return ids
}

// owners returns the pending entries: entry ID -> consumer.
func (e *scriptEnv) owners() map[string]string {
	e.t.Helper()
	ps, err := e.C.XPendingExt(e.Ctx, &redis.XPendingExtArgs{Stream: e.stream(), Group: "consumers", Start: "-", End: "+", Count: 100}).Result()
	require.NoError(e.t, err)
	out := map[string]string{}
	for _, p := range ps {
		out[p.ID] = p.Consumer
	}
	return out
}

// idle returns how long the pending entry id has been idle.
func (e *scriptEnv) idle(id string) time.Duration {
	e.t.Helper()
	ps, err := e.C.XPendingExt(e.Ctx, &redis.XPendingExtArgs{Stream: e.stream(), Group: "consumers", Start: id, End: id, Count: 1}).Result()
	require.NoError(e.t, err)
	require.Len(e.t, ps, 1, "entry %s pending", id)
	return ps[0].Idle
}

// entries returns a stream's entries, oldest first, each as its fields
// and values joined by spaces.
func (e *scriptEnv) entries(key string) []string {
	e.t.Helper()
	res, err := e.C.Do(e.Ctx, "XRANGE", key, "-", "+").Slice()
	require.NoError(e.t, err)
	out := []string{}
	for _, r := range res {
		fields := r.([]any)[1].([]any)
		s := make([]string, len(fields))
		for i, f := range fields {
			s[i] = f.(string)
		}
		out = append(out, strings.Join(s, " "))
	}
	return out
}

// entryIDs returns a stream's entry IDs, oldest first.
func (e *scriptEnv) entryIDs(key string) []string {
	e.t.Helper()
	xs, err := e.C.XRange(e.Ctx, key, "-", "+").Result()
	require.NoError(e.t, err)
	out := []string{}
	for _, x := range xs {
		out = append(out, x.ID)
	}
	return out
}

// hash returns a hash's fields (empty when it is missing).
func (e *scriptEnv) hash(key string) map[string]string {
	e.t.Helper()
	v, err := e.C.HGetAll(e.Ctx, key).Result()
	require.NoError(e.t, err)
	return v
}

// score returns member's score in a sorted set.
func (e *scriptEnv) score(key, member string) float64 {
	e.t.Helper()
	v, err := e.C.ZScore(e.Ctx, key, member).Result()
	require.NoError(e.t, err, "%s in %s", member, key)
	return v
}

// consumers returns the group's consumers, sorted.
func (e *scriptEnv) consumers() []string {
	e.t.Helper()
	cs, err := e.C.XInfoConsumers(e.Ctx, e.stream(), "consumers").Result()
	require.NoError(e.t, err)
	out := []string{}
	for _, c := range cs {
		out = append(out, c.Name)
	}
	sort.Strings(out)
	return out
}

var (
	packScript   = redis.NewScript(`redis.call('HSET', KEYS[1], ARGV[1], cmsgpack.pack({unpack(ARGV, 2)}))`)
	unpackScript = redis.NewScript(`local p = redis.call('HGET', KEYS[1], ARGV[1]) if not p then return false end return cmsgpack.unpack(p)`)
)

// putPayload stores a delayed message's packed fields, as fail.lua and
// publish.lua do.
func (e *scriptEnv) putPayload(id string, fields ...string) {
	e.t.Helper()
	args := []any{id}
	for _, f := range fields {
		args = append(args, f)
	}
	err := packScript.Run(e.Ctx, e.C, []string{e.payloads()}, args...).Err()
	if err != redis.Nil {
		require.NoError(e.t, err)
	}
}

// payload returns a delayed message's unpacked fields joined by spaces, ""
// when there is none.
func (e *scriptEnv) payload(id string) string {
	e.t.Helper()
	v, err := unpackScript.Run(e.Ctx, e.C, []string{e.payloads()}, id).StringSlice()
	if err == redis.Nil {
		return ""
	}
	require.NoError(e.t, err)
	return strings.Join(v, " ")
}

// delay queues a delayed message id due at ms, with its payload unless
// fields is nil.
func (e *scriptEnv) delay(id string, ms int64, fields ...string) {
	e.Do("ZADD", e.delayed(), ms, id)
	if fields != nil {
		e.putPayload(id, fields...)
	}
}

// deadLetters fills the dead-letter stream with three entries and their
// index: m1 and m3 failed with a timeout, m2 with bad input. Their entry
// IDs are e.ids["d1"], ["d2"], ["d3"].
func (e *scriptEnv) deadLetters() {
	for i, err := range []string{"Timeout talking to DB", "bad input", "TIMEOUT again"} {
		n := strconv.Itoa(i + 1)
		eid := e.add(e.dead(), "id", "m"+n, "t", "1000", "a", "3", "body", "b"+n, "e", err)
		e.ids["d"+n] = eid
		e.Do("HSET", e.deadIndex(), "m"+n, eid)
	}
}

// redisTime returns Redis TIME in ms.
func (e *scriptEnv) redisTime() int64 {
	e.t.Helper()
	t, err := e.C.Time(e.Ctx).Result()
	require.NoError(e.t, err)
	return t.UnixMilli()
}

// nearNow checks that v, a reply element holding a time in ms, is within
// a few seconds after e.now (Redis TIME read before the call).
func (e *scriptEnv) nearNow(v any, offset int64) {
	e.t.Helper()
	var ms int64
	switch x := v.(type) {
	case int64:
		ms = x
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		require.NoError(e.t, err)
		ms = n
	case float64:
		ms = int64(x)
	default:
		e.t.Fatalf("time %v (%T), want ms", v, v)
	}
	assert.GreaterOrEqual(e.t, ms, e.now+offset, "time >= Redis TIME before the call + %d ms", offset)
	assert.LessOrEqual(e.t, ms, e.now+offset+5000, "time within 5 s of the call")
}

// pub is one message of a publish.lua call.
func pub(id string, idk, ddk int, dedupMS, delayMS int64, pairs ...string) []any {
	out := []any{id, idk, ddk, dedupMS, delayMS, len(pairs) / 2}
	for _, p := range pairs {
		out = append(out, p)
	}
	return out
}

// publishArgs builds publish.lua's arguments: retry window 60 s, maxlen,
// the messages, and metricsTTL when it is not "".
func publishArgs(maxlen int, metricsTTL string, msgs ...[]any) []any {
	args := []any{60000, maxlen, len(msgs)}
	for _, m := range msgs {
		args = append(args, m...)
	}
	if metricsTTL != "" {
		args = append(args, metricsTTL)
	}
	return args
}

// scriptCase is one branch of one script: setup writes the keys, keys and
// args build the call, and either wantErr is in the error reply or check
// looks at the reply and the keys left behind.
type scriptCase struct {
	name    string // <script>/<branch>, named in the script's header
	setup   func(e *scriptEnv)
	keys    func(e *scriptEnv) []string
	args    func(e *scriptEnv) []any
	wantErr string
	check   func(e *scriptEnv, v any)
}

func (c scriptCase) script() string { s, _, _ := strings.Cut(c.name, "/"); return s }

// scriptKeys are the keys each script takes, as its Go caller passes them.
var scriptKeys = map[string]func(e *scriptEnv) []string{
	"ack": func(e *scriptEnv) []string { return []string{e.stream()} },
	"fail": func(e *scriptEnv) []string {
		return []string{e.stream(), e.delayed(), e.payloads(), e.dead(), e.deadIndex()}
	},
	"inspect_dead": func(e *scriptEnv) []string {
		return []string{e.stream(), e.dead(), e.deadIndex(), e.metrics(), e.delayed()}
	},
	"inspect_delayed": func(e *scriptEnv) []string { return []string{e.delayed(), e.payloads()} },
	"inspect_delete": func(e *scriptEnv) []string {
		return []string{e.stream(), e.dead(), e.deadIndex(), e.metrics(), e.delayed()}
	},
	"inspect_info": func(e *scriptEnv) []string { return []string{e.stream(), e.delayed(), e.dead(), e.paused()} },
	"leave":        func(e *scriptEnv) []string { return []string{e.stream(), e.wake()} },
	"move":         func(e *scriptEnv) []string { return []string{e.stream(), e.delayed(), e.payloads()} },
	"publish":      func(e *scriptEnv) []string { return []string{e.stream(), e.delayed(), e.payloads(), e.call()} },
	"renew":        func(e *scriptEnv) []string { return []string{e.stream()} },
	"requeue":      func(e *scriptEnv) []string { return []string{e.stream(), e.dead(), e.deadIndex()} },
	"stats":        func(e *scriptEnv) []string { return []string{e.stream(), e.delayed(), e.dead()} },
	"tally":        func(e *scriptEnv) []string { return []string{e.metrics(), e.stream(), e.delayed(), e.dead()} },
}

// fixed returns args that do not depend on the setup.
func fixed(args ...any) func(*scriptEnv) []any { return func(*scriptEnv) []any { return args } }

// arr returns a reply that must be an array.
func arr(t testing.TB, v any) []any {
	t.Helper()
	a, ok := v.([]any)
	require.Truef(t, ok, "reply %v (%T), want an array", v, v)
	return a
}

// wantTTL checks that key expires within (0, max].
func (e *scriptEnv) wantTTL(key string, max time.Duration) {
	e.t.Helper()
	d := e.PTTL(key)
	assert.Positive(e.t, d, "%s expires", key)
	assert.LessOrEqual(e.t, d, max, "%s's TTL", key)
}

func scriptCases() []scriptCase {
	const ttl = "7200"
	fields := []string{"id", "m1", "t", "1000", "a", "2", "body", "x", "e", "boom"}
	failArgs := func(mode string, delay int) func(e *scriptEnv) []any {
		return func(e *scriptEnv) []any {
			args := []any{"consumers", e.ids["e1"], mode, delay, "m1"}
			for _, f := range fields {
				args = append(args, f)
			}
			return args
		}
	}
	// pending1 delivers one entry to "me": e.ids["e1"].
	pending1 := func(e *scriptEnv) {
		e.group()
		e.ids["e1"] = e.add(e.stream(), "id", "m1", "body", "x")
		e.deliver("me", 1)
	}
	stringAt := func(key func(e *scriptEnv) string) func(e *scriptEnv) {
		return func(e *scriptEnv) { e.Do("SET", key(e), "not the right type") }
	}
	deadArgs := func(mode, cursor, end string, examine, want int, sub string) func(e *scriptEnv) []any {
		return func(e *scriptEnv) []any {
			c, en := cursor, end
			if v, ok := e.ids[c]; ok {
				c = v
			}
			if v, ok := e.ids[en]; ok {
				en = v
			}
			return []any{mode, c, en, examine, want, sub, ttl}
		}
	}
	// ten adds entries e0..e9 (e.ids["e<i>"]) and delivers the first
	// delivered of them to "me"; each of acked is then acknowledged with
	// a bare XACK, which leaves it in the stream (what only ack.lua's trim
	// removes).
	ten := func(delivered int, acked ...int) func(e *scriptEnv) {
		return func(e *scriptEnv) {
			e.group()
			for i := range 10 {
				e.ids["e"+strconv.Itoa(i)] = e.add(e.stream(), "id", "m"+strconv.Itoa(i))
			}
			if delivered > 0 {
				e.deliver("me", delivered)
			}
			for _, i := range acked {
				e.Do("XACK", e.stream(), "consumers", e.ids["e"+strconv.Itoa(i)])
			}
		}
	}
	ackIDs := func(e *scriptEnv, is ...int) []any {
		args := []any{"consumers"}
		for _, i := range is {
			args = append(args, e.ids["e"+strconv.Itoa(i)])
		}
		return args
	}
	acks := func(is ...int) func(e *scriptEnv) []any {
		return func(e *scriptEnv) []any { return ackIDs(e, is...) }
	}
	// ackBefore runs ack.lua (as shipped) on the entries is, before the case.
	ackBefore := func(e *scriptEnv, is ...int) {
		e.t.Helper()
		require.NoError(e.t, queue.Scripts["ack"].Run(e.Ctx, e.C, scriptKeys["ack"](e), ackIDs(e, is...)...).Err())
	}
	// fiveSixSeven adds entries 5-0, 6-0 and 7-0 and delivers them to "me".
	fiveSixSeven := func(e *scriptEnv) {
		e.group()
		for _, id := range []string{"5-0", "6-0", "7-0"} {
			e.Do("XADD", e.stream(), id, "id", "m"+id)
		}
		e.deliver("me", 3)
	}
	// msOnlyLeft checks that ack.lua acknowledged two entries and left only
	// entry left.
	msOnlyLeft := func(left string) func(e *scriptEnv, v any) {
		return func(e *scriptEnv, v any) {
			assert.EqualValues(e.t, 2, v)
			assert.Equal(e.t, []string{left}, e.entryIDs(e.stream()))
		}
	}
	// ackLeft checks ack.lua's reply and the entries left in the stream.
	ackLeft := func(want int, left ...int) func(e *scriptEnv, v any) {
		return func(e *scriptEnv, v any) {
			assert.EqualValues(e.t, want, v, "acknowledged")
			ids := []string{}
			for _, i := range left {
				ids = append(ids, e.ids["e"+strconv.Itoa(i)])
			}
			assert.Equal(e.t, ids, e.entryIDs(e.stream()), "entries left")
		}
	}
	// plainArgs builds the plain form of publish.lua's arguments: retry
	// window 60 s, no bound, the messages' bodies, and metricsTTL when it
	// is not "".
	plainArgs := func(metricsTTL string, bodies ...string) []any {
		args := []any{60000, 0, -len(bodies)}
		for _, a := range bodies {
			args = append(args, a)
		}
		if metricsTTL != "" {
			args = append(args, metricsTTL)
		}
		return args
	}
	withMetrics := func(e *scriptEnv) []string { return append(scriptKeys["publish"](e), e.metrics()) }
	deadEntry := func(e *scriptEnv, d string) []any {
		n := strings.TrimPrefix(d, "d")
		errs := map[string]string{"1": "Timeout talking to DB", "2": "bad input", "3": "TIMEOUT again"}
		return []any{e.ids[d], []any{"id", "m" + n, "t", "1000", "a", "3", "body", "b" + n, "e", errs[n]}}
	}
	return []scriptCase{
		// ack.lua
		{name: "ack/pending",
			setup: func(e *scriptEnv) {
				e.group()
				for i := 1; i <= 3; i++ {
					e.ids["e"+strconv.Itoa(i)] = e.add(e.stream(), "id", "m"+strconv.Itoa(i))
				}
				e.deliver("me", 3)
			},
			args: func(e *scriptEnv) []any { return []any{"consumers", e.ids["e1"], e.ids["e2"]} },
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 2, v)
				assert.Equal(e.t, []string{e.ids["e3"]}, e.entryIDs(e.stream()), "acked entries deleted")
				assert.Equal(e.t, map[string]string{e.ids["e3"]: "me"}, e.owners())
			}},
		{name: "ack/settled",
			setup: func(e *scriptEnv) {
				pending1(e)
				e.ids["e2"] = e.add(e.stream(), "id", "m2")
				e.deliver("other", 1)
				e.Do("XACK", e.stream(), "consumers", e.ids["e1"])
				e.Do("XDEL", e.stream(), e.ids["e1"])
			},
			args: func(e *scriptEnv) []any { return []any{"consumers", e.ids["e1"]} },
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 0, v, "settled elsewhere already")
				assert.Equal(e.t, map[string]string{e.ids["e2"]: "other"}, e.owners(), "others' entries untouched")
			}},
		{name: "ack/trim", setup: ten(10, 0), args: acks(1, 2, 3, 4, 5, 6, 7, 8, 9),
			check: func(e *scriptEnv, v any) {
				ackLeft(9)(e, v)
				assert.Empty(e.t, e.owners())
			}},
		{name: "ack/trim/undelivered", setup: ten(5), args: acks(0, 1, 2, 3, 4), check: ackLeft(5, 5, 6, 7, 8, 9)},
		{name: "ack/trim/pending-oldest", setup: ten(10, 3), args: acks(1, 2, 5),
			check: func(e *scriptEnv, v any) {
				ackLeft(3, 0, 3, 4, 6, 7, 8, 9)(e, v) // e3, acked, stays: above the oldest pending e0
				assert.Len(e.t, e.owners(), 6)
			}},
		{name: "ack/trim/oldest-last",
			setup: func(e *scriptEnv) { ten(10)(e); ackBefore(e, 1, 2, 5) },
			args:  acks(0), check: ackLeft(1, 3, 4, 6, 7, 8, 9)},
		{name: "ack/trim/setid-back", // XGROUP SETID moved the last delivered entry below the pending ones
			setup: func(e *scriptEnv) { ten(6, 0)(e); e.Do("XGROUP", "SETID", e.stream(), "consumers", "0") },
			args:  acks(1), check: ackLeft(1, 0, 2, 3, 4, 5, 6, 7, 8, 9)}, // e0 is to be delivered again
		{name: "ack/trim/both-sides", // e3, e5 and e8 still pending: the trim stops at e3, the rest is XDEL
			setup: ten(10), args: acks(0, 1, 2, 4, 6, 7, 9), check: ackLeft(7, 3, 5, 8)},
		{name: "ack/trim/twice",
			setup: func(e *scriptEnv) { ten(4)(e); ackBefore(e, 0, 1) },
			args:  acks(0, 1, 2, 3), check: ackLeft(2, 4, 5, 6, 7, 8, 9)},
		{name: "ack/trim/ms-only", setup: fiveSixSeven,
			args: fixed("consumers", "5", "6-0"), check: msOnlyLeft("7-0")},
		{name: "ack/trim/ms-only-above", // 5-0 stays pending: "6" and "7" are found above the trim point
			setup: fiveSixSeven, args: fixed("consumers", "6", "7"), check: msOnlyLeft("5-0")},
		{name: "ack/huge-seq",
			setup: func(e *scriptEnv) {
				e.group()
				e.Do("XADD", e.stream(), "1-1", "id", "m1")
				e.Do("XADD", e.stream(), "1-4503599627370496", "id", "m2") // 2^52
				e.deliver("me", 2)
				e.Do("XACK", e.stream(), "consumers", "1-1")
			},
			args: fixed("consumers", "1-4503599627370496"),
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 1, v)
				assert.Equal(e.t, []string{"1-1"}, e.entryIDs(e.stream()), "no trim: XDEL only")
			}},
		{name: "ack/no-group",
			setup: func(e *scriptEnv) {
				e.Do("XGROUP", "CREATE", e.stream(), "others", "0", "MKSTREAM")
				e.ids["e1"] = e.add(e.stream(), "id", "m1")
				e.ids["e2"] = e.add(e.stream(), "id", "m2")
				e.Do("XREADGROUP", "GROUP", "others", "o", "STREAMS", e.stream(), ">")
				e.Do("XACK", e.stream(), "others", e.ids["e2"])
			},
			args: func(e *scriptEnv) []any { return []any{"consumers", e.ids["e1"]} },
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 0, v, "not pending in a group that does not exist")
				assert.Equal(e.t, []string{e.ids["e2"]}, e.entryIDs(e.stream()), "deleted anyway, and another group's entries not trimmed")
			}},
		{name: "ack/no-stream", args: fixed("consumers", "1-1"),
			check: func(e *scriptEnv, v any) { assert.EqualValues(e.t, 0, v, "XACK on no stream acks nothing") }},
		{name: "ack/no-ids", setup: pending1, args: fixed("consumers"), wantErr: "Wrong number of args"},
		{name: "ack/bad-id", setup: pending1, args: fixed("consumers", "not-an-id"), wantErr: "Invalid stream ID"},
		{name: "ack/wrongtype", setup: stringAt((*scriptEnv).stream), args: fixed("consumers", "1-1"), wantErr: "WRONGTYPE"},

		// fail.lua
		{name: "fail/not-pending",
			setup: func(e *scriptEnv) {
				pending1(e)
				e.Do("XACK", e.stream(), "consumers", e.ids["e1"])
			},
			args: failArgs("retry", 0),
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 0, v)
				assert.Equal(e.t, []string{e.ids["e1"]}, e.entryIDs(e.stream()), "nothing added, nothing deleted")
				assert.Empty(e.t, e.entryIDs(e.dead()))
				assert.Empty(e.t, e.ZRange(e.delayed()))
			}},
		{name: "fail/dead", setup: pending1, args: failArgs("dead", 0),
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 1, v)
				assert.Empty(e.t, e.entryIDs(e.stream()), "acked and deleted")
				assert.Empty(e.t, e.owners())
				assert.Equal(e.t, []string{strings.Join(fields, " ")}, e.entries(e.dead()))
				assert.Equal(e.t, map[string]string{"m1": e.entryIDs(e.dead())[0]}, e.hash(e.deadIndex()))
			}},
		{name: "fail/retry-now", setup: pending1, args: failArgs("retry", 0),
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 1, v)
				assert.Equal(e.t, []string{strings.Join(fields, " ")}, e.entries(e.stream()), "re-added with the new fields")
				assert.NotEqual(e.t, []string{e.ids["e1"]}, e.entryIDs(e.stream()), "as a new entry")
				assert.Empty(e.t, e.owners())
				assert.Empty(e.t, e.ZRange(e.delayed()))
			}},
		{name: "fail/retry-delayed", setup: pending1, args: failArgs("retry", 5000),
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 1, v)
				assert.Empty(e.t, e.entryIDs(e.stream()))
				assert.Empty(e.t, e.owners())
				assert.Equal(e.t, []string{"m1"}, e.ZRange(e.delayed()))
				e.nearNow(e.score(e.delayed(), "m1"), 5000)
				assert.Equal(e.t, strings.Join(fields, " "), e.payload("m1"))
			}},
		{name: "fail/wrongtype", setup: stringAt((*scriptEnv).stream), args: fixed("consumers", "1-1", "retry", 0, "m1", "id", "m1"), wantErr: "WRONGTYPE"},

		// inspect_dead.lua
		{name: "inspect_dead/page", setup: (*scriptEnv).deadLetters, args: deadArgs("page", "", "+", 100, 10, ""),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{"", int64(3), deadEntry(e, "d1"), deadEntry(e, "d2"), deadEntry(e, "d3")}, v)
			}},
		{name: "inspect_dead/page/filter", setup: (*scriptEnv).deadLetters, args: deadArgs("page", "", "+", 100, 10, "timeout"),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{"", int64(2), deadEntry(e, "d1"), deadEntry(e, "d3")}, v, "ignoring case")
			}},
		{name: "inspect_dead/page/full", setup: (*scriptEnv).deadLetters, args: deadArgs("page", "", "+", 100, 1, ""),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{e.ids["d1"], int64(1), deadEntry(e, "d1")}, v, "the page is full: continue after it")
			}},
		{name: "inspect_dead/page/cursor", setup: (*scriptEnv).deadLetters, args: deadArgs("page", "d1", "+", 100, 10, ""),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{"", int64(2), deadEntry(e, "d2"), deadEntry(e, "d3")}, v)
			}},
		{name: "inspect_dead/page/examined", setup: (*scriptEnv).deadLetters, args: deadArgs("page", "", "+", 2, 10, "again"),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{e.ids["d2"], int64(0)}, v, "examined its share: continue after it")
			}},
		{name: "inspect_dead/page/empty", args: deadArgs("page", "", "+", 100, 10, ""),
			check: func(e *scriptEnv, v any) { assert.Equal(e.t, []any{"", int64(0)}, v) }},
		{name: "inspect_dead/requeue",
			setup: func(e *scriptEnv) {
				e.deadLetters()
				e.delay("m9", 1, "id", "m9")
			},
			args: deadArgs("requeue", "", "+", 100, 0, "timeout"),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{"", int64(2)}, v)
				assert.Equal(e.t, []string{
					"id m1 t 1000 a 1 body b1 e Timeout talking to DB",
					"id m3 t 1000 a 1 body b3 e TIMEOUT again",
				}, e.entries(e.stream()), "a fresh attempt count")
				assert.Equal(e.t, []string{e.ids["d2"]}, e.entryIDs(e.dead()))
				assert.Equal(e.t, map[string]string{"m2": e.ids["d2"]}, e.hash(e.deadIndex()))
				assert.Equal(e.t, map[string]string{"requeued": "2", "depth": "3", "deadletters": "1"}, e.hash(e.metrics()))
				e.wantTTL(e.metrics(), 7200*time.Second)
			}},
		{name: "inspect_dead/requeue/end", setup: (*scriptEnv).deadLetters, args: deadArgs("requeue", "", "d2", 100, 0, ""),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{"", int64(2)}, v, "only up to the end ID")
				assert.Equal(e.t, []string{e.ids["d3"]}, e.entryIDs(e.dead()))
				assert.Len(e.t, e.entries(e.stream()), 2)
			}},
		{name: "inspect_dead/requeue/none", setup: (*scriptEnv).deadLetters, args: deadArgs("requeue", "", "+", 100, 0, "no such error"),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{"", int64(0)}, v)
				assert.Empty(e.t, e.entries(e.stream()))
				assert.Len(e.t, e.entryIDs(e.dead()), 3)
				assert.Empty(e.t, e.hash(e.metrics()), "nothing counted")
			}},
		{name: "inspect_dead/delete", setup: (*scriptEnv).deadLetters, args: deadArgs("delete", "", "+", 100, 0, ""),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{"", int64(3)}, v)
				assert.Empty(e.t, e.entryIDs(e.dead()))
				assert.Empty(e.t, e.hash(e.deadIndex()))
				assert.Empty(e.t, e.entries(e.stream()), "deleted, not requeued")
				assert.Equal(e.t, map[string]string{"deleted": "3", "depth": "0", "deadletters": "0"}, e.hash(e.metrics()))
				e.wantTTL(e.metrics(), 7200*time.Second)
			}},
		{name: "inspect_dead/delete/index-elsewhere",
			setup: func(e *scriptEnv) {
				e.ids["d1"] = e.add(e.dead(), "id", "m1", "e", "x")
				e.add(e.dead(), "body", "no id field")
				e.Do("HSET", e.deadIndex(), "m1", "9999999999999-0") // m1 died again since
			},
			args: deadArgs("delete", "", "+", 100, 0, ""),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{"", int64(2)}, v)
				assert.Empty(e.t, e.entryIDs(e.dead()))
				assert.Equal(e.t, map[string]string{"m1": "9999999999999-0"}, e.hash(e.deadIndex()), "the newer entry's index is kept")
			}},
		{name: "inspect_dead/bad-cursor", setup: (*scriptEnv).deadLetters, args: deadArgs("page", "not-an-id", "+", 100, 10, ""), wantErr: "Invalid stream ID"},
		{name: "inspect_dead/wrongtype", setup: stringAt((*scriptEnv).dead), args: deadArgs("page", "", "+", 100, 10, ""), wantErr: "WRONGTYPE"},

		// inspect_delayed.lua
		{name: "inspect_delayed/page",
			setup: func(e *scriptEnv) {
				for i := 1; i <= 3; i++ {
					n := strconv.Itoa(i)
					e.delay("m"+n, int64(i)*1000, "id", "m"+n, "body", "b"+n)
				}
			},
			args: fixed(0, 2),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{int64(3),
					"m1", "1000", []any{"id", "m1", "body", "b1"},
					"m2", "2000", []any{"id", "m2", "body", "b2"}}, v, "the soonest due first")
			}},
		{name: "inspect_delayed/offset",
			setup: func(e *scriptEnv) {
				for i := 1; i <= 3; i++ {
					n := strconv.Itoa(i)
					e.delay("m"+n, int64(i)*1000, "id", "m"+n)
				}
			},
			args:  fixed(2, 2),
			check: func(e *scriptEnv, v any) { assert.Equal(e.t, []any{int64(3), "m3", "3000", []any{"id", "m3"}}, v) }},
		{name: "inspect_delayed/payload-gone", setup: func(e *scriptEnv) { e.delay("m1", 1000) }, args: fixed(0, 10),
			check: func(e *scriptEnv, v any) { assert.Equal(e.t, []any{int64(1), "m1", "1000", []any{}}, v, "being moved") }},
		{name: "inspect_delayed/empty", args: fixed(0, 10),
			check: func(e *scriptEnv, v any) { assert.Equal(e.t, []any{int64(0)}, v) }},
		{name: "inspect_delayed/wrongtype", setup: stringAt((*scriptEnv).delayed), args: fixed(0, 10), wantErr: "WRONGTYPE"},

		// inspect_delete.lua
		{name: "inspect_delete/found",
			setup: func(e *scriptEnv) {
				e.deadLetters()
				e.add(e.stream(), "id", "m8")
				e.delay("m9", 1, "id", "m9")
			},
			args: fixed(ttl, "m1", "m3"),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{}, v, "nothing missing")
				assert.Equal(e.t, []string{e.ids["d2"]}, e.entryIDs(e.dead()))
				assert.Equal(e.t, map[string]string{"m2": e.ids["d2"]}, e.hash(e.deadIndex()))
				assert.Equal(e.t, map[string]string{"deleted": "2", "depth": "2", "deadletters": "1"}, e.hash(e.metrics()))
				e.wantTTL(e.metrics(), 7200*time.Second)
			}},
		{name: "inspect_delete/missing", setup: (*scriptEnv).deadLetters, args: fixed(ttl, "m1", "nope"),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{"nope"}, v)
				assert.Len(e.t, e.entryIDs(e.dead()), 2)
				assert.Equal(e.t, "1", e.hash(e.metrics())["deleted"], "the found one counted")
			}},
		{name: "inspect_delete/stale-index",
			setup: func(e *scriptEnv) { e.Do("HSET", e.deadIndex(), "m1", "1-1") },
			args:  fixed(ttl, "m1"),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{"m1"}, v, "the index named an entry that is gone")
				assert.Empty(e.t, e.hash(e.deadIndex()), "the stale index entry is removed")
				assert.Empty(e.t, e.hash(e.metrics()), "nothing counted")
			}},
		{name: "inspect_delete/wrongtype", setup: stringAt((*scriptEnv).deadIndex), args: fixed(ttl, "m1"), wantErr: "WRONGTYPE"},

		// inspect_info.lua
		{name: "inspect_info/empty", args: fixed("consumers"),
			check: func(e *scriptEnv, v any) {
				r := arr(e.t, v)
				require.Len(e.t, r, 10)
				e.nearNow(r[5], 0)
				r[5] = "now"
				assert.Equal(e.t, []any{int64(0), int64(0), int64(0), int64(0), "", "now", "", int64(0), "", ""}, r, "no stream: XINFO's error is caught")
			}},
		{name: "inspect_info/full",
			setup: func(e *scriptEnv) {
				e.group()
				e.Do("XGROUP", "CREATE", e.stream(), "other", "0")
				for i := 1; i <= 3; i++ {
					e.ids["e"+strconv.Itoa(i)] = e.add(e.stream(), "id", "m"+strconv.Itoa(i))
				}
				e.deliver("c1", 2)
				e.delay("m9", 1, "id", "m9")
				e.ids["d1"] = e.add(e.dead(), "id", "m0")
				e.Do("SET", e.paused(), "123|me")
			},
			args: fixed("consumers"),
			check: func(e *scriptEnv, v any) {
				r := arr(e.t, v)
				require.Len(e.t, r, 10)
				e.nearNow(r[5], 0)
				r[5] = "now"
				assert.Equal(e.t, []any{int64(3), int64(2), int64(1), int64(1), e.ids["e1"], "now", "123|me", int64(1), e.ids["d1"], e.ids["e2"]}, r)
			}},
		{name: "inspect_info/no-group",
			setup: func(e *scriptEnv) {
				e.add(e.stream(), "id", "m1")
				e.Do("XGROUP", "CREATE", e.stream(), "other", "0")
				e.C.XReadGroup(e.Ctx, &redis.XReadGroupArgs{Group: "other", Consumer: "c", Streams: []string{e.stream(), ">"}})
			},
			args: fixed("consumers"),
			check: func(e *scriptEnv, v any) {
				r := arr(e.t, v)
				require.Len(e.t, r, 10)
				assert.Equal(e.t, []any{int64(1), int64(0)}, r[:2], "another group's pending is not ours")
				assert.Equal(e.t, []any{int64(0), "", ""}, []any{r[7], r[8], r[9]})
			}},
		{name: "inspect_info/wrongtype", setup: stringAt((*scriptEnv).stream), args: fixed("consumers"), wantErr: "WRONGTYPE"},

		// leave.lua
		{name: "leave/named",
			setup: func(e *scriptEnv) {
				e.group()
				e.Do("XGROUP", "CREATECONSUMER", e.stream(), "consumers", "me")
				e.add(e.wake(), "w", "1")
			},
			args: fixed("consumers", "me", 0),
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 1, v)
				assert.Empty(e.t, e.consumers())
				assert.Empty(e.t, e.entryIDs(e.wake()), "wake stream deleted")
			}},
		{name: "leave/named/pending",
			setup: func(e *scriptEnv) {
				pending1(e)
				e.add(e.wake(), "w", "1")
			},
			args: fixed("consumers", "me", 0),
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 0, v)
				assert.Equal(e.t, []string{"me"}, e.consumers(), "kept: its message keeps its owner")
				assert.Empty(e.t, e.entryIDs(e.wake()), "wake stream deleted anyway")
			}},
		{name: "leave/named/no-wake-key",
			setup: func(e *scriptEnv) {
				e.group()
				e.Do("XGROUP", "CREATECONSUMER", e.stream(), "consumers", "me")
			},
			keys: func(e *scriptEnv) []string { return []string{e.stream()} },
			args: fixed("consumers", "me", 0),
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 1, v)
				assert.Empty(e.t, e.consumers())
			}},
		{name: "leave/named/unknown", setup: (*scriptEnv).group, args: fixed("consumers", "ghost", 0),
			check: func(e *scriptEnv, v any) { assert.EqualValues(e.t, 1, v, "nothing pending: counted as removed") }},
		{name: "leave/named/no-group", args: fixed("consumers", "me", 0), wantErr: "NOGROUP"},
		{name: "leave/sweep",
			setup: func(e *scriptEnv) {
				pending1(e)
				e.Do("XGROUP", "CREATECONSUMER", e.stream(), "consumers", "idle1")
				e.Do("XGROUP", "CREATECONSUMER", e.stream(), "consumers", "idle2")
			},
			keys: func(e *scriptEnv) []string { return []string{e.stream()} },
			args: fixed("consumers", "", 0),
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 2, v)
				assert.Equal(e.t, []string{"me"}, e.consumers(), "the one with a pending message stays")
			}},
		{name: "leave/sweep/recent",
			setup: func(e *scriptEnv) {
				e.group()
				e.Do("XGROUP", "CREATECONSUMER", e.stream(), "consumers", "fresh")
			},
			keys: func(e *scriptEnv) []string { return []string{e.stream()} },
			args: fixed("consumers", "", 600000),
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 0, v)
				assert.Equal(e.t, []string{"fresh"}, e.consumers(), "idle for less than ARGV[3]")
			}},
		{name: "leave/sweep/no-group", keys: func(e *scriptEnv) []string { return []string{e.stream()} },
			setup: func(e *scriptEnv) { e.add(e.stream(), "id", "m1") }, args: fixed("consumers", "", 0), wantErr: "NOGROUP"},

		// move.lua
		{name: "move/none", args: fixed(200),
			check: func(e *scriptEnv, v any) { assert.Equal(e.t, []any{int64(0), int64(-1)}, v) }},
		{name: "move/due", setup: func(e *scriptEnv) { e.delay("m1", 1, "id", "m1", "body", "x") }, args: fixed(200),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{int64(1), int64(-1)}, v)
				assert.Equal(e.t, []string{"id m1 body x"}, e.entries(e.stream()))
				assert.Empty(e.t, e.ZRange(e.delayed()))
				assert.Empty(e.t, e.hash(e.payloads()))
			}},
		{name: "move/due-and-later",
			setup: func(e *scriptEnv) {
				e.delay("m1", 1, "id", "m1")
				e.delay("m2", e.redisTime()+60000, "id", "m2")
			},
			args: fixed(200),
			check: func(e *scriptEnv, v any) {
				r := arr(e.t, v)
				require.Len(e.t, r, 2)
				assert.EqualValues(e.t, 1, r[0])
				wait, _ := r[1].(int64)
				assert.True(e.t, wait > 50000 && wait <= 60000, "ms until m2 is due: %d", wait)
				assert.Equal(e.t, []string{"m2"}, e.ZRange(e.delayed()))
				assert.Equal(e.t, "id m2", e.payload("m2"))
			}},
		{name: "move/payload-gone", setup: func(e *scriptEnv) { e.delay("m1", 1) }, args: fixed(200),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{int64(1), int64(-1)}, v)
				assert.Empty(e.t, e.entries(e.stream()), "nothing to add")
				assert.Empty(e.t, e.ZRange(e.delayed()), "dropped from the set")
			}},
		{name: "move/limit",
			setup: func(e *scriptEnv) {
				for i := 1; i <= 3; i++ {
					e.delay("m"+strconv.Itoa(i), int64(i), "id", "m"+strconv.Itoa(i))
				}
			},
			args: fixed(2),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{int64(2), int64(0)}, v, "more are due now")
				assert.Equal(e.t, []string{"id m1", "id m2"}, e.entries(e.stream()))
				assert.Equal(e.t, []string{"m3"}, e.ZRange(e.delayed()))
			}},
		{name: "move/wrongtype", setup: stringAt((*scriptEnv).delayed), args: fixed(200), wantErr: "WRONGTYPE"},

		// publish.lua
		{name: "publish/ok",
			keys: func(e *scriptEnv) []string { return append(scriptKeys["publish"](e), e.metrics()) },
			args: fixed(publishArgs(0, ttl, pub("m1", 0, 0, 0, 0, "body", "a"), pub("m2", 0, 0, 0, 0, "body", "b", "h:k", "v"))...),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{"ok", "ok"}, v)
				assert.Equal(e.t, []string{"id m1 body a", "id m2 body b h:k v"}, e.entries(e.stream()))
				e.wantTTL(e.call(), time.Minute)
				assert.Equal(e.t, map[string]string{"published": "2", "depth": "2"}, e.hash(e.metrics()))
				e.wantTTL(e.metrics(), 7200*time.Second)
			}},
		{name: "publish/delayed", args: fixed(publishArgs(0, "", pub("m1", 0, 0, 0, 5000, "body", "a"))...),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{"ok"}, v)
				assert.Empty(e.t, e.entries(e.stream()))
				assert.Equal(e.t, []string{"m1"}, e.ZRange(e.delayed()))
				e.nearNow(e.score(e.delayed(), "m1"), 5000)
				p := strings.Fields(e.payload("m1"))
				require.Len(e.t, p, 6, "payload %v", p)
				assert.Equal(e.t, []string{"id", "m1", "t"}, p[:3])
				e.nearNow(p[3], 0)
				assert.Equal(e.t, []string{"body", "a"}, p[4:])
			}},
		{name: "publish/no-metrics", args: fixed(publishArgs(0, "", pub("m1", 0, 0, 0, 0, "body", "a"))...),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{"ok"}, v)
				assert.Len(e.t, e.entries(e.stream()), 1)
				assert.Empty(e.t, e.hash(e.metrics()))
			}},
		{name: "publish/metrics-wrongtype",
			setup: stringAt((*scriptEnv).metrics),
			keys:  func(e *scriptEnv) []string { return append(scriptKeys["publish"](e), e.metrics()) },
			args:  fixed(publishArgs(0, ttl, pub("m1", 0, 0, 0, 0, "body", "a"))...),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{"ok"}, v, "counting must not fail the publish")
				assert.Len(e.t, e.entries(e.stream()), 1)
				assert.Equal(e.t, "not the right type", e.Get(e.metrics()))
			}},
		{name: "publish/repeat",
			setup: func(e *scriptEnv) {
				keys := append(scriptKeys["publish"](e), e.metrics())
				err := queue.Scripts["publish"].Run(e.Ctx, e.C, keys, publishArgs(0, ttl, pub("m1", 0, 0, 0, 0, "body", "a"))...).Err()
				require.NoError(e.t, err)
				e.Do("PEXPIRE", e.call(), 1000)
			},
			keys: func(e *scriptEnv) []string { return append(scriptKeys["publish"](e), e.metrics()) },
			args: fixed(publishArgs(0, ttl, pub("m1", 0, 0, 0, 0, "body", "a"))...),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{"ok"}, v, "the first call's results")
				assert.Len(e.t, e.entries(e.stream()), 1, "added once")
				assert.Greater(e.t, e.PTTL(e.call()), 30*time.Second, "the call key renewed")
				assert.Equal(e.t, "1", e.hash(e.metrics())["published"], "counted once")
			}},
		{name: "publish/id",
			keys: func(e *scriptEnv) []string { return append(scriptKeys["publish"](e), e.idKey("m1")) },
			args: fixed(publishArgs(0, "", pub("m1", 5, 0, 0, 0, "body", "a"))...),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{"ok"}, v)
				assert.Equal(e.t, "ok", e.Get(e.idKey("m1")))
				e.wantTTL(e.idKey("m1"), time.Minute)
			}},
		{name: "publish/id/seen",
			setup: func(e *scriptEnv) { e.Do("SET", e.idKey("m1"), "dup:m0", "PX", 60000) },
			keys:  func(e *scriptEnv) []string { return append(scriptKeys["publish"](e), e.idKey("m1")) },
			args:  fixed(publishArgs(0, "", pub("m1", 5, 0, 0, 0, "body", "a"))...),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{"dup:m0"}, v, "the first publish's result")
				assert.Empty(e.t, e.entries(e.stream()), "nothing added")
				e.wantTTL(e.call(), time.Minute)
			}},
		{name: "publish/dedup",
			keys: func(e *scriptEnv) []string { return append(scriptKeys["publish"](e), e.dedupKey("k")) },
			args: fixed(publishArgs(0, "", pub("m1", 0, 5, 30000, 0, "body", "a"))...),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{"ok"}, v)
				assert.Equal(e.t, "m1", e.Get(e.dedupKey("k")))
				e.wantTTL(e.dedupKey("k"), 30*time.Second)
			}},
		{name: "publish/dedup/dup",
			setup: func(e *scriptEnv) { e.Do("SET", e.dedupKey("k"), "m0", "PX", 60000) },
			keys: func(e *scriptEnv) []string {
				return append(scriptKeys["publish"](e), e.idKey("m1"), e.dedupKey("k"))
			},
			args: fixed(publishArgs(0, "", pub("m1", 5, 6, 30000, 0, "body", "a"))...),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{"dup:m0"}, v)
				assert.Empty(e.t, e.entries(e.stream()))
				assert.Equal(e.t, "m0", e.Get(e.dedupKey("k")), "the dedup key is left")
				assert.Equal(e.t, "dup:m0", e.Get(e.idKey("m1")), "the id key remembers the result")
				e.wantTTL(e.call(), time.Minute)
			}},
		{name: "publish/full",
			setup: func(e *scriptEnv) { e.delay("m0", 1, "id", "m0") },
			keys:  func(e *scriptEnv) []string { return append(scriptKeys["publish"](e), e.idKey("m1"), e.metrics()) },
			args:  fixed(publishArgs(1, ttl, pub("m1", 5, 0, 0, 0, "body", "a"))...),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{"full"}, v, "delayed messages count in the backlog")
				assert.Empty(e.t, e.entries(e.stream()))
				assert.Empty(e.t, e.Get(e.call()), "a full call is not remembered: a retry may succeed")
				assert.Empty(e.t, e.Get(e.idKey("m1")))
				assert.Empty(e.t, e.hash(e.metrics()))
			}},
		{name: "publish/full/partly",
			setup: func(e *scriptEnv) { e.add(e.stream(), "id", "m0") },
			args:  fixed(publishArgs(2, "", pub("m1", 0, 0, 0, 0, "body", "a"), pub("m2", 0, 0, 0, 0, "body", "b"))...),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{"ok", "full"}, v)
				assert.Equal(e.t, []string{"id m0", "id m1 body a"}, e.entries(e.stream()))
				e.wantTTL(e.call(), time.Minute)
			}},
		{name: "publish/wrongtype", setup: stringAt((*scriptEnv).stream),
			args: fixed(publishArgs(0, "", pub("m1", 0, 0, 0, 0, "body", "a"))...), wantErr: "WRONGTYPE"},

		{name: "publish/plain",
			setup: func(e *scriptEnv) { e.delay("m0", 1, "id", "m0") },
			keys:  withMetrics,
			args:  fixed(plainArgs(ttl, "a", "b")...),
			check: func(e *scriptEnv, v any) {
				ids := e.entryIDs(e.stream())
				assert.Equal(e.t, strings.Join(ids, ","), v, "the entry IDs, in order")
				assert.Equal(e.t, []string{"body a", "body b"}, e.entries(e.stream()), "no id field: the entry ID is the message's")
				assert.Equal(e.t, v, e.Get(e.call()))
				e.wantTTL(e.call(), time.Minute)
				assert.Equal(e.t, map[string]string{"published": "2", "depth": "3"}, e.hash(e.metrics()), "delayed messages in the depth")
				e.wantTTL(e.metrics(), 7200*time.Second)
			}},
		{name: "publish/plain/repeat",
			setup: func(e *scriptEnv) {
				first, err := queue.Scripts["publish"].Run(e.Ctx, e.C, withMetrics(e), plainArgs(ttl, "a", "b")...).Text()
				require.NoError(e.t, err)
				e.ids["first"] = first
				e.Do("PEXPIRE", e.call(), 1000)
			},
			keys: withMetrics,
			args: fixed(plainArgs(ttl, "a", "b")...),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, e.ids["first"], v, "the first call's IDs")
				assert.Equal(e.t, []string{"body a", "body b"}, e.entries(e.stream()), "added once")
				assert.Greater(e.t, e.PTTL(e.call()), 30*time.Second, "the call key renewed")
				assert.Equal(e.t, "2", e.hash(e.metrics())["published"], "counted once")
			}},
		{name: "publish/plain/no-metrics", args: fixed(plainArgs("", "a")...),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, strings.Join(e.entryIDs(e.stream()), ","), v)
				assert.Equal(e.t, []string{"body a"}, e.entries(e.stream()))
				assert.Empty(e.t, e.hash(e.metrics()))
			}},
		{name: "publish/plain/metrics-wrongtype", setup: stringAt((*scriptEnv).metrics), keys: withMetrics,
			args: fixed(plainArgs(ttl, "a")...),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, strings.Join(e.entryIDs(e.stream()), ","), v, "counting must not fail the publish")
				assert.Equal(e.t, []string{"body a"}, e.entries(e.stream()))
				assert.Equal(e.t, "not the right type", e.Get(e.metrics()))
			}},
		{name: "publish/plain/wrongtype", setup: stringAt((*scriptEnv).stream),
			args: fixed(plainArgs("", "a")...), wantErr: "WRONGTYPE"},

		// renew.lua
		{name: "renew/own",
			setup: func(e *scriptEnv) {
				pending1(e)
				e.Do("XCLAIM", e.stream(), "consumers", "me", 0, e.ids["e1"], "IDLE", 100000, "JUSTID")
			},
			args: func(e *scriptEnv) []any { return []any{"consumers", "me", e.ids["e1"]} },
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{}, v)
				assert.Less(e.t, e.idle(e.ids["e1"]), 50*time.Second, "idle time reset")
				assert.Equal(e.t, map[string]string{e.ids["e1"]: "me"}, e.owners())
			}},
		{name: "renew/lost",
			setup: func(e *scriptEnv) {
				pending1(e)
				e.Do("XCLAIM", e.stream(), "consumers", "other", 0, e.ids["e1"], "IDLE", 100000, "JUSTID")
				e.ids["e2"] = e.add(e.stream(), "id", "m2")
				e.deliver("me", 1)
				e.Do("XACK", e.stream(), "consumers", e.ids["e2"])
			},
			args: func(e *scriptEnv) []any { return []any{"consumers", "me", e.ids["e1"], e.ids["e2"]} },
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{e.ids["e1"], e.ids["e2"]}, v, "reclaimed by another, and settled")
				assert.Equal(e.t, map[string]string{e.ids["e1"]: "other"}, e.owners())
				assert.Greater(e.t, e.idle(e.ids["e1"]), 50*time.Second, "another's lease is not renewed")
			}},
		{name: "renew/none", setup: (*scriptEnv).group, args: fixed("consumers", "me"),
			check: func(e *scriptEnv, v any) { assert.Equal(e.t, []any{}, v) }},
		{name: "renew/no-group", setup: func(e *scriptEnv) { e.add(e.stream(), "id", "m1") }, args: fixed("consumers", "me", "1-1"), wantErr: "NOGROUP"},

		// requeue.lua
		{name: "requeue/ids", setup: (*scriptEnv).deadLetters, args: fixed("ids", "m1", "m2"),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{}, v)
				assert.Equal(e.t, []string{
					"id m1 t 1000 a 1 body b1 e Timeout talking to DB",
					"id m2 t 1000 a 1 body b2 e bad input",
				}, e.entries(e.stream()), "a fresh attempt count, the last error kept")
				assert.Equal(e.t, []string{e.ids["d3"]}, e.entryIDs(e.dead()))
				assert.Equal(e.t, map[string]string{"m3": e.ids["d3"]}, e.hash(e.deadIndex()))
			}},
		{name: "requeue/ids/missing", setup: (*scriptEnv).deadLetters, args: fixed("ids", "nope", "m1"),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{"nope"}, v)
				assert.Len(e.t, e.entries(e.stream()), 1)
			}},
		{name: "requeue/ids/stale-index", setup: func(e *scriptEnv) { e.Do("HSET", e.deadIndex(), "m1", "1-1") }, args: fixed("ids", "m1"),
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{"m1"}, v)
				assert.Empty(e.t, e.hash(e.deadIndex()), "the stale index entry is removed")
				assert.Empty(e.t, e.entries(e.stream()))
			}},
		{name: "requeue/entries", setup: (*scriptEnv).deadLetters,
			args: func(e *scriptEnv) []any { return []any{"entries", e.ids["d2"], "1-1"} },
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{"1-1"}, v)
				assert.Equal(e.t, []string{"id m2 t 1000 a 1 body b2 e bad input"}, e.entries(e.stream()))
				assert.Equal(e.t, []string{e.ids["d1"], e.ids["d3"]}, e.entryIDs(e.dead()))
				assert.Equal(e.t, map[string]string{"m1": e.ids["d1"], "m3": e.ids["d3"]}, e.hash(e.deadIndex()))
			}},
		{name: "requeue/entries/index-elsewhere",
			setup: func(e *scriptEnv) {
				e.ids["d1"] = e.add(e.dead(), "id", "m1", "a", "4")
				e.ids["bare"] = e.add(e.dead(), "body", "no id, no attempt")
				e.Do("HSET", e.deadIndex(), "m1", "9999999999999-0") // m1 died again since
			},
			args: func(e *scriptEnv) []any { return []any{"entries", e.ids["d1"], e.ids["bare"]} },
			check: func(e *scriptEnv, v any) {
				assert.Equal(e.t, []any{}, v)
				assert.Equal(e.t, []string{"id m1 a 1", "body no id, no attempt"}, e.entries(e.stream()))
				assert.Equal(e.t, map[string]string{"m1": "9999999999999-0"}, e.hash(e.deadIndex()), "the newer entry's index is kept")
			}},
		{name: "requeue/entries/bad-id", setup: (*scriptEnv).deadLetters, args: fixed("entries", "not-an-id"), wantErr: "Invalid stream ID"},
		{name: "requeue/wrongtype", setup: stringAt((*scriptEnv).dead),
			args: fixed("entries", "1-1"), wantErr: "WRONGTYPE"},

		// stats.lua
		{name: "stats/empty", args: fixed("consumers"),
			check: func(e *scriptEnv, v any) {
				r := arr(e.t, v)
				require.Len(e.t, r, 6)
				e.nearNow(r[5], 0)
				assert.Equal(e.t, []any{int64(0), int64(0), int64(0), int64(0), ""}, r[:5], "XPENDING's error is caught")
			}},
		{name: "stats/full",
			setup: func(e *scriptEnv) {
				e.group()
				for i := 1; i <= 3; i++ {
					e.ids["e"+strconv.Itoa(i)] = e.add(e.stream(), "id", "m"+strconv.Itoa(i))
				}
				e.deliver("me", 2)
				e.delay("m9", 1, "id", "m9")
				e.add(e.dead(), "id", "m7")
				e.add(e.dead(), "id", "m8")
			},
			args: fixed("consumers"),
			check: func(e *scriptEnv, v any) {
				r := arr(e.t, v)
				require.Len(e.t, r, 6)
				e.nearNow(r[5], 0)
				assert.Equal(e.t, []any{int64(3), int64(2), int64(1), int64(2), e.ids["e1"]}, r[:5])
			}},
		{name: "stats/no-group", setup: func(e *scriptEnv) { e.add(e.stream(), "id", "m1") }, args: fixed("consumers"),
			check: func(e *scriptEnv, v any) {
				r := arr(e.t, v)
				require.Len(e.t, r, 6)
				assert.Equal(e.t, []any{int64(1), int64(0)}, r[:2])
			}},
		{name: "stats/wrongtype", setup: stringAt((*scriptEnv).delayed), args: fixed("consumers"), wantErr: "WRONGTYPE"},

		// tally.lua
		{name: "tally/count",
			setup: func(e *scriptEnv) {
				e.Do("HSET", e.metrics(), "acked", 5)
				e.add(e.stream(), "id", "m1")
				e.delay("m2", 1, "id", "m2")
				e.add(e.dead(), "id", "m3")
			},
			args: fixed(ttl, "acked", 2, "dead", 1),
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 1, v)
				assert.Equal(e.t, map[string]string{"acked": "7", "dead": "1", "depth": "2", "deadletters": "1"}, e.hash(e.metrics()))
				e.wantTTL(e.metrics(), 7200*time.Second)
			}},
		{name: "tally/depth-only", args: fixed(ttl),
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 1, v)
				assert.Equal(e.t, map[string]string{"depth": "0", "deadletters": "0"}, e.hash(e.metrics()))
			}},
		{name: "tally/wrongtype", setup: stringAt((*scriptEnv).metrics), args: fixed(ttl, "acked", 1),
			check: func(e *scriptEnv, v any) {
				assert.EqualValues(e.t, 1, v, "counting must not fail the settlements")
				assert.Equal(e.t, "not the right type", e.Get(e.metrics()))
			}},
	}
}

// TestScriptBranches runs every branch of every script in scripts/ by hand,
// on a single node and on a Cluster, and checks the reply (or the error
// reply) and the keys each leaves behind. A branch that does not run (a
// typo, an undefined global) or that does something else fails here. The
// scripts' header comments name these subtests.
func TestScriptBranches(t *testing.T) {
	cases := scriptCases()
	for _, topo := range []struct {
		name string
		mk   func(testing.TB) *redistest.DB
	}{{"single", redistest.New}, {"cluster", redistest.NewCluster}} {
		db := topo.mk(t)
		for i, tc := range cases {
			t.Run("topology="+topo.name+"/"+tc.name, func(t *testing.T) {
				runScriptCase(t, db, "s"+strconv.Itoa(i), tc, queue.Scripts[tc.script()])
			})
		}
	}
}

// runScriptCase runs one case against script (the case's own, or a
// mutant of it), with its keys under the hash tag {tag}.
func runScriptCase(t testing.TB, db *redistest.DB, tag string, tc scriptCase, script *redis.Script) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e := &scriptEnv{Peek: redistest.Peek{TB: t, Ctx: ctx, C: db.Client}, t: t, base: db.Prefix + "{" + tag + "}:", ids: map[string]string{}}
	if tc.setup != nil {
		tc.setup(e)
	}
	keys := scriptKeys[tc.script()](e)
	if tc.keys != nil {
		keys = tc.keys(e)
	}
	var args []any
	if tc.args != nil {
		args = tc.args(e)
	}
	require.NotNil(t, script, "no script %q", tc.script())
	e.now = e.redisTime()
	v, err := script.Run(ctx, db.Client, keys, args...).Result()
	if tc.wantErr != "" {
		require.Error(t, err, "reply %v", v)
		assert.Contains(t, err.Error(), tc.wantErr)
		return
	}
	require.NoError(t, err, "the %s script's branch must run", tc.script())
	tc.check(e, v)
}

// TestScriptHeaders checks each script's header comment: it documents
// every KEYS and ARGV element the script reads (and none it does not), its
// replies and its errors, and names exactly its TestScriptBranches cases.
// Every script in scripts/ is embedded and has cases.
func TestScriptHeaders(t *testing.T) {
	var names []string
	for _, c := range scriptCases() {
		names = append(names, c.name)
	}
	files, err := filepath.Glob("scripts/*.lua")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	seen := map[string]bool{}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".lua")
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(f)
			require.NoError(t, err)
			s, ok := queue.Scripts[name]
			require.True(t, ok, "%s is not in queue.Scripts", f)
			assert.Equal(t, redis.NewScript(string(src)).Hash(), s.Hash(), "the embedded script is %s", f)
			assert.Empty(t, redistest.ScriptHeaderProblems(name, string(src), names))
			assert.NotEmpty(t, redistest.ParseScriptHeader(name, string(src)).Cases, "no test case")
		})
	}
	for name := range queue.Scripts {
		assert.True(t, seen[name], "queue.Scripts has %s, not in scripts/", name)
	}
	for _, n := range names {
		s, _, _ := strings.Cut(n, "/")
		assert.True(t, seen[s], "case %s names no script", n)
	}
}
