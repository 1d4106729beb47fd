package redistest

import (
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// TestScriptRuns: calls answered NOSCRIPT are not counted, alone or in a
// pipeline; EVAL, EVALSHA and calls that fail in the script are.
func TestScriptRuns(t *testing.T) {
	ctx := ctxT(t, 30*time.Second)
	db := New(t)
	c := db.NewClient(t)
	runs := NewScriptRuns()
	c.AddHook(runs)
	// a script no other test loaded: the first EVALSHA gets NOSCRIPT
	ok := redis.NewScript("return 1 -- " + db.Prefix)
	bad := redis.NewScript(BrokenScript + " -- " + db.Prefix)

	require.True(t, redis.HasErrorPrefix(ok.EvalSha(ctx, c, nil).Err(), "NOSCRIPT"))
	require.Zero(t, runs.Runs(ok.Hash()), "NOSCRIPT: did not run")
	require.NoError(t, ok.Run(ctx, c, nil).Err()) // EVALSHA (NOSCRIPT), then EVAL
	require.EqualValues(t, 1, runs.Runs(ok.Hash()))
	require.NoError(t, ok.EvalSha(ctx, c, nil).Err())
	require.EqualValues(t, 2, runs.Runs(ok.Hash()))

	_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
		bad.EvalSha(ctx, p, nil) // NOSCRIPT
		ok.EvalSha(ctx, p, nil)
		bad.Eval(ctx, p, nil) // runs, fails
		return nil
	})
	require.Error(t, err)
	require.EqualValues(t, 3, runs.Runs(ok.Hash()))
	require.EqualValues(t, 1, runs.Runs(bad.Hash()), "the EVAL ran (and failed); the NOSCRIPT did not")
}

// TestLogs keeps records with their attributes, also those of With.
func TestLogs(t *testing.T) {
	logger, logs := NewLogs()
	logger.With("op", "acquire").Error("boom", "n", 1)
	logger.Warn("hm")
	require.Equal(t, 2, logs.Count(slog.LevelWarn))
	errs := logs.Records(slog.LevelError)
	require.Len(t, errs, 1)
	require.Equal(t, map[string]string{"op": "acquire", "n": strconv.Itoa(1)}, errs[0].Attrs)
	require.Contains(t, logs.String(), `"boom"`)
	require.Len(t, logs.With(slog.LevelError, "op", "acquire"), 1)
	require.Empty(t, logs.With(slog.LevelError, "op", "release"))
	require.Empty(t, logs.With(slog.LevelError+1, "op", "acquire"))
}
