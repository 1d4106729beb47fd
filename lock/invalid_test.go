package lock_test

import (
	"context"
	"errors"
	"log/slog"
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

func hashOf(src string) string { return redis.NewScript(src).Hash() }

// fenceAsHash puts a hash where the fencing counter of key "k" goes.
func fenceAsHash(t *testing.T, c redis.UniversalClient, prefix string) {
	require.NoError(t, c.HSet(context.Background(), prefix+"{k}:fence", "f", "v").Err())
}

func tryAcquireK(ctx context.Context, l *lock.RedisLocker, _ *lock.Lock) error {
	_, err := l.TryAcquire(ctx, "k", time.Minute)
	return err
}

func acquireK(ctx context.Context, l *lock.RedisLocker, _ *lock.Lock) error {
	_, err := l.Acquire(ctx, "k", time.Minute)
	return err
}

// TestInvalidFailsLoudly: when Redis' answer means that a lock script, the
// key's data or a reply is wrong, every operation returns the error
// (wrapped, naming the operation and the key), runs the script once (no
// retry, no fallback), counts it in Stats.Invalid, logs it once per kind at
// Error level, and never counts it as Redis being unavailable. On a single
// node and on a Cluster.
func TestInvalidFailsLoudly(t *testing.T) {
	leakCheck(t)
	const calls = 3
	cases := []struct {
		name   string
		op     string // the operation named in the error and the log
		script string // the script whose runs are counted: a lock script's name, or the source given to SetScript
		src    string // replaces script, if set
		// breakKey makes the key's data unusable (prefix is the locker's)
		breakKey func(t *testing.T, c redis.UniversalClient, prefix string)
		call     func(ctx context.Context, l *lock.RedisLocker, held *lock.Lock) error
		want     string // in the error
	}{
		{name: "acquire-script-error/try", op: "acquire", script: "acquire", src: redistest.BrokenScript, want: "user_script",
			call: tryAcquireK},
		{name: "acquire-script-error/wait", op: "acquire", script: "acquire", src: redistest.BrokenScript, want: "user_script",
			call: acquireK},
		{name: "acquire-reply-shape", op: "acquire", script: "acquire", src: "return {1}", want: "unexpected reply",
			call: tryAcquireK},
		{name: "acquire-wrong-type/try", op: "acquire", script: "acquire", want: "WRONGTYPE",
			breakKey: fenceAsHash,
			call:     tryAcquireK},
		{name: "acquire-wrong-type/wait", op: "acquire", script: "acquire", want: "WRONGTYPE",
			breakKey: fenceAsHash,
			call:     acquireK},
		{name: "refresh-script-error", op: "refresh", script: "refresh", src: redistest.BrokenScript, want: "user_script",
			call: func(ctx context.Context, _ *lock.RedisLocker, h *lock.Lock) error { return h.Refresh(ctx, time.Minute) }},
		{name: "refresh-reply-shape", op: "refresh", script: "refresh", src: "return 'x'", want: "unexpected reply",
			call: func(ctx context.Context, _ *lock.RedisLocker, h *lock.Lock) error { return h.Refresh(ctx, time.Minute) }},
		{name: "release-script-error", op: "release", script: "release", src: redistest.BrokenScript, want: "user_script",
			call: func(ctx context.Context, _ *lock.RedisLocker, h *lock.Lock) error { return h.Release(ctx) }},
		{name: "release-reply-shape", op: "release", script: "release", src: "return {5}", want: "unexpected reply",
			call: func(ctx context.Context, _ *lock.RedisLocker, h *lock.Lock) error { return h.Release(ctx) }},
		{name: "ttl-script-error", op: "ttl", script: "pttl", src: redistest.BrokenScript, want: "user_script",
			call: func(ctx context.Context, _ *lock.RedisLocker, h *lock.Lock) error { _, err := h.TTL(ctx); return err }},
	}
	for _, topo := range []struct {
		name string
		mk   func(testing.TB) *redistest.DB
	}{{"single", redistest.New}, {"cluster", redistest.NewCluster}} {
		db := topo.mk(t)
		for i, tc := range cases {
			t.Run("topology="+topo.name+"/"+tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				c := db.NewClient(t)
				runs := redistest.NewScriptRuns()
				c.AddHook(runs)
				logger, logs := redistest.NewLogs()
				prefix := db.Prefix + "inv" + strconv.Itoa(i) + ":"
				l, err := lock.New(c, lock.WithPrefix(prefix), lock.WithLogger(logger))
				require.NoError(t, err)
				var held *lock.Lock
				if tc.op != "acquire" {
					held, err = l.TryAcquire(ctx, "k", time.Minute)
					require.NoError(t, err)
				}
				sha := lock.Script(tc.script).Hash()
				if tc.src != "" {
					lock.SetScript(l, tc.script, tc.src)
					sha = hashOf(tc.src)
				}
				if tc.breakKey != nil {
					tc.breakKey(t, c, prefix)
				}
				before := l.Stats()
				for n := 1; n <= calls; n++ {
					err := tc.call(ctx, l, held)
					require.Errorf(t, err, "call %d: got no error, want the invalid reply", n)
					assert.Contains(t, err.Error(), tc.want)
					assert.Contains(t, err.Error(), "lock: "+tc.op+` "k"`)
					assert.NotErrorIs(t, err, lock.ErrNotAcquired, "not a lock held by another owner")
					assert.NotErrorIs(t, err, context.DeadlineExceeded, "returned at once, not after waiting")
					assert.EqualValues(t, n, runs.Runs(sha), "call %d: the %s script ran %d times, want once a call (no retry)", n, tc.script, runs.Runs(sha))
				}
				st := l.Stats()
				assert.EqualValues(t, calls, st.Invalid-before.Invalid, "Stats.Invalid: %+v", st)
				assert.Zero(t, st.Errors, "counted as Redis unavailable: %+v", st)
				assert.Zero(t, st.NotAcquired, "counted as not acquired: %+v", st)
				assert.Len(t, logs.With(slog.LevelError, "op", tc.op), 1, "Error records for %s, want one per kind:\n%s", tc.op, logs)

				if tc.breakKey != nil {
					// Only that key is broken: the locker still works.
					other, err := l.TryAcquire(ctx, "other", time.Minute)
					require.NoError(t, err)
					require.NoError(t, other.Release(ctx))
				}
				if held != nil && tc.op != "release" {
					require.NoError(t, held.Release(ctx), "the lock is still ours")
				}
			})
		}
	}
}

