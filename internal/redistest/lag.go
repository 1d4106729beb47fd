package redistest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Bounds of the replication-stream filler written by BeginLag.
const (
	lagFillerValue   = 64 << 10 // bytes per SET
	lagFillerBatch   = 16       // SETs per round trip
	lagPendingTarget = 1 << 20  // user-space backlog that proves the kernel buffers are full
	lagFillerMax     = 48 << 20 // stay under the replica output buffer soft limit (64mb)
)

// Lag is a forced replication lag, begun by [Sentinel.BeginLag] or
// [Cluster.BeginShardLag]: the replicas of a primary are paused (SIGSTOP)
// and the primary holds the tail of its replication stream in its own
// memory, where no replica will ever read it. Every write the primary
// acknowledges from then on exists only on the primary, so [Lag.FailOver] —
// which kills the primary before resuming the replicas and promotes one —
// really loses it, as a failover to a lagging replica does in production. On
// loopback, replication is otherwise immediate and a naive failover test
// loses nothing.
//
// How: pausing a replica alone is not enough, because its kernel still
// buffers what the primary sends and hands it over after SIGCONT even when
// the primary is dead. So BeginLag writes filler (64 KiB SETs to one key,
// up to 48 MiB) until the primary reports at least 1 MiB of unsent stream
// for every replica (CLIENT LIST omem): the kernel buffers are full and
// anything written afterwards stays in the primary's process.
//
// A Lag is used by one goroutine; the caller's writes happen between BeginLag
// and FailOver (or Abort).
type Lag struct {
	primary  *Server
	replicas []*Server
	filler   int64
	pending  int64
	promote  func(ctx context.Context) (*Server, error)

	mu   sync.Mutex // protects done
	done bool
}

// BeginLag waits until the replicas are in sync (writes made before the call
// survive), pauses every running replica and fills the replication stream,
// as described on [Lag]. The caller then writes to the primary — through
// [Sentinel.Client] or a client of [Lag.Primary] — and calls [Lag.FailOver].
func (s *Sentinel) BeginLag(ctx context.Context) (*Lag, error) {
	if err := s.WaitSettled(ctx); err != nil {
		return nil, err
	}
	primary := s.Primary()
	replicas := s.runningReplicas()
	l, err := beginLag(ctx, primary, replicas, "redistest:lag-filler")
	if err != nil {
		return nil, err
	}
	l.promote = func(ctx context.Context) (*Server, error) {
		if err := s.requestFailover(ctx); err != nil {
			return nil, err
		}
		p, err := s.WaitFailover(ctx, primary.Addr())
		if err != nil {
			return nil, err
		}
		// Bring the old primary back as a crash-restarted, empty replica of the
		// new one, as a supervisor would, so the deployment has its replicas
		// again (and min-replicas-to-write can be met).
		if err := primary.Start(); err != nil {
			return p, err
		}
		if err := replicaOf(ctx, primary, p); err != nil {
			return p, err
		}
		if err := s.WaitSettled(ctx); err != nil {
			return p, err
		}
		return s.Primary(), s.waitWritable(ctx)
	}
	return l, nil
}

func beginLag(ctx context.Context, primary *Server, replicas []*Server, fillerKey string) (*Lag, error) {
	if len(replicas) == 0 {
		return nil, errors.New("redistest: no running replica to lag")
	}
	if err := WaitInSync(ctx, primary, replicas...); err != nil {
		return nil, err
	}
	l := &Lag{primary: primary, replicas: slices.Clone(replicas)}
	for _, r := range replicas {
		if err := r.Pause(); err != nil {
			_ = l.resume()
			return nil, err
		}
	}
	c := adminClient(primary.Addr())
	defer c.Close()
	value := bytes.Repeat([]byte("x"), lagFillerValue)
	for {
		pending, err := replicaOutputBytes(ctx, c)
		if err != nil {
			_ = l.resume()
			return nil, fmt.Errorf("redistest: CLIENT LIST on %s: %w", primary.Addr(), err)
		}
		if len(pending) < len(replicas) {
			_ = l.resume()
			return nil, fmt.Errorf("redistest: primary %s has %d replica connections, want %d", primary.Addr(), len(pending), len(replicas))
		}
		if m := slices.Min(pending); m >= lagPendingTarget {
			l.pending = m
			return l, nil
		}
		if l.filler >= lagFillerMax {
			_ = l.resume()
			return nil, fmt.Errorf("redistest: %d bytes of filler did not fill the replication buffers (pending %v)", l.filler, pending)
		}
		_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for range lagFillerBatch {
				p.Set(ctx, fillerKey, value, 0)
			}
			return nil
		})
		if err != nil {
			_ = l.resume()
			return nil, fmt.Errorf("redistest: filler on %s: %w", primary.Addr(), err)
		}
		l.filler += lagFillerBatch * lagFillerValue
	}
}

// Primary returns the primary whose acknowledged writes will be lost.
func (l *Lag) Primary() *Server { return l.primary }

// Replicas returns the paused replicas.
func (l *Lag) Replicas() []*Server { return slices.Clone(l.replicas) }

// FillerBytes returns how many bytes of filler BeginLag wrote.
func (l *Lag) FillerBytes() int64 { return l.filler }

// PendingBytes returns the smallest per-replica backlog (CLIENT LIST omem)
// the primary held in user space when BeginLag returned.
func (l *Lag) PendingBytes() int64 { return l.pending }

// FailOver kills the primary (SIGKILL), resumes the replicas, promotes one
// and waits until it is the primary and writable through a client of the
// deployment; it returns the new primary. Writes acknowledged by the old
// primary since BeginLag are gone.
//
// On a [Sentinel] deployment it asks a sentinel for SENTINEL FAILOVER,
// restarts the old primary (empty, as after a crash) as a replica of the new
// one and waits until it is in sync. On a [Cluster] it runs CLUSTER FAILOVER
// TAKEOVER on the shard's replica and leaves the old master stopped (see
// [Cluster.RejoinNode]).
func (l *Lag) FailOver(ctx context.Context) (*Server, error) {
	if err := l.finish(); err != nil {
		return nil, err
	}
	if err := l.primary.Kill(); err != nil {
		return nil, err
	}
	if err := l.resume(); err != nil {
		return nil, err
	}
	return l.promote(ctx)
}

// Abort resumes the replicas without a failover: they catch up, and nothing
// is lost.
func (l *Lag) Abort() error {
	if err := l.finish(); err != nil {
		return err
	}
	return l.resume()
}

func (l *Lag) finish() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return errors.New("redistest: lag already ended")
	}
	l.done = true
	return nil
}

func (l *Lag) resume() error {
	var errs []error
	for _, r := range l.replicas {
		if r.Running() {
			errs = append(errs, r.Resume())
		}
	}
	return errors.Join(errs...)
}

// replicaOf makes s a replica of primary.
func replicaOf(ctx context.Context, s, primary *Server) error {
	c := adminClient(s.Addr())
	defer c.Close()
	if err := c.Do(ctx, "REPLICAOF", "127.0.0.1", primary.port).Err(); err != nil {
		return fmt.Errorf("redistest: REPLICAOF on %s: %w", s.Addr(), err)
	}
	return nil
}
