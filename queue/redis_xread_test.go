package queue

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/internal/rediserr"
	"github.com/outrigger-dev/outrigger/internal/redistest"
)

// rawReadEntries are entries of every layout parseXRead must read as
// parseEntry does: what publish.lua, move.lua and fail.lua write, and what
// other tools might.
func rawReadEntries() [][]string {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	return [][]string{
		{"id", "m1", "body", "hello"},
		{"id", "m2", "t", "1732540000123", "a", "3", "body", "a\r\nb$3\r\n*2\r\n", "e", "boom\nline", "h:k", "v", "h:empty", ""},
		{"body", ""},                           // no message ID: the entry ID stands for it
		{"id", "m4"},                           // no body
		{"id", "m5", "body", "x", "body", "y"}, // a field twice: the last one counts
		{"x", "unknown", "h:", "no name"},
		{"id", "m7", "a", "-5", "t", "zz", "body", string(all)},
		{"id", "m8", "body", strings.Repeat("long ", 4000)},
	}
}

// TestRawReadMatchesParseEntry: a raw XREADGROUP reply, RESP2 or RESP3, on
// a single node or a Cluster, parses into the messages parseEntry makes of
// the same entries, skipping the other stream of the read; entries deleted
// while pending come back as ghosts.
func TestRawReadMatchesParseEntry(t *testing.T) {
	for _, topo := range []struct {
		name string
		mk   func(testing.TB) *redistest.DB
	}{{"single", redistest.New}, {"cluster", redistest.NewCluster}} {
		db := topo.mk(t)
		for _, proto := range []int{2, 3} {
			t.Run(topo.name+"/resp"+string(rune('0'+proto)), func(t *testing.T) {
				ctx := context.Background()
				c := db.NewClient(t, func(o *redis.UniversalOptions) { o.Protocol = proto })
				base := db.Prefix + "{r" + string(rune('0'+proto)) + "}:"
				stream, wake := base+"stream", base+"wake"
				require.NoError(t, c.XGroupCreateMkStream(ctx, stream, groupName, "0").Err())
				require.NoError(t, c.XGroupCreateMkStream(ctx, wake, groupName, "0").Err())
				for _, fields := range rawReadEntries() {
					require.NoError(t, c.XAdd(ctx, &redis.XAddArgs{Stream: stream, Values: fields}).Err())
				}
				require.NoError(t, c.XAdd(ctx, &redis.XAddArgs{Stream: wake, Values: []string{"stop", "1"}}).Err())
				want, err := c.XRange(ctx, stream, "-", "+").Result()
				require.NoError(t, err)

				read := func(id string) []byte {
					t.Helper()
					cmd := redis.NewRawCmd(ctx, "xreadgroup", "group", groupName, "me", "count", 100, "streams", wake, stream, id, id)
					require.NoError(t, c.Process(ctx, cmd))
					return cmd.Val()
				}
				ds, ghosts, err := parseXRead(read(">"), stream)
				require.NoError(t, err)
				assert.Empty(t, ghosts)
				require.Len(t, ds, len(want))
				for i, x := range want {
					assert.Equal(t, x.ID, ds[i].entry)
					assert.Equal(t, parseEntry(x.ID, x.Values), ds[i].msg, "entry %d", i)
				}

				// Pending entries again (history), one of them deleted.
				require.NoError(t, c.XDel(ctx, stream, want[1].ID).Err())
				ds, ghosts, err = parseXRead(read("0"), stream)
				require.NoError(t, err)
				assert.Equal(t, []string{want[1].ID}, ghosts)
				require.Len(t, ds, len(want)-1)
				assert.Equal(t, parseEntry(want[0].ID, want[0].Values), ds[0].msg)
				assert.Equal(t, parseEntry(want[2].ID, want[2].Values), ds[1].msg)

				// Nothing new: a null reply.
				cmd := redis.NewRawCmd(ctx, "xreadgroup", "group", groupName, "me", "block", 1, "streams", stream, ">")
				require.NoError(t, c.Process(ctx, cmd))
				ds, ghosts, err = parseXRead(cmd.Val(), stream)
				assert.NoError(t, err)
				assert.Empty(t, ds)
				assert.Empty(t, ghosts)
			})
		}
	}
}

