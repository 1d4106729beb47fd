package queue

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/internal/rediserr"
)

// Stats reads the queue's counts in one atomic script call.
func (q *Redis) Stats(ctx context.Context) (Stats, error) {
	res, err := statsScript.Run(ctx, q.client, []string{q.stream, q.delayed, q.dead}, groupName).Slice()
	if err != nil {
		return Stats{}, q.noteInvalid("stats", fmt.Errorf("queue: stats: %w", err))
	}
	r := newScriptReply("stats.lua", res, 6)
	length, pending := r.int(0), r.int(1)
	st := Stats{
		Ready:    max(length-pending, 0),
		InFlight: pending,
		Pending:  pending,
		Delayed:  r.int(2),
		Dead:     r.int(3),
	}
	oldest, now := r.str(4), r.int(5)
	if r.err != nil {
		return Stats{}, q.noteInvalid("stats", fmt.Errorf("queue: stats: %w", r.err))
	}
	if oldest != "" {
		ms, _, _ := strings.Cut(oldest, "-")
		if t, err := strconv.ParseInt(ms, 10, 64); err == nil {
			st.OldestAge = max(time.Duration(now-t)*time.Millisecond, 0)
		}
	}
	return st, nil
}

// DeadLetters returns up to n dead letters, oldest first (n <= 0: all).
// Each carries the error of its last attempt in LastError.
func (q *Redis) DeadLetters(ctx context.Context, n int) ([]*Message, error) {
	var out []*Message
	start := "-"
	for {
		count := int64(1000)
		if n > 0 {
			count = int64(min(n-len(out), 1000))
		}
		xs, err := q.client.XRangeN(ctx, q.dead, start, "+", count).Result()
		if err != nil {
			return out, fmt.Errorf("queue: dead letters: %w", err)
		}
		for _, x := range xs {
			out = append(out, parseEntry(x.ID, x.Values))
		}
		if int64(len(xs)) < count || (n > 0 && len(out) >= n) {
			if out == nil {
				out = []*Message{}
			}
			return out, nil
		}
		start = "(" + xs[len(xs)-1].ID
	}
}

// Requeue moves the dead letters with the given message IDs back to the
// queue, with Attempt reset to 1 (LastError is kept). With no IDs it
// requeues every dead letter. IDs that are not dead letters are reported
// with an error matching ErrNotFound; the others are requeued anyway.
func (q *Redis) Requeue(ctx context.Context, ids ...string) error {
	if err := q.checkOpen(); err != nil {
		return err
	}
	keys := []string{q.stream, q.dead, q.deadIndex}
	if len(ids) == 0 {
		prev := ""
		for {
			xs, err := q.client.XRangeN(ctx, q.dead, "-", "+", 500).Result()
			if err != nil {
				return fmt.Errorf("queue: requeue: %w", err)
			}
			if len(xs) == 0 {
				return nil
			}
			if xs[0].ID == prev {
				// the previous call moved nothing, nor did anyone else:
				// requeue.lua does not do what it says
				return q.noteInvalid("requeue", fmt.Errorf("queue: requeue: %w",
					rediserr.BadReply("requeue.lua left dead letter %s in place", prev)))
			}
			prev = xs[0].ID
			batch := make([]any, 0, len(xs)+1)
			batch = append(batch, "entries")
			for _, x := range xs {
				batch = append(batch, x.ID)
			}
			if _, err := requeueScript.Run(ctx, q.client, keys, batch...).StringSlice(); err != nil && err != redis.Nil {
				return q.noteInvalid("requeue", fmt.Errorf("queue: requeue: %w", err))
			}
		}
	}
	var missing []string
	for len(ids) > 0 {
		n := min(len(ids), 500)
		args := make([]any, 0, n+1)
		args = append(args, "ids")
		for _, id := range ids[:n] {
			args = append(args, id)
		}
		ms, err := requeueScript.Run(ctx, q.client, keys, args...).StringSlice()
		if err != nil && err != redis.Nil {
			return q.noteInvalid("requeue", fmt.Errorf("queue: requeue: %w", err))
		}
		missing = append(missing, ms...)
		ids = ids[n:]
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s", ErrNotFound, strings.Join(missing, ", "))
	}
	return nil
}
