package kafka

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ghostAfter is how long a member whose client is gone may stay in the group
// before reapGhosts removes it: several session timeouts of crashConfig,
// so that the broker's own expiry, which TestCrash tests, comes first
// whenever it works.
const ghostAfter = 8 * time.Second

// ghostReaper removes group members left behind by killed processes or
// stopped consumers that the broker never expires. It works around a bug
// of kfake (the version in go.mod, groups.go, group.reply): a member
// killed or closed after it sent JoinGroup and before the reply gets no
// session timer once the reply fails to send, so the broker keeps it, and
// the partitions assigned to it go unread, forever. A real broker expires it after the session timeout
// (Kafka schedules the heartbeat expiry of every member when the join
// completes). A ghost seen for ghostAfter is removed as that expiry would
// remove it: a LeaveGroup for its member ID, which starts a rebalance.
type ghostReaper struct {
	cl    *kgo.Client
	group string
	alive func(clientID string) bool // whether a member's client still runs

	mu     sync.Mutex
	seen   map[string]time.Time // member ID → first seen as a ghost
	reaped []string
}

func newGhostReaper(t testing.TB, brokers []string, group string, alive func(clientID string) bool) *ghostReaper {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	return &ghostReaper{cl: cl, group: group, alive: alive, seen: map[string]time.Time{}}
}

// pids tracks the processes running consumers, for a reaper of killed
// child processes: a consumer's client ID holds "-<pid>-" (Consume's
// default consumer name).
type pids struct {
	mu   sync.Mutex
	live map[int]bool
}

func (p *pids) started(pid int) { p.mu.Lock(); p.live[pid] = true; p.mu.Unlock() }
func (p *pids) stopped(pid int) { p.mu.Lock(); delete(p.live, pid); p.mu.Unlock() }

func (p *pids) alive(clientID string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pid := range p.live {
		if strings.Contains(clientID, "-"+strconv.Itoa(pid)+"-") {
			return true
		}
	}
	return false
}

// reapGhosts runs a ghost reaper for q's group while the test runs, with
// q's own Consume calls as the live members: a member of a Consume that
// returned is a ghost. It does nothing on a real broker, which expires
// such members itself.
func reapGhosts(t testing.TB, q *Queue) {
	if os.Getenv(EnvBrokers) != "" {
		return
	}
	newGhostReaper(t, q.cfg.Brokers, q.group, q.runsClient).runUntilCleanup(t)
}

// runUntilCleanup runs g until t's cleanup, which logs the members removed.
func (g *ghostReaper) runUntilCleanup(t testing.TB) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan []string, 1)
	go func() { done <- g.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if ids := <-done; len(ids) > 0 {
			t.Logf("removed %d group members whose client was gone and that the broker never expired (kfake bug, see ghostReaper): %v", len(ids), ids)
		}
	})
}

// runsClient reports whether one of q's Consume calls runs a client with
// this client ID.
func (q *Queue) runsClient(clientID string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for d := range q.consumers {
		if id, _ := d.cl.OptValue(kgo.ClientID).(string); id == clientID {
			return true
		}
	}
	return false
}

// run checks the group every 250ms until ctx is done, then closes the
// client and returns the member IDs it removed.
func (g *ghostReaper) run(ctx context.Context) []string {
	defer g.cl.Close()
	adm := kadm.NewClient(g.cl)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			g.mu.Lock()
			defer g.mu.Unlock()
			return g.reaped
		case <-tick.C:
		}
		dgs, err := adm.DescribeGroups(ctx, g.group)
		if err != nil {
			continue // the next tick
		}
		dg, ok := dgs[g.group]
		if !ok || dg.Err != nil {
			continue
		}
		for _, id := range g.ghosts(dg.Members, time.Now()) {
			req := kmsg.NewPtrLeaveGroupRequest()
			req.Group = g.group
			m := kmsg.NewLeaveGroupRequestMember()
			m.MemberID = id
			req.Members = append(req.Members, m)
			if _, err := req.RequestWith(ctx, g.cl); err == nil {
				g.mu.Lock()
				g.reaped = append(g.reaped, id)
				delete(g.seen, id)
				g.mu.Unlock()
			}
		}
	}
}

// ghosts returns the members whose client does not run, seen for
// ghostAfter.
func (g *ghostReaper) ghosts(members []kadm.DescribedGroupMember, now time.Time) []string {
	alive := make(map[string]bool, len(members))
	for _, m := range members {
		alive[m.MemberID] = g.alive(m.ClientID)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for _, m := range members {
		if alive[m.MemberID] {
			delete(g.seen, m.MemberID)
			continue
		}
		first, ok := g.seen[m.MemberID]
		if !ok {
			g.seen[m.MemberID] = now
			continue
		}
		if now.Sub(first) >= ghostAfter {
			out = append(out, m.MemberID)
		}
	}
	for id := range g.seen {
		if _, ok := alive[id]; !ok {
			delete(g.seen, id) // expired by the broker
		}
	}
	return out
}