// TestReadPaths: a consumer's read works the same whether it is a raw
// command (the client's read timeout leaves room for the BLOCK) or an
// XReadGroup (it does not), and an error reply to the raw command is that
// of the XReadGroup it is sent again as (NOGROUP here, which fetch
// handles by creating the group).
func TestReadPaths(t *testing.T) {
	for _, tc := range []struct {
		name    string
		timeout time.Duration // the client's ReadTimeout
		raw     bool
	}{
		{"raw/default", 0, true},
		{"raw/no-timeout", -1, true},
		{"typed/short-timeout", 500 * time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			db := redistest.New(t)
			client := db.NewClient(t, func(o *redis.UniversalOptions) { o.ReadTimeout = tc.timeout })
			reads := &readKinds{}
			client.AddHook(reads)
			q, err := NewRedis(client, "paths", WithPrefix(db.Prefix))
			require.NoError(t, err)
			var cc consumeConfig
			require.NoError(t, cc.apply(nil, false))
			cc.consumer = "me"
			c := newRedisConsumer(q, cc)
			assert.Equal(t, tc.raw, c.rawReads)

			_, err = c.read(ctx, ctx, 10)
			assert.True(t, isGroupGone(err), "got %v, want NOGROUP", err)

			require.NoError(t, c.ensureGroup(ctx))
			var ids []string
			for _, b := range []string{"a", "b", "c"} {
				id, err := q.Publish(ctx, []byte(b))
				require.NoError(t, err)
				ids = append(ids, id)
			}
			reads.reset()
			ds, err := c.read(ctx, ctx, 10)
			require.NoError(t, err)
			require.Len(t, ds, 3)
			// The read really took its path: one XREADGROUP of that form,
			// no fallback behind it.
			want := "typed"
			if tc.raw {
				want = "raw"
			}
			assert.Equal(t, []string{want}, reads.kinds())
			for i, d := range ds {
				assert.Equal(t, ids[i], d.msg.ID)
				assert.Equal(t, []string{"a", "b", "c"}[i], string(d.msg.Body))
			}
			start := time.Now()
			ds, err = c.read(ctx, ctx, 10)
			assert.NoError(t, err)
			assert.Empty(t, ds)
			assert.GreaterOrEqual(t, time.Since(start), cc.block/2, "the read did not block")
		})
	}
}

// FuzzParseXRead: parseXRead takes any bytes without panicking, and
// either says the reply is bad (rediserr.ErrBadReply) or returns usable
// deliveries.
func FuzzParseXRead(f *testing.F) {
	f.Add([]byte("*2\r\n*2\r\n$1\r\ns\r\n*2\r\n*2\r\n$3\r\n1-0\r\n*4\r\n$2\r\nid\r\n$2\r\nm1\r\n$4\r\nbody\r\n$2\r\nhi\r\n*2\r\n$3\r\n2-0\r\n*-1\r\n*2\r\n$1\r\nw\r\n*0\r\n"), "s")
	f.Add([]byte("%1\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*6\r\n+a\r\n+2\r\n$1\r\nt\r\n$2\r\n17\r\n$3\r\nh:k\r\n$0\r\n\r\n"), "s")
	f.Add([]byte("|1\r\n+k\r\n:1\r\n_\r\n"), "s")
	f.Add([]byte("*-1\r\n"), "")
	f.Fuzz(func(t *testing.T, raw []byte, stream string) {
		ds, ghosts, err := parseXRead(raw, stream)
		if err != nil {
			if !strings.Contains(err.Error(), rediserr.ErrBadReply.Error()) {
				t.Fatalf("got error %v, want a bad reply", err)
			}
			if ds != nil || ghosts != nil {
				t.Fatalf("got %d deliveries and %d ghosts with an error", len(ds), len(ghosts))
			}
			return
		}
		for _, d := range ds {
			if d.msg.Attempt < 1 || d.msg.Body == nil || d.entry == "" && d.msg.ID != "" && !strings.Contains(string(raw), "id") {
				t.Fatalf("unusable message %+v", d.msg)
			}
		}
	})
}

// readKinds is a go-redis hook recording the form of every XREADGROUP sent:
// "raw" (a RawCmd) or "typed".
type readKinds struct {
	mu sync.Mutex
	ks []string
}

func (r *readKinds) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *readKinds) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (r *readKinds) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if strings.EqualFold(cmd.Name(), "xreadgroup") {
			k := "typed"
			if _, ok := cmd.(*redis.RawCmd); ok {
				k = "raw"
			}
			r.mu.Lock()
			r.ks = append(r.ks, k)
			r.mu.Unlock()
		}
		return next(ctx, cmd)
	}
}

func (r *readKinds) reset() {
	r.mu.Lock()
	r.ks = nil
	r.mu.Unlock()
}

func (r *readKinds) kinds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ks...)
}
