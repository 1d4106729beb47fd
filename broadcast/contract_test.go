package broadcast_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/broadcast"
	"github.com/outrigger-dev/outrigger/internal/historytest"
)

// TestContract runs one table of behaviours on every deployment: the
// in-process Hub, Redis (single node) and a 3-master Redis Cluster.
func TestContract(t *testing.T) {
	leakCheck(t)
	for _, d := range deployments(t) {
		t.Run(d.name, func(t *testing.T) {
			t.Run("fan-out-3-hubs", func(t *testing.T) { testFanOut(t, d) })
			t.Run("recover-on-another-hub", func(t *testing.T) { testRecoverElsewhere(t, d) })
			t.Run("history-overflow-resync", func(t *testing.T) { testOverflow(t, d) })
			t.Run("other-epoch-resync", func(t *testing.T) { testOtherEpoch(t, d) })
			t.Run("no-history", func(t *testing.T) { testNoHistory(t, d) })
			t.Run("presence", func(t *testing.T) { testPresence(t, d) })
			t.Run("slow-subscriber", func(t *testing.T) { testSlowSubscriber(t, d) })
			t.Run("interest-only", func(t *testing.T) { testInterest(t, d) })
			t.Run("invalid-input", func(t *testing.T) { testInvalid(t, d) })
			t.Run("hooks", func(t *testing.T) { testHooks(t, d) })
		})
	}
}

