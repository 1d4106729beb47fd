package lock_test

import (
	"context"
	"regexp"
	"strconv"
	"sync"
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
	warm := func() {
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() { _ = c.Do(ctx, "DEBUG", "SLEEP", "0.05").Err() })
		}
		wg.Wait()
	}
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
