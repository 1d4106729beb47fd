package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/outrigger-dev/outrigger/examples/internal/liveclient"
)

// liveCheck is TestReplicas' live check: clients on every replica (over
// WebSocket and SSE) that follow a few symbols from the first quote of the
// channels' epoch, each told to fail over to the other replicas.
type liveCheck struct {
	cancel  context.CancelFunc
	done    sync.WaitGroup
	clients []*liveWatcher
}

type liveWatcher struct {
	name   string
	client *liveclient.Client
	mu     sync.Mutex          // protects ids
	ids    map[string][]string // channel -> quote IDs in the order received
}

// startLiveCheck connects clients to every replica and waits until each is
// subscribed. They start after offset 0 of each channel's epoch, so they
// receive every quote published on it.
func startLiveCheck(t *testing.T, rs ...*replica) *liveCheck {
	t.Helper()
	var st boardState
	require.Eventually(t, func() bool {
		code, body := get(t, rs[0].base+"/v1/board", nil)
		if code != http.StatusOK || json.Unmarshal(body, &st) != nil {
			return false
		}
		for _, sb := range st.Symbols {
			if sb.Pos.Epoch == "" {
				return false
			}
		}
		return true
	}, 30*time.Second, 50*time.Millisecond, "no channel positions on %s", rs[0].name)
	start := map[string]liveclient.Position{}
	for _, sb := range st.Symbols {
		start[quoteChannelPrefix+sb.Symbol] = liveclient.Position{Epoch: sb.Pos.Epoch}
	}
	groups := [][]string{{"ACME", "GLOBX", "INITECH"}, {"UMBRL", "WAYNE", "STARK"}, {"HOOLI", "SOYL", "ACME"}}
	ctx, cancel := context.WithCancel(context.Background())
	lc := &liveCheck{cancel: cancel}
	t.Cleanup(lc.stop)
	for i, r := range rs {
		endpoints := []string{r.base}
		for _, o := range rs {
			if o != r {
				endpoints = append(endpoints, o.base)
			}
		}
		for g, syms := range groups {
			w := &liveWatcher{name: fmt.Sprintf("%s/client%d", r.name, g), ids: map[string][]string{}}
			c := &liveclient.Client{Endpoints: endpoints, Since: start, Header: http.Header{"X-Api-Key": {fmt.Sprintf("live-%d-%d", i, g)}}}
			if g == 1 {
				c.Transport = liveclient.SSE
			}
			for _, s := range syms {
				c.Channels = append(c.Channels, quoteChannelPrefix+s)
			}
			c.OnMessage = func(m liveclient.Message) {
				var q liveQuote
				if json.Unmarshal(m.Data, &q) == nil {
					w.mu.Lock()
					w.ids[m.Channel] = append(w.ids[m.Channel], q.ID)
					w.mu.Unlock()
				}
			}
			w.client = c
			lc.clients = append(lc.clients, w)
			lc.done.Go(func() { _ = c.Run(ctx) })
		}
	}
	lc.waitReady(t)
	return lc
}

// waitReady waits until every client is subscribed.
func (lc *liveCheck) waitReady(t *testing.T) {
	t.Helper()
	for _, w := range lc.clients {
		select {
		case <-w.client.Ready():
		case <-time.After(30 * time.Second):
			t.Fatalf("%s did not connect within 30s", w.name)
		}
	}
}

func (lc *liveCheck) stop() {
	lc.cancel()
	lc.done.Wait()
}

// verify waits until every client has reached the end of its channels and
// checks that each received every stored quote of its symbols exactly once
// (the IDs of the channel's quotes, in offset order: none missing, none
// repeated) and that the outbox was emptied.
func (lc *liveCheck) verify(t *testing.T, db *database) {
	t.Helper()
	ctx := context.Background()
	want := map[string]map[string]bool{} // channel -> stored IDs
	for _, sym := range symbols {
		rows, err := db.db.QueryContext(ctx, `SELECT id FROM quotes WHERE symbol = `+db.d.placeholder(1), sym)
		require.NoError(t, err)
		ids := map[string]bool{}
		for rows.Next() {
			var id string
			require.NoError(t, rows.Scan(&id))
			ids[id] = true
		}
		require.NoError(t, rows.Err())
		rows.Close()
		want[quoteChannelPrefix+sym] = ids
	}
	for _, w := range lc.clients {
		require.Eventually(t, func() bool {
			pos := w.client.Positions()
			for _, ch := range w.client.Channels {
				if pos[ch].Offset < uint64(len(want[ch])) {
					return false
				}
			}
			return true
		}, 60*time.Second, 100*time.Millisecond, "%s did not receive every stored quote: at %v", w.name, w.client.Positions())
		st := w.client.Stats()
		t.Logf("%s: %d messages, %d connections, connect %v", w.name, st.Messages, st.Connects, st.ConnectTime.Round(time.Millisecond))
		require.Zero(t, st.Missing, "%s: offsets missing", w.name)
		require.Zero(t, st.Repeated, "%s: offsets repeated", w.name)
		require.Zero(t, st.Resyncs, "%s: resyncs", w.name)
		w.mu.Lock()
		for _, ch := range w.client.Channels {
			got := w.ids[ch]
			seen := map[string]bool{}
			for _, id := range got {
				require.False(t, seen[id], "%s: quote %s delivered twice on %s", w.name, id, ch)
				seen[id] = true
				require.True(t, want[ch][id], "%s: quote %s on %s is not stored", w.name, id, ch)
			}
			require.Len(t, got, len(want[ch]), "%s: %s", w.name, ch)
		}
		w.mu.Unlock()
	}
	// A replica unstages a batch after publishing all of it, so the last
	// quotes can reach the clients a moment before their rows leave.
	require.Eventually(t, func() bool {
		n, err := db.countStaged(ctx)
		return err == nil && n == 0
	}, 30*time.Second, 50*time.Millisecond, "quotes left in the outbox")
}

// reconnected reports the clients of replica r that connected more than once.
func (lc *liveCheck) reconnected(r *replica) int {
	n := 0
	for _, w := range lc.clients {
		if w.client.Endpoints[0] == r.base && w.client.Stats().Connects > 1 {
			n++
		}
	}
	return n
}
