package cache_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/cache"
)

// holdHook holds the reply of the next read of one key (GET, or the SET NX
// GET of a Fetch) once armed: it reports the reply on answered and returns
// it to the cache only when release is closed.
type holdHook struct {
	key      string
	armed    atomic.Bool
	answered chan struct{}
	release  chan struct{}
}

func (h *holdHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *holdHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *holdHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		args := cmd.Args()
		if len(args) >= 2 && args[1] == h.key && (strings.EqualFold(cmd.Name(), "get") || strings.EqualFold(cmd.Name(), "set")) &&
			h.armed.CompareAndSwap(true, false) {
			close(h.answered)
			<-h.release
		}
		return err
	}
}

// TestReadAcrossInvalidation: a replica's read of a key is answered by
// Redis, then another replica deletes the key and the invalidation reaches
// the reader before it stores what it read. The read returns the old value
// (it was answered before the delete), but the reader's local tier must not
// keep it: afterwards the key reads as absent.
func TestReadAcrossInvalidation(t *testing.T) {
	reads := []struct {
		name string
		read func(ctx context.Context, c *cache.Cache[string]) (string, error)
	}{
		{"Fetch", func(ctx context.Context, c *cache.Cache[string]) (string, error) {
			return c.Fetch(ctx, "k", func(context.Context) (string, error) { return "loaded", nil })
		}},
		{"Get", func(ctx context.Context, c *cache.Cache[string]) (string, error) {
			v, _, err := c.Get(ctx, "k")
			return v, err
		}},
	}
	for _, rb := range redisBackends {
		for _, rd := range reads {
			t.Run("deploy="+rb.name+"/read="+rd.name, func(t *testing.T) {
				db := rb.mk(t)
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				writer, err := cache.New[string](cache.WithRedis(db.NewClient(t)), cache.WithPrefix(db.Prefix), cache.WithLocal(100, time.Minute))
				require.NoError(t, err)
				defer writer.Close()
				hook := &holdHook{key: db.Prefix + "k", answered: make(chan struct{}), release: make(chan struct{})}
				rc := db.NewClient(t)
				rc.AddHook(hook)
				inval := make(chan string, 16)
				reader, err := cache.New[string](cache.WithRedis(rc), cache.WithPrefix(db.Prefix), cache.WithLocal(100, time.Minute),
					cache.WithHooks(cache.Hooks{OnInvalidation: func(key string) { inval <- key }}))
				require.NoError(t, err)
				defer reader.Close()
				waitInval := func() {
					t.Helper()
					select {
					case k := <-inval:
						require.Equal(t, "k", k)
					case <-ctx.Done():
						t.Fatal("no invalidation reached the reader")
					}
				}

				require.NoError(t, writer.Set(ctx, "k", "old"))
				waitInval()
				hook.armed.Store(true)
				got := make(chan string, 1)
				go func() {
					v, err := rd.read(ctx, reader)
					if err != nil {
						v = "error: " + err.Error()
					}
					got <- v
				}()
				select {
				case <-hook.answered:
				case <-ctx.Done():
					t.Fatal("the read was not answered")
				}
				require.NoError(t, writer.Delete(ctx, "k"))
				waitInval()
				close(hook.release)
				require.Equal(t, "old", <-got)

				v, ok, err := reader.Get(ctx, "k")
				require.NoError(t, err)
				require.False(t, ok, "the reader's local tier kept %q, read before the key was deleted", v)
			})
		}
	}
}
