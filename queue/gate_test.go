package queue

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type gateCtxKey struct{}

// gateDriver serves its messages once each and records the settlements;
// as a Gate it refuses the messages in refuse and hands the others a ctx
// carrying their body, counting done calls.
type gateDriver struct {
	mu      sync.Mutex
	pending []*Delivery
	refuse  map[string]bool
	settled map[string]Outcome
	done    map[string]int
	all     chan struct{} // closed when every message is settled
	total   int
}

func newGateDriver(bodies []string, refuse ...string) *gateDriver {
	d := &gateDriver{refuse: map[string]bool{}, settled: map[string]Outcome{}, done: map[string]int{},
		all: make(chan struct{}), total: len(bodies)}
	for _, b := range bodies {
		d.pending = append(d.pending, &Delivery{Message: &Message{ID: b, Body: []byte(b), Attempt: 1}})
	}
	for _, r := range refuse {
		d.refuse[r] = true
	}
	return d
}

func (d *gateDriver) Fetch(ctx context.Context, most int) ([]*Delivery, error) {
	d.mu.Lock()
	n := min(most, len(d.pending))
	out := d.pending[:n:n]
	d.pending = d.pending[n:]
	d.mu.Unlock()
	if n == 0 {
		<-ctx.Done()
	}
	return out, nil
}

func (d *gateDriver) Settle(_ context.Context, ss []Settlement) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range ss {
		d.settled[s.Delivery.Message.ID] = s.Outcome
	}
	if len(d.settled) == d.total {
		close(d.all)
	}
	return nil
}

func (d *gateDriver) Leave(context.Context) {}

func (d *gateDriver) Enter(ctx context.Context, dl *Delivery) (context.Context, func(), bool) {
	id := dl.Message.ID
	if d.refuse[id] {
		return nil, nil, false
	}
	return context.WithValue(ctx, gateCtxKey{}, id), func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.done[id]++
	}, true
}

// TestGate: a Driver that is a Gate decides, message by message, whether
// the handler runs and with which ctx; done is called once after the
// handler returned (also after a failure or a panic); a refused message is
// released without running the handler, and OnProcessed sees its outcome.
func TestGate(t *testing.T) {
	tests := []struct {
		name    string
		bodies  []string
		refuse  []string
		fail    map[string]error // handler results
		panicOn string
		want    map[string]Outcome
	}{
		{
			name:   "all entered",
			bodies: []string{"a", "b", "c"},
			want:   map[string]Outcome{"a": OutcomeAck, "b": OutcomeAck, "c": OutcomeAck},
		},
		{
			name:   "one refused",
			bodies: []string{"a", "b", "c"},
			refuse: []string{"b"},
			want:   map[string]Outcome{"a": OutcomeAck, "b": OutcomeRelease, "c": OutcomeAck},
		},
		{
			name:    "failure and panic",
			bodies:  []string{"a", "b", "c"},
			fail:    map[string]error{"a": Permanent(errors.New("bad"))},
			panicOn: "c",
			want:    map[string]Outcome{"a": OutcomeDeadLetter, "b": OutcomeAck, "c": OutcomeRetry},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newGateDriver(tt.bodies, tt.refuse...)
			var mu sync.Mutex
			ran := map[string]bool{}
			wrongCtx := map[string]any{}
			processed := map[string]Outcome{}
			spec, err := NewConsumeSpec(func(ctx context.Context, m *Message) error {
				mu.Lock()
				ran[m.ID] = true
				if v := ctx.Value(gateCtxKey{}); v != m.ID {
					wrongCtx[m.ID] = v
				}
				mu.Unlock()
				if m.ID == tt.panicOn {
					panic("handler bug")
				}
				return tt.fail[m.ID]
			}, Concurrency(2), MaxAttempts(3))
			require.NoError(t, err)
			spec.Observe("q", &Hooks{OnProcessed: func(_ context.Context, _ string, m *Message, _ time.Duration, _ error, o Outcome) {
				mu.Lock()
				defer mu.Unlock()
				processed[m.ID] = o
			}})
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() { errc <- spec.Run(ctx, d, nil, nil) }()
			select {
			case <-d.all:
			case <-time.After(20 * time.Second):
				t.Fatal("not every message was settled")
			}
			cancel()
			require.NoError(t, <-errc)

			d.mu.Lock()
			defer d.mu.Unlock()
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, tt.want, d.settled, "settlements")
			assert.Equal(t, tt.want, processed, "OnProcessed outcomes")
			assert.Empty(t, wrongCtx, "handlers that did not get Enter's ctx")
			for _, b := range tt.bodies {
				refused := false
				for _, r := range tt.refuse {
					refused = refused || r == b
				}
				assert.Equal(t, !refused, ran[b], "handler ran %s", b)
				if refused {
					assert.Zero(t, d.done[b], "done of refused %s", b)
				} else {
					assert.Equal(t, 1, d.done[b], "done of %s", b)
				}
			}
		})
	}
}
