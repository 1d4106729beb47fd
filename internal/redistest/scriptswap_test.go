package redistest

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestScriptSwap: a swapped script's calls run the replacement, through
// Run, EVAL, EVALSHA and pipelines, on a single node and on a Cluster;
// other scripts and a restored one run as written.
func TestScriptSwap(t *testing.T) {
	for _, mk := range []func(testing.TB) *DB{New, NewCluster} {
		db := mk(t)
		t.Run("cluster="+map[bool]string{false: "false", true: "true"}[db.Cluster], func(t *testing.T) {
			ctx := ctxT(t, 30*time.Second)
			c := db.NewClient(t)
			swap := NewScriptSwap()
			c.AddHook(swap)
			key := db.Key("{swap}k")
			orig := redis.NewScript("return 'orig ' .. KEYS[1] -- " + db.Prefix)
			other := redis.NewScript("return 'other' -- " + db.Prefix)
			swap.Swap("return 'orig ' .. KEYS[1] -- "+db.Prefix, "return {KEYS[1], ARGV[1]}")

			v, err := orig.Run(ctx, c, []string{key}, "a").Result()
			require.NoError(t, err)
			assert.Equal(t, []any{key, "a"}, v, "Run")
			v, err = orig.Eval(ctx, c, []string{key}, "b").Result()
			require.NoError(t, err)
			assert.Equal(t, []any{key, "b"}, v, "EVAL")
			v, err = orig.EvalSha(ctx, c, []string{key}, "c").Result()
			require.NoError(t, err)
			assert.Equal(t, []any{key, "c"}, v, "EVALSHA of a script Redis never loaded")
			var cmds [2]*redis.Cmd
			_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
				cmds[0] = orig.EvalSha(ctx, p, []string{key}, "d")
				cmds[1] = other.Eval(ctx, p, []string{key})
				return nil
			})
			require.NoError(t, err)
			assert.Equal(t, []any{key, "d"}, cmds[0].Val(), "in a pipeline")
			assert.Equal(t, "other", cmds[1].Val(), "another script")

			swap.Restore(orig.Hash())
			s, err := orig.Run(ctx, c, []string{key}).Text()
			require.NoError(t, err)
			assert.Equal(t, "orig "+key, s, "restored")

			swap.Swap(orig.Hash(), BrokenScript)
			err = orig.Run(ctx, c, []string{key}).Err()
			assert.ErrorContains(t, err, "user_script", "a broken replacement fails")
		})
	}
}
