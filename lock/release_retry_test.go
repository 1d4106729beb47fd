package lock_test

import (
	"context"
	"errors"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/redistest"
	"github.com/outrigger-dev/outrigger/lock"
)

// TestReleaseRetryIdempotent: the server is paused past the client's
// ReadTimeout during a Release, so go-redis re-sends the release script;
// when the server resumes, the first attempt releases the lock and the
// re-sent one finds it gone. Release (and Do) must still report success:
// the lock was ours until we released it. Found by the pause fault test
// (TestFailover/PauseRetries), which saw such releases report ErrLockLost.
func TestReleaseRetryIdempotent(t *testing.T) {
	leakCheck(t)
	ctx := context.Background()
	s := redistest.StartServer(t)
	c := s.Client(t, func(o *redis.Options) {
		o.ReadTimeout = 100 * time.Millisecond
		// enough re-sends to outlast the pause even when a loaded machine
		// lets a few more copies time out after the resume
		o.MaxRetries = 20
		o.MinRetryBackoff = 20 * time.Millisecond
		o.MaxRetryBackoff = 20 * time.Millisecond
		o.PoolSize = 16
	})
	l, err := lock.New(c, lock.WithPrefix("relretry:"))
	require.NoError(t, err)
	// Fill the pool with live connections before each pause: every copy
	// that times out closes its connection, and go-redis does not re-send
	// after a timeout while setting up a new one (dialled during the pause).
	warm := func() { require.NoError(t, redistest.FillPool(ctx, c, "relretry:{k}", 16)) }
	for round := range 3 {
		warm()
		lk, err := l.Acquire(ctx, "k", time.Minute)
		require.NoError(t, err)
		require.NoError(t, lk.Release(ctx)) // loads the release script
		lk, err = l.Acquire(ctx, "k", time.Minute)
		require.NoError(t, err)
		require.NoError(t, c.ConfigResetStat(ctx).Err())
		require.NoError(t, s.Pause())
		done := make(chan error, 1)
		go func() { done <- lk.Release(ctx) }()
		time.Sleep(250 * time.Millisecond) // past the ReadTimeout: the script is re-sent
		require.NoError(t, s.Resume())
		require.NoError(t, <-done, "round %d: a re-sent release of our own lock", round)
		stats, err := c.Info(ctx, "commandstats").Result()
		require.NoError(t, err)
		m := regexp.MustCompile(`cmdstat_evalsha:calls=(\d+)`).FindStringSubmatch(stats)
		require.NotNil(t, m, stats)
		calls, _ := strconv.Atoi(m[1])
		require.GreaterOrEqual(t, calls, 2, "go-redis re-sent the release script")
		n, err := c.Exists(ctx, "relretry:{k}").Result()
		require.NoError(t, err)
		require.Zero(t, n)
	}

	// Do does not report the lock lost either when its release is re-sent.
	warm()
	resumed := make(chan error, 1)
	err = l.Do(ctx, "k", time.Minute, func(ctx context.Context, _ uint64) error {
		if err := s.Pause(); err != nil {
			return err
		}
		go func() {
			time.Sleep(250 * time.Millisecond)
			resumed <- s.Resume()
		}()
		return nil
	})
	require.NoError(t, <-resumed)
	require.NoError(t, err, "Do whose release was re-sent")
}

// lostReply is a go-redis hook that, once armed, lets the next EVALSHA run
// on the server and then replaces its reply with a network error: the
// client's view when go-redis gave up re-sending a script that did run.
type lostReply struct{ armed atomic.Bool }

func (h *lostReply) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *lostReply) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if cmd.Name() == "evalsha" && h.armed.CompareAndSwap(true, false) {
			cmd.SetErr(errLostReply)
			return errLostReply
		}
		return err
	}
}

func (h *lostReply) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

var errLostReply = errors.New("i/o timeout (injected after the script ran)")

// TestTryAcquireLostReplyUndone: a TryAcquire whose script took the lock
// but whose reply never came back fails, and releases what it took, so the
// lock is not held by nobody until its ttl.
func TestTryAcquireLostReplyUndone(t *testing.T) {
	leakCheck(t)
	ctx := context.Background()
	db := redistest.New(t)
	c := db.NewClient(t)
	h := &lostReply{}
	c.AddHook(h)
	prefix := db.Prefix + "tryundo:"
	l, err := lock.New(c, lock.WithPrefix(prefix))
	require.NoError(t, err)
	other, err := lock.New(db.NewClient(t), lock.WithPrefix(prefix))
	require.NoError(t, err)

	lk, err := l.TryAcquire(ctx, "k", time.Minute) // loads the scripts
	require.NoError(t, err)
	require.NoError(t, lk.Release(ctx))

	h.armed.Store(true)
	_, err = l.TryAcquire(ctx, "k", time.Minute)
	require.ErrorIs(t, err, errLostReply)
	require.False(t, h.armed.Load(), "the hook did not fire")

	n, err := c.Exists(ctx, prefix+"{k}").Result()
	require.NoError(t, err)
	require.Zero(t, n, "the lock taken by the lost call is still held")
	lk, err = other.TryAcquire(ctx, "k", time.Minute)
	require.NoError(t, err, "another owner cannot take the lock")
	require.NoError(t, lk.Release(ctx))
}
