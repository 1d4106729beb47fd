package broadcast_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/broadcast"
)

// traceKey in a Publish ctx makes the recorder's OnPublish add the header
// "x-trace" with its value; without it no header is added, so that both
// frame formats run under the contract tests.
type traceKey struct{}

// publishedKey is what the recorder's OnPublish puts in the ctx it returns.
type publishedKey struct{}

type published struct {
	channel string
	size    int
	pos     broadcast.Position
	err     error
	fromPub bool // OnPublished got the ctx OnPublish returned
}

type received struct {
	channel     string
	pos         broadcast.Position
	headers     map[string]string
	subscribers int
}

type channelCount struct {
	channel string
	n       int
}

type resync struct {
	channel string
	reason  broadcast.ResyncReason
}

type presenceRec struct {
	channel string
	m       broadcast.Member
}

// recorder keeps what a Hub's Hooks reported. Every Hub the tests make
// (deployments, hubOn) has one; when the test ends its counts are checked
// against the Hub's Stats.
type recorder struct {
	mu         sync.Mutex
	published  []published
	received   []received
	delivered  map[broadcast.Kind]int
	recovered  []channelCount
	resyncs    []resync
	gaps, slow []string
	joins      []presenceRec
	leaves     []presenceRec
}

var recorders sync.Map // *broadcast.Hub -> *recorder

// recorderOf returns the recorder of a Hub made by deployments or hubOn.
func recorderOf(t *testing.T, h *broadcast.Hub) *recorder {
	t.Helper()
	r, ok := recorders.Load(h)
	require.True(t, ok, "the Hub has no recorder")
	return r.(*recorder)
}

// withRecorder returns opts with a recorder's Hooks first, and a function
// to call with the Hub made from them. Call it before the Hub's Close is
// registered with t.Cleanup: the check runs after it.
func withRecorder(t *testing.T, opts []broadcast.Option) ([]broadcast.Option, func(*broadcast.Hub)) {
	t.Helper()
	r := &recorder{delivered: map[broadcast.Kind]int{}}
	var hub *broadcast.Hub
	t.Cleanup(func() {
		if hub == nil {
			return
		}
		recorders.Delete(hub)
		if t.Failed() {
			return
		}
		st := hub.Stats()
		r.mu.Lock()
		defer r.mu.Unlock()
		ok := 0
		for _, p := range r.published {
			if p.err == nil {
				ok++
			}
		}
		assert.Equal(t, st.Published, uint64(ok), "OnPublished without error, Stats.Published")
		assert.Equal(t, st.Delivered, uint64(r.delivered[broadcast.Publication]+r.delivered[broadcast.Join]+r.delivered[broadcast.Leave]), "OnDeliver, Stats.Delivered")
		assert.Equal(t, st.Recovered, uint64(len(r.recovered)), "OnRecover, Stats.Recovered")
		assert.Equal(t, st.Resyncs, uint64(len(r.resyncs)), "OnResync, Stats.Resyncs")
		assert.Equal(t, st.GapRecoveries, uint64(len(r.gaps)), "OnGap, Stats.GapRecoveries")
		assert.Equal(t, st.SlowDisconnects, uint64(len(r.slow)), "OnSlowDisconnect, Stats.SlowDisconnects")
	})
	return append([]broadcast.Option{broadcast.WithHooks(r.hooks())}, opts...), func(h *broadcast.Hub) {
		hub = h
		recorders.Store(h, r)
	}
}

func (r *recorder) hooks() broadcast.Hooks {
	return broadcast.Hooks{
		OnPublish: func(ctx context.Context, _ string, headers map[string]string) context.Context {
			if headers == nil {
				panic("OnPublish got nil headers")
			}
			if v, ok := ctx.Value(traceKey{}).(string); ok {
				headers["x-trace"] = v
			}
			return context.WithValue(ctx, publishedKey{}, true)
		},
		OnPublished: func(ctx context.Context, ch string, size int, pos broadcast.Position, _ time.Duration, err error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.published = append(r.published, published{ch, size, pos, err, ctx.Value(publishedKey{}) != nil})
		},
		OnReceive: func(ch string, pos broadcast.Position, headers map[string]string, n int, _ time.Duration) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.received = append(r.received, received{ch, pos, headers, n})
		},
		OnDeliver: func(_ string, k broadcast.Kind, _ broadcast.Position) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.delivered[k]++
		},
		OnRecover: func(ch string, n int) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.recovered = append(r.recovered, channelCount{ch, n})
		},
		OnResync: func(ch string, reason broadcast.ResyncReason) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.resyncs = append(r.resyncs, resync{ch, reason})
		},
		OnGap: func(ch string) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.gaps = append(r.gaps, ch)
		},
		OnSlowDisconnect: func(ch string) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.slow = append(r.slow, ch)
		},
		OnJoin: func(ch string, m broadcast.Member) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.joins = append(r.joins, presenceRec{ch, m})
		},
		OnLeave: func(ch string, m broadcast.Member) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.leaves = append(r.leaves, presenceRec{ch, m})
		},
	}
}