// TestInvalidAutoRefreshLosesLock: an auto-refresh that Redis refuses with
// an invalid error is not retried: Lost closes at once (before the local
// deadline) and Err says why; Do cancels fn's context with that cause and
// returns it. A refresh that fails because Redis is unavailable is retried
// (TestUnavailableStillDegrades).
func TestInvalidAutoRefreshLosesLock(t *testing.T) {
	leakCheck(t)
	db := redistest.New(t)
	ttl := 3 * time.Second
	setup := func(t *testing.T, name string) (*lock.RedisLocker, *redistest.ScriptRuns, *redistest.Logs) {
		c := db.NewClient(t)
		runs := redistest.NewScriptRuns()
		c.AddHook(runs)
		logger, logs := redistest.NewLogs()
		l, err := lock.New(c, lock.WithPrefix(db.Prefix+name+":"), lock.WithAutoRefresh(true), lock.WithLogger(logger))
		require.NoError(t, err)
		lock.SetScript(l, "refresh", redistest.BrokenScript)
		return l, runs, logs
	}
	checkCause := func(t *testing.T, err error) {
		t.Helper()
		require.ErrorIs(t, err, lock.ErrLockLost)
		assert.Contains(t, err.Error(), "user_script")
		assert.Contains(t, err.Error(), `lock: refresh "k"`)
		assert.NotContains(t, err.Error(), "deadline", "lost to the refused refresh, not to the deadline")
	}

	t.Run("lock", func(t *testing.T) {
		l, runs, logs := setup(t, "lock")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		lk, err := l.TryAcquire(ctx, "k", ttl)
		require.NoError(t, err)
		require.NoError(t, lk.Err())
		select {
		case <-lk.Lost():
		case <-ctx.Done():
			t.Fatal("Lost not closed")
		}
		checkCause(t, lk.Err())
		assert.EqualValues(t, 1, runs.Runs(hashOf(redistest.BrokenScript)), "the refused refresh was retried")
		st := l.Stats()
		assert.EqualValues(t, 1, st.Invalid)
		assert.Zero(t, st.Errors)
		assert.EqualValues(t, 1, st.Lost)
		assert.Len(t, logs.With(slog.LevelError, "op", "refresh"), 1, logs.String())
		require.NoError(t, lk.Release(ctx), "released in Redis: the release script works")
		require.ErrorIs(t, lk.Err(), lock.ErrReleased)
	})

	t.Run("do", func(t *testing.T) {
		l, runs, _ := setup(t, "do")
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var cause error
		err := l.Do(ctx, "k", ttl, func(fctx context.Context, _ uint64) error {
			select {
			case <-fctx.Done():
				cause = context.Cause(fctx)
				return fctx.Err()
			case <-ctx.Done():
				return errors.New("fn's context was not cancelled")
			}
		})
		checkCause(t, cause)
		checkCause(t, err)
		assert.ErrorIs(t, err, context.Canceled, "fn's own error is joined")
		assert.EqualValues(t, 1, runs.Runs(hashOf(redistest.BrokenScript)))
		b, err := l.TryAcquire(ctx, "k", time.Second)
		require.NoError(t, err, "Do released the lock")
		require.NoError(t, b.Release(ctx))
	})
}

