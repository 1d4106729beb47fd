package redistest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// adminClient returns a short-lived client for harness bookkeeping: no
// retries and short timeouts, so that a paused or dead node fails fast.
func adminClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:         addr,
		MaxRetries:   -1,
		DialTimeout:  time.Second,
		ReadTimeout:  time.Second,
		WriteTimeout: time.Second,
		PoolSize:     1,
	})
}

// Role is a node's answer to ROLE.
type Role struct {
	// Role is "master", "slave" (a replica) or "sentinel".
	Role string
	// MasterAddr is the address a replica replicates from ("" for a master).
	MasterAddr string
	// LinkState is a replica's link state ("connected" once in sync).
	LinkState string
	// Offset is the replication offset: the master's own, or the offset a
	// replica has processed.
	Offset int64
}

// NodeRole asks addr for its ROLE.
func NodeRole(ctx context.Context, addr string) (Role, error) {
	c := adminClient(addr)
	defer c.Close()
	v, err := c.Do(ctx, "ROLE").Slice()
	if err != nil {
		return Role{}, err
	}
	if len(v) == 0 {
		return Role{}, fmt.Errorf("redistest: empty ROLE reply from %s", addr)
	}
	r := Role{Role: fmt.Sprint(v[0])}
	switch r.Role {
	case "master":
		if len(v) > 1 {
			r.Offset, _ = v[1].(int64)
		}
	case "slave":
		if len(v) >= 5 {
			port, _ := v[2].(int64)
			r.MasterAddr = fmt.Sprintf("%v:%d", v[1], port)
			r.LinkState = fmt.Sprint(v[3])
			r.Offset, _ = v[4].(int64)
		}
	}
	return r, nil
}

// WaitInSync waits until every replica replicates primary, its link is up
// and it has processed the primary's whole replication stream as it was when
// the call started (or later). Use it before a fault when the test wants
// every earlier write on the replicas.
func WaitInSync(ctx context.Context, primary *Server, replicas ...*Server) error {
	pr, err := NodeRole(ctx, primary.Addr())
	if err != nil {
		return fmt.Errorf("redistest: ROLE of primary %s: %w", primary.Addr(), err)
	}
	if pr.Role != "master" {
		return fmt.Errorf("redistest: %s is %s, not master", primary.Addr(), pr.Role)
	}
	for _, r := range replicas {
		err := poll(ctx, func() error { return inSync(ctx, primary, pr.Offset, r) })
		if err != nil {
			return fmt.Errorf("redistest: replica %s not in sync with %s: %w", r.Addr(), primary.Addr(), err)
		}
	}
	return nil
}

// inSync reports nil when r replicates primary over a live link and has
// processed its stream up to offset.
func inSync(ctx context.Context, primary *Server, offset int64, r *Server) error {
	rr, err := NodeRole(ctx, r.Addr())
	if err != nil {
		return err
	}
	if rr.Role != "slave" || rr.MasterAddr != primary.Addr() {
		return fmt.Errorf("%s is %s of %q, want replica of %s", r.Addr(), rr.Role, rr.MasterAddr, primary.Addr())
	}
	if rr.LinkState != "connected" {
		return fmt.Errorf("%s: link %s", r.Addr(), rr.LinkState)
	}
	status, err := infoField(ctx, r.Addr(), "replication", "master_link_status")
	if err != nil {
		return err
	}
	if status != "up" {
		return fmt.Errorf("%s: master_link_status:%s", r.Addr(), status)
	}
	if rr.Offset < offset {
		return fmt.Errorf("%s: offset %d behind primary's %d", r.Addr(), rr.Offset, offset)
	}
	return nil
}

// infoField returns one field of an INFO section.
func infoField(ctx context.Context, addr, section, field string) (string, error) {
	c := adminClient(addr)
	defer c.Close()
	info, err := c.Info(ctx, section).Result()
	if err != nil {
		return "", err
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("redistest: %s has no INFO field %s", addr, field)
}

// replicaOutputBytes returns, for each replica connection of the primary,
// the bytes of replication stream the primary holds in user space (CLIENT
// LIST omem): data that has not reached the kernel and is gone if the
// primary dies.
func replicaOutputBytes(ctx context.Context, c *redis.Client) ([]int64, error) {
	out, err := c.Do(ctx, "CLIENT", "LIST", "TYPE", "replica").Text()
	if err != nil {
		return nil, err
	}
	var sizes []int64
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		for f := range strings.FieldsSeq(line) {
			if v, ok := strings.CutPrefix(f, "omem="); ok {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return nil, err
				}
				sizes = append(sizes, n)
			}
		}
	}
	return sizes, nil
}
