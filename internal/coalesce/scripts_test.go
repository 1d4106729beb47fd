package coalesce_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/coalesce"
	"github.com/outrigger-dev/outrigger/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// TestScripts runs concurrent script calls through one Group on a single
// node and on a Cluster, after SCRIPT FLUSH (so the first pipeline finds
// the script missing), and checks every call got its own reply.
func TestScripts(t *testing.T) {
	script := redis.NewScript(`return redis.call('INCRBY', KEYS[1], ARGV[1])`)
	for _, tc := range []struct {
		name string
		db   func(t *testing.T) *redistest.DB
	}{
		{"single", func(t *testing.T) *redistest.DB { return redistest.New(t) }},
		{"cluster", func(t *testing.T) *redistest.DB { return redistest.NewCluster(t) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db := tc.db(t)
			if cc, ok := db.Client.(*redis.ClusterClient); ok {
				require.NoError(t, cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
					return c.ScriptFlush(ctx).Err()
				}))
			} else {
				require.NoError(t, db.Client.ScriptFlush(ctx).Err())
			}
			g := coalesce.NewScripts(db.Client, 1, 16) // one pipeline at a time: calls batch up
			const callers, keys = 200, 20
			var noScript atomic.Int64
			var wg sync.WaitGroup
			for i := range callers {
				wg.Go(func() {
					k := db.Prefix + "{" + strconv.Itoa(i%keys) + "}"
					s := &coalesce.Script{Script: script, Keys: []string{k}, Args: []any{1},
						OnNoScript: (*counter)(&noScript)}
					if err := g.Do(ctx, s); err != nil {
						t.Error(err)
						return
					}
					if s.Err != nil {
						t.Errorf("call %d: %v", i, s.Err)
						return
					}
					if n, ok := s.Val.(int64); !ok || n < 1 {
						t.Errorf("call %d: reply %v", i, s.Val)
					}
				})
			}
			wg.Wait()
			require.Positive(t, noScript.Load(), "the flushed script was reported missing")
			for k := range keys {
				n, err := db.Client.Get(ctx, db.Prefix+"{"+strconv.Itoa(k)+"}").Int()
				require.NoError(t, err)
				require.Equal(t, callers/keys, n, "every call ran exactly once")
			}
		})
	}
}

// counter counts NOSCRIPT replies.
type counter atomic.Int64

func (c *counter) NoScript() { (*atomic.Int64)(c).Add(1) }
