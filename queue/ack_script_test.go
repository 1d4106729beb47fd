package queue

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/redistest"
)

// TestAckScript: scripts/ack.lua leaves in the stream exactly the entries
// that are not acknowledged (undelivered ones included), whether it trims
// or deletes, in any order of IDs.
func TestAckScript(t *testing.T) {
	const total = 10
	cases := []struct {
		name      string
		delivered int     // entries read by the group (the first ones)
		acks      [][]int // ack calls, by entry index
		left      []int   // entries left in the stream
	}{
		{"all delivered, acked in order", 10, [][]int{{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}}, nil},
		{"undelivered entries stay", 5, [][]int{{0, 1, 2, 3, 4}}, []int{5, 6, 7, 8, 9}},
		{"oldest still pending", 10, [][]int{{1, 2, 5}}, []int{0, 3, 4, 6, 7, 8, 9}},
		{"out of order, then the oldest", 10, [][]int{{5, 2, 1}, {0}}, []int{3, 4, 6, 7, 8, 9}},
		{"descending", 6, [][]int{{5, 4, 3, 2, 1, 0}}, []int{6, 7, 8, 9}},
		{"acked twice", 4, [][]int{{0, 1}, {1, 0}, {2, 3}}, []int{4, 5, 6, 7, 8, 9}},
		{"nothing delivered", 0, [][]int{{}}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := redistest.New(t)
			ctx := context.Background()
			stream := db.Prefix + "{acktest}:stream"
			ids := make([]string, total)
			for i := range ids {
				id, err := db.Client.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: []any{"id", i, "body", "x"}}).Result()
				require.NoError(t, err)
				ids[i] = id
			}
			require.NoError(t, db.Client.XGroupCreate(ctx, stream, groupName, "0").Err())
			if tc.delivered > 0 {
				require.NoError(t, db.Client.XReadGroup(ctx, &redis.XReadGroupArgs{
					Group: groupName, Consumer: "c", Streams: []string{stream, ">"}, Count: int64(tc.delivered),
				}).Err())
			}
			for _, call := range tc.acks {
				if len(call) == 0 {
					continue
				}
				args := []any{groupName}
				for _, i := range call {
					args = append(args, ids[i])
				}
				require.NoError(t, ackScript.Run(ctx, db.Client, []string{stream}, args...).Err())
			}
			msgs, err := db.Client.XRange(ctx, stream, "-", "+").Result()
			require.NoError(t, err)
			var left []int
			for _, m := range msgs {
				for i, id := range ids {
					if m.ID == id {
						left = append(left, i)
					}
				}
			}
			require.Equal(t, tc.left, left)
		})
	}
	t.Run("no stream", func(t *testing.T) {
		db := redistest.New(t)
		n, err := ackScript.Run(context.Background(), db.Client, []string{db.Prefix + "{acktest}:stream"}, groupName, "1-0", "2-0").Int64()
		require.NoError(t, err)
		require.Zero(t, n)
	})
}

// TestPublishScriptPlainRepeat: a repeat of a plain-form publish call (the
// client re-sent it) returns the first call's count and adds nothing.
func TestPublishScriptPlainRepeat(t *testing.T) {
	db := redistest.New(t)
	ctx := context.Background()
	base := db.Prefix + "{pubtest}:"
	keys := []string{base + "stream", base + "delayed", base + "payloads", base + "id:call:1", base + "m:1"}
	args := []any{60000, 0, -2, "a", "body a", "b", "body b", "7200"}
	for range 2 {
		n, err := publishScript.Run(ctx, db.Client, keys, args...).Int64()
		require.NoError(t, err)
		require.Equal(t, int64(2), n)
	}
	msgs, err := db.Client.XRange(ctx, keys[0], "-", "+").Result()
	require.NoError(t, err)
	require.Len(t, msgs, 2)
	require.Equal(t, map[string]any{"id": "a", "body": "body a"}, msgs[0].Values)
	published, err := db.Client.HGet(ctx, keys[4], "published").Int64()
	require.NoError(t, err)
	require.Equal(t, int64(2), published, "the repeat is not counted again")
}