// TestInvalidWakeUp: a waiter whose wake list Redis cannot read as a list
// (WRONGTYPE), or that receives a message no release sends, leaves the
// queue and fails instead of falling back to polling.
func TestInvalidWakeUp(t *testing.T) {
	leakCheck(t)
	db := redistest.New(t)
	cases := []struct {
		name    string
		op      string
		corrupt func(ctx context.Context, c redis.UniversalClient, wake string) error
		want    string
	}{
		{name: "wrong-type", op: "wait", want: "WRONGTYPE",
			corrupt: func(ctx context.Context, c redis.UniversalClient, wake string) error {
				return c.Set(ctx, wake, "x", time.Minute).Err()
			}},
		{name: "bad-grant", op: "acquire", want: "unexpected reply",
			corrupt: func(ctx context.Context, c redis.UniversalClient, wake string) error {
				return c.RPush(ctx, wake, "g|not-a-token").Err()
			}},
		{name: "unknown-message", op: "acquire", want: "unexpected reply",
			corrupt: func(ctx context.Context, c redis.UniversalClient, wake string) error {
				return c.RPush(ctx, wake, "hello").Err()
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			prefix := db.Prefix + tc.name + ":"
			holder, err := lock.New(db.NewClient(t), lock.WithPrefix(prefix))
			require.NoError(t, err)
			logger, logs := redistest.NewLogs()
			waiter, err := lock.New(db.NewClient(t), lock.WithPrefix(prefix), lock.WithLogger(logger))
			require.NoError(t, err)
			held, err := holder.TryAcquire(ctx, "k", time.Minute)
			require.NoError(t, err)
			errc := make(chan error, 1)
			go func() {
				lk, err := waiter.Acquire(ctx, "k", time.Minute)
				if lk != nil {
					_ = lk.Release(ctx)
				}
				errc <- err
			}()
			keys := lock.Keys(prefix, "k")
			var owner string
			require.Eventually(t, func() bool {
				q, _ := db.Client.ZRange(ctx, keys[2], 0, -1).Result()
				if len(q) == 1 {
					owner = q[0]
				}
				return owner != ""
			}, 10*time.Second, 5*time.Millisecond, "the waiter queued")
			require.NoError(t, tc.corrupt(ctx, db.Client, keys[4]+owner))
			select {
			case err = <-errc:
			case <-ctx.Done():
				t.Fatal("the waiter kept waiting")
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), `lock: acquire "k"`)
			assert.Contains(t, err.Error(), tc.want)
			st := waiter.Stats()
			assert.NotZero(t, st.Invalid)
			assert.Zero(t, st.Errors, "taken for Redis being unavailable: %+v", st)
			assert.Len(t, logs.With(slog.LevelError, "op", tc.op), 1, logs.String())
			q, err := db.Client.ZCard(ctx, keys[2]).Result()
			require.NoError(t, err)
			assert.Zero(t, q, "the waiter left the queue")
			require.NoError(t, held.Release(ctx))
			again, err := waiter.TryAcquire(ctx, "k", time.Second)
			require.NoError(t, err, "nothing stranded")
			require.NoError(t, again.Release(ctx))
		})
	}
}

