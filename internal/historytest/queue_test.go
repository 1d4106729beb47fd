package historytest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

type op struct {
	enqueue bool
	id      string
	o       Outcome
}

func enq(id string, o Outcome) op { return op{enqueue: true, id: id, o: o} }
func deq(id string) op            { return op{id: id} }

func TestQueueCheck(t *testing.T) {
	tests := []struct {
		name       string
		ops        []op
		valid      bool
		lost       []string
		dup        map[string]int
		unexpected []string
		recovered  []string
		failedDel  []string
		counts     [4]int // attempted, ok, failed, unknown
	}{
		{name: "empty", valid: true, dup: map[string]int{}},
		{
			name:   "all delivered once",
			ops:    []op{enq("a", OK), enq("b", OK), deq("b"), deq("a")},
			valid:  true,
			dup:    map[string]int{},
			counts: [4]int{2, 2, 0, 0},
		},
		{
			name:   "acknowledged but lost",
			ops:    []op{enq("a", OK), enq("b", OK), enq("c", OK), deq("b")},
			lost:   []string{"a", "c"},
			dup:    map[string]int{},
			counts: [4]int{3, 3, 0, 0},
		},
		{
			name:   "duplicated",
			ops:    []op{enq("a", OK), deq("a"), deq("a"), deq("a"), enq("b", OK), deq("b")},
			dup:    map[string]int{"a": 3},
			counts: [4]int{2, 2, 0, 0},
		},
		{
			name:       "unexpected",
			ops:        []op{enq("a", OK), deq("a"), deq("ghost")},
			dup:        map[string]int{},
			unexpected: []string{"ghost"},
			counts:     [4]int{1, 1, 0, 0},
		},
		{
			name:      "unknown and failed delivered are recovered, not lost",
			ops:       []op{enq("u", Unknown), enq("f", Failed), enq("u2", Unknown), deq("u"), deq("f")},
			valid:     true,
			dup:       map[string]int{},
			recovered: []string{"f", "u"},
			failedDel: []string{"f"},
			counts:    [4]int{3, 0, 1, 2},
		},
		{
			name:   "a retried id is acknowledged if any attempt was",
			ops:    []op{enq("a", Unknown), enq("a", OK), enq("a", Failed)},
			lost:   []string{"a"},
			dup:    map[string]int{},
			counts: [4]int{1, 1, 0, 0},
		},
		{
			name:      "unknown beats failed",
			ops:       []op{enq("a", Failed), enq("a", Unknown), deq("a")},
			valid:     true,
			dup:       map[string]int{},
			recovered: []string{"a"},
			counts:    [4]int{1, 0, 0, 1},
		},
		{
			name:       "everything wrong at once",
			ops:        []op{enq("a", OK), enq("b", OK), deq("b"), deq("b"), deq("z"), enq("c", Unknown)},
			lost:       []string{"a"},
			dup:        map[string]int{"b": 2},
			unexpected: []string{"z"},
			counts:     [4]int{3, 2, 0, 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var h QueueHistory
			for _, o := range tc.ops {
				if o.enqueue {
					h.Enqueue(o.id, o.o)
				} else {
					h.Dequeue(o.id)
				}
			}
			r := h.Check()
			require.Equal(t, tc.valid, r.Valid(), "report: %s", r)
			if tc.valid {
				require.NoError(t, r.Err())
			} else {
				require.Error(t, r.Err())
			}
			require.Equal(t, tc.lost, r.Lost, "lost")
			require.Equal(t, tc.dup, r.Duplicated, "duplicated")
			require.Equal(t, tc.unexpected, r.Unexpected, "unexpected")
			require.Equal(t, tc.recovered, r.Recovered, "recovered")
			require.Equal(t, tc.failedDel, r.FailedDelivered, "failed but delivered")
			require.Equal(t, tc.counts, [4]int{r.Attempted, r.Acknowledged, r.Failed, r.Unknown}, "attempted, ok, failed, unknown")
		})
	}
}

func TestQueueConcurrentRecording(t *testing.T) {
	var h QueueHistory
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 100 {
				id := fmt.Sprint(w, "-", i)
				h.Enqueue(id, OK)
				h.Dequeue(id)
			}
		})
	}
	wg.Wait()
	r := h.Check()
	require.NoError(t, r.Err())
	require.Equal(t, 800, r.Attempted)
	require.Equal(t, 800, r.Deliveries)
}

func TestQueueInvalidOutcomePanics(t *testing.T) {
	var h QueueHistory
	require.Panics(t, func() { h.Enqueue("a", 0) })
}

func TestQueueReportString(t *testing.T) {
	var h QueueHistory
	for i := range 15 {
		h.Enqueue(fmt.Sprintf("m%02d", i), OK)
	}
	s := h.Check().String()
	require.Contains(t, s, "lost 15 [m00")
	require.Contains(t, s, "…")
}

type replyErr string

func (e replyErr) Error() string { return string(e) }
func (replyErr) RedisError()     {}

func TestOutcomeOf(t *testing.T) {
	tests := []struct {
		err  error
		want Outcome
	}{
		{nil, OK},
		{replyErr("NOREPLICAS Not enough good replicas to write."), Failed},
		{fmt.Errorf("queue: publish: %w", replyErr("ERR")), Failed},
		{context.DeadlineExceeded, Unknown},
		{&net.OpError{Op: "read", Err: errors.New("i/o timeout")}, Unknown},
		{errors.New("something else"), Unknown},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, OutcomeOf(tc.err), "OutcomeOf(%v)", tc.err)
	}
	require.Equal(t, "ok", OK.String())
	require.Equal(t, "failed", Failed.String())
	require.Equal(t, "unknown", Unknown.String())
	require.Equal(t, "invalid", Outcome(0).String())
}
