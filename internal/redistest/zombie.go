package redistest

import (
	"context"
	"errors"
	"fmt"
)

// Zombie is a primary that was paused past down-after-milliseconds, replaced
// by the sentinels, and may be woken: begun by [Sentinel.BeginZombie].
//
// After [Zombie.Wake] the old primary runs again, still believing it is the
// primary, with every key it had: a client that still points at it (a plain
// client of [Zombie.Old], or a stale connection) can read and write there
// until the sentinels demote it — with the sentinel settings of
// [StartSentinel], some 4 to 8 seconds after Wake. Its writes of that window
// are discarded when it resyncs from the new primary. A primary started
// [WithMinReplicasToWrite] refuses them instead (NOREPLICAS), because its
// replica left.
type Zombie struct {
	s        *Sentinel
	old, new *Server
}

// BeginZombie waits until the deployment is settled, pauses the primary
// (SIGSTOP) and waits until the sentinels fail over on their own (down-after
// plus election and promotion: a few seconds) and the new primary answers
// ROLE master. The old primary stays paused until [Zombie.Wake].
func (s *Sentinel) BeginZombie(ctx context.Context) (*Zombie, error) {
	if err := s.WaitSettled(ctx); err != nil {
		return nil, err
	}
	old := s.Primary()
	if err := old.Pause(); err != nil {
		return nil, err
	}
	p, err := s.WaitFailover(ctx, old.Addr())
	if err != nil {
		return nil, errors.Join(err, old.Resume())
	}
	return &Zombie{s: s, old: old, new: p}, nil
}

// Old returns the old, paused (or woken) primary.
func (z *Zombie) Old() *Server { return z.old }

// New returns the primary the sentinels promoted.
func (z *Zombie) New() *Server { return z.new }

// Wake resumes the old primary (SIGCONT). Until the sentinels demote it, it
// answers as a primary.
func (z *Zombie) Wake() error { return z.old.Resume() }

// WaitDemoted waits until the sentinels have turned the woken old primary
// into a replica of the current primary, every replica is in sync and the deployment
// is writable through a Sentinel client.
func (z *Zombie) WaitDemoted(ctx context.Context) error {
	err := poll(ctx, func() error {
		cur, err := z.s.CurrentPrimary(ctx)
		if err != nil {
			return err
		}
		r, err := NodeRole(ctx, z.old.Addr())
		if err != nil {
			return err
		}
		if cur == z.old || r.Role != "slave" || r.MasterAddr != cur.Addr() {
			return fmt.Errorf("old primary %s is %s of %q, primary is %s", z.old.Addr(), r.Role, r.MasterAddr, cur.Addr())
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redistest: zombie not demoted: %w", err)
	}
	if err := z.s.WaitSettled(ctx); err != nil {
		return err
	}
	return z.s.waitWritable(ctx)
}