// TestInvalidRedlock: a node that answers with an invalid error is not a
// node that is down: the operation fails with that error (after undoing
// the grants of the others) instead of going ahead with the majority, or
// reporting "no majority".
func TestInvalidRedlock(t *testing.T) {
	leakCheck(t)
	srv := redistest.StartServers(t, 3)
	var cs []redis.UniversalClient
	runs := redistest.NewScriptRuns()
	for _, s := range srv {
		c := s.Client(t, func(o *redis.Options) { o.ContextTimeoutEnabled = true })
		c.AddHook(runs)
		cs = append(cs, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	fence := func(prefix string) string { return prefix + "{k}:fence" }
	newRL := func(t *testing.T, prefix string) (*lock.Redlock, *redistest.Logs) {
		logger, logs := redistest.NewLogs()
		rl, err := lock.NewRedlock(cs, lock.WithPrefix(prefix), lock.WithNodeTimeout(2*time.Second), lock.WithLogger(logger))
		require.NoError(t, err)
		return rl, logs
	}

	t.Run("node-wrong-type/acquire", func(t *testing.T) {
		prefix := "rlwt:"
		rl, logs := newRL(t, prefix)
		require.NoError(t, cs[0].HSet(ctx, fence(prefix), "f", "v").Err())
		for _, acquire := range []func(context.Context, string, time.Duration) (*lock.Lock, error){rl.TryAcquire, rl.Acquire} {
			start := runs.Runs(lock.Script("acquire").Hash())
			_, err := acquire(ctx, "k", 10*time.Second)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "WRONGTYPE")
			assert.Contains(t, err.Error(), `lock: acquire "k": node 0`)
			assert.NotErrorIs(t, err, lock.ErrNotAcquired)
			assert.EqualValues(t, 3, runs.Runs(lock.Script("acquire").Hash())-start, "one attempt on each node")
			for i, c := range cs[1:] {
				n, err := c.Exists(ctx, prefix+"{k}").Result()
				require.NoError(t, err)
				assert.Zero(t, n, "node %d: the grant was undone", i+1)
			}
		}
		st := rl.Stats()
		assert.GreaterOrEqual(t, st.Invalid, uint64(2))
		assert.Zero(t, st.NotAcquired)
		assert.Len(t, logs.With(slog.LevelError, "op", "acquire"), 1, logs.String())
	})

	t.Run("node-wrong-type/refresh", func(t *testing.T) {
		prefix := "rlwtr:"
		rl, logs := newRL(t, prefix)
		lk, err := rl.TryAcquire(ctx, "k", 10*time.Second)
		require.NoError(t, err)
		require.NoError(t, cs[0].Del(ctx, fence(prefix)).Err())
		require.NoError(t, cs[0].HSet(ctx, fence(prefix), "f", "v").Err())
		err = lk.Refresh(ctx, 10*time.Second)
		require.Error(t, err)
		assert.Contains(t, err.Error(), `lock: refresh "k": node 0`)
		assert.Contains(t, err.Error(), "WRONGTYPE")
		assert.NotErrorIs(t, err, lock.ErrLockLost, "a majority still holds it")
		assert.EqualValues(t, 1, rl.Stats().Invalid)
		assert.Len(t, logs.With(slog.LevelError, "op", "refresh"), 1, logs.String())
		require.NoError(t, cs[0].Del(ctx, fence(prefix)).Err())
		require.NoError(t, lk.Release(ctx))
	})

	t.Run("script-error", func(t *testing.T) {
		rl, logs := newRL(t, "rlse:")
		lock.SetScript(rl, "acquire", redistest.BrokenScript)
		_, err := rl.TryAcquire(ctx, "k", 10*time.Second)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "user_script")
		assert.NotContains(t, err.Error(), "no majority", "not taken for nodes that are down")
		assert.NotErrorIs(t, err, lock.ErrNotAcquired)
		assert.EqualValues(t, 1, rl.Stats().Invalid)
		assert.Zero(t, rl.Stats().Errors)
		assert.Len(t, logs.With(slog.LevelError, "op", "acquire"), 1, logs.String())
	})
}