// snapshot runs f on the recorder under its lock.
func (r *recorder) snapshot(f func(r *recorder)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

// receivedAt returns what OnReceive reported for pos on channel ch.
func (r *recorder) receivedAt(ch string, pos broadcast.Position) (received, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range r.received {
		if x.channel == ch && x.pos == pos {
			return x, true
		}
	}
	return received{}, false
}

// testHooks: every hook fires with the right values, and the headers
// OnPublish adds reach the other Hubs' OnReceive and Subscriptions, live
// and from the history.
func testHooks(t *testing.T, d deployment) {
	t.Run("publish-receive-recover", func(t *testing.T) {
		hubs := d.hubs(t, 2)
		pub, sub := recorderOf(t, hubs[0]), recorderOf(t, hubs[1])
		ctx := testCtx(t, 30*time.Second)
		s := subscribe(t, hubs[1], "hk")
		start := s.Position()
		p1, err := hubs[0].Publish(context.WithValue(ctx, traceKey{}, "t-1"), "hk", []byte(`{"a":1}`))
		require.NoError(t, err)
		p2, err := hubs[0].Publish(ctx, "hk", []byte(`2`))
		require.NoError(t, err)
		m1, m2 := next(t, s, 10*time.Second), next(t, s, 10*time.Second)
		require.Equal(t, p1, m1.Position)
		require.Equal(t, map[string]string{"x-trace": "t-1"}, m1.Headers, "headers of a live message")
		require.Nil(t, m2.Headers, "a message without headers")

		pub.snapshot(func(r *recorder) {
			require.Len(t, r.published, 2)
			require.Equal(t, published{"hk", 7, p1, nil, true}, r.published[0])
			require.Equal(t, published{"hk", 1, p2, nil, true}, r.published[1])
		})
		waitFor(t, 10*time.Second, "OnReceive of both", func() bool {
			_, ok := sub.receivedAt("hk", p2)
			return ok
		})
		got, _ := sub.receivedAt("hk", p1)
		require.Equal(t, received{"hk", p1, map[string]string{"x-trace": "t-1"}, 1}, got)
		got, _ = sub.receivedAt("hk", p2)
		require.Nil(t, got.headers)
		sub.snapshot(func(r *recorder) { require.GreaterOrEqual(t, r.delivered[broadcast.Publication], 2) })

		// Recovered from the history, on the publisher's Hub: headers too.
		back := subscribe(t, hubs[0], "hk", broadcast.Since(start))
		require.True(t, back.Recovered())
		require.Equal(t, map[string]string{"x-trace": "t-1"}, next(t, back, 10*time.Second).Headers, "headers from the history")
		require.Nil(t, next(t, back, 10*time.Second).Headers)
		pub.snapshot(func(r *recorder) { require.Contains(t, r.recovered, channelCount{"hk", 2}) })

		// A position the history does not cover.
		lost := subscribe(t, hubs[0], "hk", broadcast.Since(broadcast.Position{Epoch: "stale", Offset: 1}))
		_, err = lost.Next(ctx)
		require.ErrorIs(t, err, broadcast.ErrResync)
		pub.snapshot(func(r *recorder) { require.Contains(t, r.resyncs, resync{"hk", broadcast.ResyncSince}) })

		// A failed publish: reported with its error and no position.
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err = hubs[0].Publish(cctx, "hk", []byte(`3`))
		require.ErrorIs(t, err, context.Canceled)
		pub.snapshot(func(r *recorder) {
			last := r.published[len(r.published)-1]
			require.True(t, errors.Is(last.err, context.Canceled), "got %v, want context.Canceled", last.err)
			require.Equal(t, broadcast.Position{}, last.pos)
		})
	})
	t.Run("presence", func(t *testing.T) {
		hubs := d.hubs(t, 1)
		rec := recorderOf(t, hubs[0])
		watcher := subscribe(t, hubs[0], "room", broadcast.PresenceEvents())
		a := subscribe(t, hubs[0], "room", broadcast.AsMember(broadcast.Member{ClientID: "a", UserID: "ann"}))
		_ = subscribe(t, hubs[0], "room", broadcast.AsMember(broadcast.Member{ClientID: "b"}))
		require.Equal(t, broadcast.Join, next(t, watcher, 10*time.Second).Kind)
		require.NoError(t, a.Close())
		rec.snapshot(func(r *recorder) {
			require.Len(t, r.joins, 2)
			require.Equal(t, presenceRec{"room", broadcast.Member{ClientID: "a", UserID: "ann", Node: hubs[0].NodeID()}}, r.joins[0])
			require.Equal(t, []presenceRec{{"room", broadcast.Member{ClientID: "a", UserID: "ann", Node: hubs[0].NodeID()}}}, r.leaves)
		})
		waitFor(t, 10*time.Second, "the join and leave events delivered", func() bool {
			n := 0
			rec.snapshot(func(r *recorder) { n = r.delivered[broadcast.Join] + r.delivered[broadcast.Leave] })
			return n >= 3
		})
		require.NoError(t, hubs[0].Close())
		rec.snapshot(func(r *recorder) {
			require.Len(t, r.leaves, 2, "Close leaves for the members left")
			require.Equal(t, "b", r.leaves[1].m.ClientID)
		})
	})
	for _, policy := range []broadcast.SlowPolicy{broadcast.Disconnect, broadcast.Resync} {
		t.Run("slow-"+policy.String(), func(t *testing.T) {
			hubs := d.hubs(t, 1, broadcast.WithClientBuffer(3, 1<<20), broadcast.WithSlowClient(policy))
			rec := recorderOf(t, hubs[0])
			ctx := testCtx(t, 30*time.Second)
			slow := subscribe(t, hubs[0], "slow")
			fast := subscribe(t, hubs[0], "slow")
			for range 10 {
				_, err := hubs[0].Publish(ctx, "slow", []byte(`1`))
				require.NoError(t, err)
				next(t, fast, 10*time.Second) // fast reads, slow does not
			}
			_, err := slow.Next(ctx)
			require.Error(t, err)
			rec.snapshot(func(r *recorder) {
				if policy == broadcast.Disconnect {
					require.Equal(t, []string{"slow"}, r.slow)
				} else {
					require.NotEmpty(t, r.resyncs)
					require.Equal(t, resync{"slow", broadcast.ResyncSlow}, r.resyncs[0])
				}
			})
		})
	}
}
