package broadcast

import (
	"context"
	"time"

	"sync"
)

// Subscription receives the messages of one channel, in offset order, from
// Hub.Subscribe. Its buffer is bounded by WithClientBuffer; a subscriber
// that falls behind further is handled by WithSlowClient. Next must be called
// by one goroutine at a time; Position, Recovered and Close are safe for
// concurrent use.
type Subscription struct {
	h       *Hub
	channel string
	member  *Member

	mu        sync.Mutex // protects the fields below
	queue     []*event
	head      int // queue[head:] is what Next has not returned
	bytes     int
	pos       Position
	recovered bool
	err       error // terminal: ErrClosed or ErrSlowSubscriber
	notify    chan struct{}
}

func newSubscription(h *Hub, channel string) *Subscription {
	return &Subscription{h: h, channel: channel, notify: make(chan struct{}, 1)}
}

// start records what attach found; events may already be queued.
func (s *Subscription) start(pos Position, recovered bool, member *Member) {
	s.mu.Lock()
	s.pos, s.recovered, s.member = pos, recovered, member
	s.mu.Unlock()
}

// Channel returns the subscription's channel.
func (s *Subscription) Channel() string { return s.channel }

// deliver implements sink.
func (s *Subscription) deliver(e *event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return
	}
	if e.kind == kindResync {
		s.dropLocked()
		s.pushLocked(e)
		return
	}
	if len(s.queue)-s.head >= s.h.cfg.bufMessages || s.bytes+e.size() > s.h.cfg.bufBytes {
		s.dropLocked()
		if s.h.cfg.slow == Disconnect {
			s.err = ErrSlowSubscriber
			s.h.slowDisconnected(s.channel)
			s.h.goTracked(func() { s.h.detach(context.Background(), s.channel, s, s.member) })
			s.wakeLocked()
			return
		}
		s.h.resynced(s.channel, ResyncSlow)
		s.pushLocked(&event{kind: kindResync, channel: s.channel, pos: e.pos, reason: ResyncSlow})
		return
	}
	s.pushLocked(e)
}

func (s *Subscription) pushLocked(e *event) {
	s.queue = append(s.queue, e)
	s.bytes += e.size()
	s.wakeLocked()
}

func (s *Subscription) dropLocked() {
	clear(s.queue)
	s.queue, s.head, s.bytes = s.queue[:0], 0, 0
}

func (s *Subscription) wakeLocked() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Next returns the next message, waiting for it until ctx is done. It
// returns ErrResync when messages were missed that the history cannot give
// back (the caller reloads its state; the following calls return newer
// messages), ErrSlowSubscriber when the subscription was closed for falling
// behind, and ErrClosed after Close or Hub.Close. Message.Data and
// Message.Headers are shared with other subscribers: do not modify them.
func (s *Subscription) Next(ctx context.Context) (Message, error) {
	for {
		s.mu.Lock()
		if s.head < len(s.queue) {
			e := s.queue[s.head]
			s.queue[s.head] = nil
			s.head++
			s.bytes -= e.size()
			if s.head == len(s.queue) {
				s.queue, s.head = s.queue[:0], 0
			} else if s.head > 64 && s.head*2 > len(s.queue) {
				n := copy(s.queue, s.queue[s.head:])
				clear(s.queue[n:])
				s.queue, s.head = s.queue[:n], 0
			}
			if e.kind == kindResync {
				s.pos = e.pos
				s.mu.Unlock()
				return Message{}, ErrResync
			}
			if e.kind == Publication {
				s.pos = e.pos
			}
			s.mu.Unlock()
			return Message{Kind: e.kind, Channel: e.channel, Data: e.data, Position: e.pos, Member: e.member, Headers: e.headers}, nil
		}
		if s.err != nil {
			err := s.err
			s.mu.Unlock()
			return Message{}, err
		}
		s.mu.Unlock()
		select {
		case <-s.notify:
		case <-ctx.Done():
			return Message{}, context.Cause(ctx)
		}
	}
}

// Position returns the position of the last publication Next returned (at
// first, the position the subscription started after). Pass it to Since to
// resume on any Hub.
func (s *Subscription) Position() Position {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pos
}

// Recovered reports whether the Since position was honoured: everything
// after it is delivered, with nothing missing.
func (s *Subscription) Recovered() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recovered
}

// Close ends the subscription and removes its member from presence (a
// Leave event is published). Next then returns ErrClosed. Closing twice is
// a no-op.
func (s *Subscription) Close() error {
	s.mu.Lock()
	if s.err == ErrClosed {
		s.mu.Unlock()
		return nil
	}
	slow := s.err != nil
	s.err = ErrClosed
	s.dropLocked()
	s.wakeLocked()
	s.mu.Unlock()
	if !slow { // a slow subscription was detached already
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.h.detach(ctx, s.channel, s, s.member)
	}
	return nil
}

// closeHub ends the subscription because the Hub closes; the Hub removes
// the presence itself.
func (s *Subscription) closeHub() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = ErrClosed
	}
	s.wakeLocked()
}