// TestUnavailableStillDegrades: the other side of the line. A Redis that
// is unavailable for a while still takes the degrade paths: an
// auto-refresh is retried until Redis answers again, a waiter whose wake-up
// read failed polls and gets the lock, an acquire on a stopped server
// returns the outage (it has no fallback); none of it counts as invalid.
func TestUnavailableStillDegrades(t *testing.T) {
	leakCheck(t)
	t.Run("auto-refresh-retried-through-a-pause", func(t *testing.T) {
		s := redistest.StartServer(t)
		c := s.Client(t, func(o *redis.Options) { o.MaxRetries = -1; o.ReadTimeout = 200 * time.Millisecond })
		logger, logs := redistest.NewLogs()
		l, err := lock.New(c, lock.WithAutoRefresh(true), lock.WithLogger(logger))
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		// Refreshed every 2s; a pause until one refresh failed, then the
		// retry 500ms later succeeds well before the 6s deadline.
		lk, err := l.TryAcquire(ctx, "k", 6*time.Second)
		require.NoError(t, err)
		require.NoError(t, s.Pause())
		paused := true
		defer func() {
			if paused {
				_ = s.Resume()
			}
		}()
		require.Eventually(t, func() bool { return l.Stats().Errors > 0 }, 20*time.Second, 10*time.Millisecond, "a refresh failed")
		require.NoError(t, s.Resume())
		paused = false
		refreshed := l.Stats().Refreshed
		require.Eventually(t, func() bool { return l.Stats().Refreshed > refreshed }, 20*time.Second, 10*time.Millisecond, "a retried refresh succeeded")
		require.NoError(t, lk.Err(), "still held")
		st := l.Stats()
		assert.Zero(t, st.Invalid)
		assert.Zero(t, logs.Count(slog.LevelError), logs.String())
		assert.NotZero(t, logs.Count(slog.LevelWarn), "the retries were logged at Warn")
		require.NoError(t, lk.Release(ctx))
	})

	t.Run("waiter-polls-after-a-dropped-wake-up", func(t *testing.T) {
		s := redistest.StartServer(t)
		admin := s.Client(t)
		holder, err := lock.New(s.Client(t), lock.WithPrefix("dw:"))
		require.NoError(t, err)
		waiter, err := lock.New(s.Client(t, func(o *redis.Options) { o.MaxRetries = -1 }), lock.WithPrefix("dw:"),
			lock.WithBackoff(time.Second, time.Second)) // long BLPOP rounds: the kill finds one blocked
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		held, err := holder.TryAcquire(ctx, "k", time.Minute)
		require.NoError(t, err)
		type result struct {
			lk  *lock.Lock
			err error
		}
		done := make(chan result, 1)
		go func() {
			lk, err := waiter.Acquire(ctx, "k", time.Minute)
			done <- result{lk, err}
		}()
		// Kill the waiter's blocked BLPOP connection.
		require.Eventually(t, func() bool {
			list, err := admin.ClientList(ctx).Result()
			if err != nil {
				return false
			}
			for _, line := range strings.Split(list, "\n") {
				// flags=b: blocked in BLPOP now (cmd= is the last command)
				if strings.Contains(line, "cmd=blpop") && strings.Contains(line, " flags=b ") {
					for _, f := range strings.Fields(line) {
						if id, ok := strings.CutPrefix(f, "id="); ok {
							return admin.Do(ctx, "CLIENT", "KILL", "ID", id).Err() == nil
						}
					}
				}
			}
			return false
		}, 20*time.Second, 5*time.Millisecond, "a blocked BLPOP to kill")
		require.Eventually(t, func() bool { return waiter.Stats().Errors > 0 }, 20*time.Second, 5*time.Millisecond, "the wake-up read failed")
		require.NoError(t, held.Release(ctx))
		r := <-done
		require.NoError(t, r.err, "the waiter polled on and got the lock")
		assert.Greater(t, r.lk.Token(), held.Token())
		assert.Zero(t, waiter.Stats().Invalid)
		require.NoError(t, r.lk.Release(ctx))
	})

	t.Run("acquire-on-a-stopped-server", func(t *testing.T) {
		s := redistest.StartServer(t)
		c := s.Client(t, func(o *redis.Options) { o.MaxRetries = -1; o.DialTimeout = 200 * time.Millisecond })
		logger, logs := redistest.NewLogs()
		l, err := lock.New(c, lock.WithLogger(logger))
		require.NoError(t, err)
		require.NoError(t, s.Stop())
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err = l.TryAcquire(ctx, "k", time.Minute)
		require.Error(t, err)
		assert.Contains(t, err.Error(), `lock: acquire "k"`)
		assert.NotErrorIs(t, err, lock.ErrNotAcquired)
		st := l.Stats()
		assert.Zero(t, st.Invalid)
		assert.EqualValues(t, 1, st.Errors, "the clean-up after the failed call could not reach Redis either")
		assert.Zero(t, logs.Count(slog.LevelError), logs.String())
	})
}