// testFanOut: 3 Hubs, 2 subscribers on each, 1000 messages published
// round-robin on all three: every subscriber gets all of them, once, in
// offset order.
func testFanOut(t *testing.T, d deployment) {
	const n, perHub = 1000, 2
	hubs := d.hubs(t, 3)
	var subs []*broadcast.Subscription
	for _, h := range hubs {
		for range perHub {
			subs = append(subs, subscribe(t, h, "fan"))
		}
	}
	ctx := testCtx(t, 60*time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, len(hubs))
	for i, h := range hubs {
		wg.Go(func() {
			for k := i; k < n; k += len(hubs) {
				if _, err := h.Publish(ctx, "fan", []byte(strconv.Itoa(k))); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	got := make([]map[string]int, len(subs))
	for i, s := range subs {
		wg.Go(func() {
			got[i] = map[string]int{}
			var last broadcast.Position
			for range n {
				m, err := s.Next(ctx)
				if err != nil {
					errs <- fmt.Errorf("subscriber %d: %w", i, err)
					return
				}
				if !last.IsZero() && (m.Position.Epoch != last.Epoch || m.Position.Offset != last.Offset+1) {
					errs <- fmt.Errorf("subscriber %d: got offset %v after %v, want the next one", i, m.Position, last)
					return
				}
				last = m.Position
				got[i][string(m.Data)]++
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range subs {
		require.Len(t, got[i], n, "subscriber %d: distinct messages", i)
		for k, c := range got[i] {
			require.Equal(t, 1, c, "subscriber %d got %s %d times", i, k, c)
		}
	}
	var published uint64
	for _, h := range uniq(hubs) {
		published += h.Stats().Published
	}
	require.Equal(t, uint64(n), published)
}

func uniq(hubs []*broadcast.Hub) []*broadcast.Hub {
	var out []*broadcast.Hub
	seen := map[*broadcast.Hub]bool{}
	for _, h := range hubs {
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out
}

// testRecoverElsewhere: a subscriber on Hub A reads part of a stream and
// goes away while Hub C keeps publishing; it comes back on Hub B with
// Since and gets exactly the rest: 0 lost, 0 duplicated.
func testRecoverElsewhere(t *testing.T, d deployment) {
	const n = 200
	hubs := d.hubs(t, 3)
	ctx := testCtx(t, 60*time.Second)
	var hist historytest.QueueHistory
	first := subscribe(t, hubs[0], "rec")
	done := make(chan error, 1)
	go func() {
		for k := range n {
			_, err := hubs[2].Publish(ctx, "rec", []byte(strconv.Itoa(k)))
			hist.Enqueue(strconv.Itoa(k), historytest.OutcomeOf(err))
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for range n / 3 {
		m := next(t, first, 30*time.Second)
		hist.Dequeue(string(m.Data))
	}
	pos := first.Position()
	require.NoError(t, first.Close())

	second := subscribe(t, hubs[1], "rec", broadcast.Since(pos))
	require.True(t, second.Recovered(), "Since %v on another Hub", pos)
	require.Equal(t, pos, second.Position())
	for range n - n/3 {
		m := next(t, second, 30*time.Second)
		hist.Dequeue(string(m.Data))
	}
	require.NoError(t, <-done)
	r := hist.Check()
	require.NoError(t, r.Err(), r.String())
	require.Equal(t, n, r.Delivered)
}

// testOverflow: a position older than the history gets ErrResync, then the
// subscription carries on.
func testOverflow(t *testing.T, d deployment) {
	hubs := d.hubs(t, 2, broadcast.WithHistory(10, time.Minute))
	ctx := testCtx(t, 30*time.Second)
	pos, err := hubs[0].Publish(ctx, "ovf", []byte(`"first"`))
	require.NoError(t, err)
	for k := range 30 {
		_, err := hubs[0].Publish(ctx, "ovf", []byte(strconv.Itoa(k)))
		require.NoError(t, err)
	}
	s := subscribe(t, hubs[1], "ovf", broadcast.Since(pos))
	require.False(t, s.Recovered())
	_, err = s.Next(ctx)
	require.ErrorIs(t, err, broadcast.ErrResync)
	require.Equal(t, uint64(31), s.Position().Offset, "after a resync the position is the current one")
	p2, err := hubs[0].Publish(ctx, "ovf", []byte(`"after"`))
	require.NoError(t, err)
	m := next(t, s, 10*time.Second)
	require.Equal(t, `"after"`, string(m.Data))
	require.Equal(t, p2, m.Position)

	// Within the history: recovered.
	s2 := subscribe(t, hubs[1], "ovf", broadcast.Since(broadcast.Position{Epoch: pos.Epoch, Offset: 25}))
	require.True(t, s2.Recovered())
	for want := uint64(26); want <= 32; want++ {
		require.Equal(t, want, next(t, s2, 10*time.Second).Position.Offset)
	}
}

// testOtherEpoch: a position of another epoch (history lost) gets ErrResync.
func testOtherEpoch(t *testing.T, d deployment) {
	hubs := d.hubs(t, 1)
	ctx := testCtx(t, 30*time.Second)
	pos, err := hubs[0].Publish(ctx, "ep", []byte(`1`))
	require.NoError(t, err)
	require.NotEmpty(t, pos.Epoch)
	require.Equal(t, uint64(1), pos.Offset)
	for _, since := range []broadcast.Position{{Epoch: "stale", Offset: 1}, {Epoch: pos.Epoch, Offset: 99}, {}} {
		s := subscribe(t, hubs[0], "ep", broadcast.Since(since))
		require.False(t, s.Recovered(), "since %v", since)
		_, err = s.Next(ctx)
		require.ErrorIs(t, err, broadcast.ErrResync, "since %v", since)
		require.Equal(t, pos, s.Position())
		require.NoError(t, s.Close())
	}
	s := subscribe(t, hubs[0], "ep", broadcast.Since(pos))
	require.True(t, s.Recovered(), "the current position needs nothing")
}

// testNoHistory: WithHistory(0, 0) keeps positions but no messages.
func testNoHistory(t *testing.T, d deployment) {
	hubs := d.hubs(t, 2, broadcast.WithHistory(0, 0))
	ctx := testCtx(t, 30*time.Second)
	live := subscribe(t, hubs[1], "nh")
	p1, err := hubs[0].Publish(ctx, "nh", []byte(`1`))
	require.NoError(t, err)
	_, err = hubs[0].Publish(ctx, "nh", []byte(`2`))
	require.NoError(t, err)
	require.Equal(t, p1, next(t, live, 10*time.Second).Position)
	require.Equal(t, uint64(2), next(t, live, 10*time.Second).Position.Offset)
	s := subscribe(t, hubs[1], "nh", broadcast.Since(p1))
	require.False(t, s.Recovered())
	_, err = s.Next(ctx)
	require.ErrorIs(t, err, broadcast.ErrResync)
	s2 := subscribe(t, hubs[1], "nh", broadcast.Since(live.Position()))
	require.True(t, s2.Recovered())
}

// testPresence: members on every Hub are listed everywhere; Join and Leave
// reach PresenceEvents subscribers; Close leaves at once.
func testPresence(t *testing.T, d deployment) {
	hubs := d.hubs(t, 2)
	ctx := testCtx(t, 30*time.Second)
	watcher := subscribe(t, hubs[0], "room", broadcast.PresenceEvents())
	a := subscribe(t, hubs[0], "room", broadcast.AsMember(broadcast.Member{ClientID: "a", UserID: "ann", Info: []byte(`{"x":1}`)}))
	b := subscribe(t, hubs[1], "room", broadcast.AsMember(broadcast.Member{ClientID: "b", UserID: "bob"}))
	for _, want := range []string{"a", "b"} {
		m := next(t, watcher, 10*time.Second)
		require.Equal(t, broadcast.Join, m.Kind)
		require.Equal(t, want, m.Member.ClientID)
	}
	for _, h := range uniq(hubs) {
		ms, err := h.Presence(ctx, "room")
		require.NoError(t, err)
		require.Len(t, ms, 2)
		ids := map[string]broadcast.Member{}
		for _, m := range ms {
			ids[m.ClientID] = m
		}
		require.Equal(t, "ann", ids["a"].UserID)
		require.JSONEq(t, `{"x":1}`, string(ids["a"].Info))
		require.Equal(t, hubs[0].NodeID(), ids["a"].Node)
		require.Equal(t, hubs[1].NodeID(), ids["b"].Node)
	}
	require.NoError(t, b.Close())
	m := next(t, watcher, 10*time.Second)
	require.Equal(t, broadcast.Leave, m.Kind)
	require.Equal(t, "b", m.Member.ClientID)
	ms, err := hubs[0].Presence(ctx, "room")
	require.NoError(t, err)
	require.Len(t, ms, 1)
	require.Equal(t, "a", ms[0].ClientID)
	_ = a
	// A subscriber without PresenceEvents sees only publications.
	plain := subscribe(t, hubs[1], "room")
	_ = subscribe(t, hubs[1], "room", broadcast.AsMember(broadcast.Member{ClientID: "c"}))
	_, err = hubs[1].Publish(ctx, "room", []byte(`"hi"`))
	require.NoError(t, err)
	require.Equal(t, broadcast.Publication, next(t, plain, 10*time.Second).Kind)
}

// testSlowSubscriber: a subscriber that does not read is cut off (or
// resynced) at its buffer bound; the others are unaffected.
func testSlowSubscriber(t *testing.T, d deployment) {
	for _, policy := range []broadcast.SlowPolicy{broadcast.Disconnect, broadcast.Resync} {
		t.Run(policy.String(), func(t *testing.T) {
			hubs := d.hubs(t, 1, broadcast.WithClientBuffer(20, 1<<20), broadcast.WithSlowClient(policy))
			ctx := testCtx(t, 30*time.Second)
			slow := subscribe(t, hubs[0], "slow")
			fast := subscribe(t, hubs[0], "slow")
			for k := range 100 {
				_, err := hubs[0].Publish(ctx, "slow", []byte(strconv.Itoa(k)))
				require.NoError(t, err)
				require.Equal(t, strconv.Itoa(k), string(next(t, fast, 10*time.Second).Data))
			}
			_, err := slow.Next(ctx)
			if policy == broadcast.Disconnect {
				require.ErrorIs(t, err, broadcast.ErrSlowSubscriber)
				require.GreaterOrEqual(t, hubs[0].Stats().SlowDisconnects, uint64(1))
				return
			}
			require.ErrorIs(t, err, broadcast.ErrResync)
			_, err = hubs[0].Publish(ctx, "slow", []byte(`"more"`))
			require.NoError(t, err)
			var m broadcast.Message
			for m.Position.Offset != 101 { // what was buffered after the resync, then the new one
				m = next(t, slow, 10*time.Second)
			}
			require.Equal(t, `"more"`, string(m.Data))
		})
	}
}

// testInterest: a Hub with no subscriber of a channel gets none of its
// messages; its stats count what it handed out.
func testInterest(t *testing.T, d deployment) {
	hubs := d.hubs(t, 2)
	ctx := testCtx(t, 30*time.Second)
	s := subscribe(t, hubs[0], "int-a")
	_, err := hubs[1].Publish(ctx, "int-b", []byte(`1`))
	require.NoError(t, err)
	_, err = hubs[1].Publish(ctx, "int-a", []byte(`2`))
	require.NoError(t, err)
	m := next(t, s, 10*time.Second)
	require.Equal(t, "int-a", m.Channel)
	require.Equal(t, `2`, string(m.Data))
	st := hubs[0].Stats()
	require.Equal(t, 1, st.Channels)
	require.GreaterOrEqual(t, st.Subscriptions, 1)
	require.NoError(t, s.Close())
	waitFor(t, 5*time.Second, "channel released", func() bool { return hubs[0].Stats().Channels == 0 })
	_, err = s.Next(ctx)
	require.ErrorIs(t, err, broadcast.ErrClosed)
}

// testInvalid: bad input gets ErrInvalidArgument, nothing panics.
func testInvalid(t *testing.T, d deployment) {
	hubs := d.hubs(t, 1, broadcast.WithMaxMessageSize(100))
	h := hubs[0]
	ctx := testCtx(t, 30*time.Second)
	long := strings.Repeat("y", 256)
	for _, c := range []struct {
		name, ch string
		data     string
	}{
		{"empty channel", "", `1`},
		{"long channel", "x" + long[:255], `1`},
		{"control char", "a\nb", `1`},
		{"bad utf8", "a\xffb", `1`},
		{"not json", "c", `{`},
		{"two values", "c", `1 2`},
		{"empty data", "c", ``},
		{"too large", "c", `"` + string(make([]byte, 0)) + fmt.Sprintf("%0100d", 0) + `"`},
	} {
		_, err := h.Publish(ctx, c.ch, []byte(c.data))
		require.ErrorIs(t, err, broadcast.ErrInvalidArgument, c.name)
	}
	_, err := h.Subscribe(ctx, "")
	require.ErrorIs(t, err, broadcast.ErrInvalidArgument)
	_, err = h.Subscribe(ctx, "c", broadcast.AsMember(broadcast.Member{}))
	require.ErrorIs(t, err, broadcast.ErrInvalidArgument, "member without client ID")
	_, err = h.Subscribe(ctx, "c", broadcast.AsMember(broadcast.Member{ClientID: "x", Info: []byte(`{`)}))
	require.ErrorIs(t, err, broadcast.ErrInvalidArgument, "member info not JSON")
	_, err = h.Presence(ctx, string(make([]byte, 300)))
	require.ErrorIs(t, err, broadcast.ErrInvalidArgument)
	pos, err := h.Publish(ctx, "x"+long[:254], []byte(`true`))
	require.NoError(t, err, "255 bytes is the limit")
	require.Equal(t, uint64(1), pos.Offset)
}

func TestOptionsValidated(t *testing.T) {
	cases := []struct {
		name string
		opt  broadcast.Option
		want string
	}{
		{"prefix", broadcast.WithPrefix("a{b"), "WithPrefix"},
		{"node", broadcast.WithNodeID("a b"), "WithNodeID"},
		{"node empty", broadcast.WithNodeID(""), "WithNodeID"},
		{"history size", broadcast.WithHistory(-1, time.Minute), "WithHistory size"},
		{"history half", broadcast.WithHistory(10, 0), "WithHistory size and ttl"},
		{"presence ttl", broadcast.WithPresenceTTL(time.Millisecond), "WithPresenceTTL"},
		{"buffer", broadcast.WithClientBuffer(0, 10), "WithClientBuffer messages"},
		{"buffer bytes", broadcast.WithClientBuffer(10, 0), "WithClientBuffer bytes"},
		{"slow", broadcast.WithSlowClient(0), "WithSlowClient"},
		{"max size", broadcast.WithMaxMessageSize(1), "WithMaxMessageSize"},
		{"position ttl", broadcast.WithPositionTTL(time.Second), "WithPositionTTL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := broadcast.NewLocal(c.opt)
			require.ErrorIs(t, err, broadcast.ErrInvalidArgument)
			require.ErrorContains(t, err, c.want)
		})
	}
	_, err := broadcast.New(nil)
	require.ErrorIs(t, err, broadcast.ErrInvalidArgument)
}

func TestClosedHub(t *testing.T) {
	leakCheck(t)
	h, err := broadcast.NewLocal()
	require.NoError(t, err)
	s, err := h.Subscribe(context.Background(), "c")
	require.NoError(t, err)
	require.NoError(t, h.Close())
	require.NoError(t, h.Close())
	_, err = s.Next(context.Background())
	require.ErrorIs(t, err, broadcast.ErrClosed)
	_, err = h.Publish(context.Background(), "c", []byte(`1`))
	require.ErrorIs(t, err, broadcast.ErrClosed)
	_, err = h.Subscribe(context.Background(), "c")
	require.ErrorIs(t, err, broadcast.ErrClosed)
	require.ErrorIs(t, h.Ready(context.Background()), broadcast.ErrClosed)
	require.True(t, errors.Is(s.Close(), nil))
}
