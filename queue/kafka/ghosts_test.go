package kafka

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ghostAfter is how long a member of no live process may stay in the group
// before reapGhosts removes it: several session timeouts of crashConfig,
// so that the broker's own expiry, which TestCrash tests, comes first
// whenever it works.
const ghostAfter = 8 * time.Second

// ghostReaper removes group members left behind by killed processes that
// the broker never expires. It works around a bug of kfake (the version in
// go.mod, groups.go, group.reply): a member killed after it sent JoinGroup
// and before the reply gets no session timer once the reply fails to
// send, so the broker keeps it, and the partitions assigned to it go
// unread, forever. A real broker expires it after the session timeout
// (Kafka schedules the heartbeat expiry of every member when the join
// completes). A ghost seen for ghostAfter is removed as that expiry would
// remove it: a LeaveGroup for its member ID, which starts a rebalance.
type ghostReaper struct {
	cl    *kgo.Client
	group string

	mu     sync.Mutex
	live   map[int]bool         // pids of the processes running consumers
	seen   map[string]time.Time // member ID → first seen as a ghost
	reaped []string
}

func newGhostReaper(t *testing.T, brokers []string, group string) *ghostReaper {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	return &ghostReaper{cl: cl, group: group, live: map[int]bool{}, seen: map[string]time.Time{}}
}

// started and stopped tell which processes are alive.
func (g *ghostReaper) started(pid int) { g.mu.Lock(); g.live[pid] = true; g.mu.Unlock() }
func (g *ghostReaper) stopped(pid int) { g.mu.Lock(); delete(g.live, pid); g.mu.Unlock() }

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

// ghosts returns the members of no live process seen for ghostAfter. A
// consumer's client ID holds "-<pid>-" (Consume's default consumer name).
func (g *ghostReaper) ghosts(members []kadm.DescribedGroupMember, now time.Time) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	current := map[string]bool{}
	for _, m := range members {
		current[m.MemberID] = true
		alive := false
		for pid := range g.live {
			if strings.Contains(m.ClientID, "-"+strconv.Itoa(pid)+"-") {
				alive = true
				break
			}
		}
		if alive {
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
		if !current[id] {
			delete(g.seen, id) // expired by the broker
		}
	}
	return out
}
