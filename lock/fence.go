package lock

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/outrigger-dev/outrigger/internal/rediserr"
)

// Fence is the guard a protected resource puts in front of its writes: it
// remembers the highest fencing token seen per resource and rejects older
// ones with ErrStaleToken. The same token may be used any number of times
// (one holder writing repeatedly). It is safe for concurrent use.
//
// A fence only protects what it checks atomically with the write: use Set
// (the value is stored together with the token, in one step), or make your
// own store's write conditional on the token in the same transaction (for
// SQL: UPDATE … SET v = $1, token = $2 WHERE id = $3 AND token <= $2).
// Calling Check and then writing elsewhere leaves a window in which a newer
// holder's write can slip between the two.
type Fence struct {
	c      redis.UniversalClient // Redis mode
	prefix string
	store  TokenStore // generic mode
}

// TokenStore is any store with an atomic compare-and-swap of a resource's
// token, for NewStoreFence. A missing resource loads as 0.
type TokenStore interface {
	// Load returns the resource's stored token (0 if none).
	Load(ctx context.Context, resource string) (uint64, error)
	// CompareAndSwap sets the token to new if it is still old, and reports
	// whether it did.
	CompareAndSwap(ctx context.Context, resource string, old, new uint64) (bool, error)
}

// NewFence returns a Fence that keeps each resource's token (and value, see
// Set) in the Redis hash <prefix>{<resource>}. Each Check or Set is one
// round trip.
func NewFence(client redis.UniversalClient, prefix string) (*Fence, error) {
	if isNil(client) {
		return nil, errors.New("lock: client must not be nil")
	}
	return &Fence{c: client, prefix: prefix}, nil
}

// NewStoreFence returns a Fence over any TokenStore (Set is not available:
// make your writes conditional in the store itself).
func NewStoreFence(store TokenStore) (*Fence, error) {
	if store == nil {
		return nil, errors.New("lock: store must not be nil")
	}
	return &Fence{store: store}, nil
}

func (f *Fence) key(resource string) string { return f.prefix + "{" + resource + "}" }

// Check records token for resource and returns nil if it is at least the
// highest token seen, or an error wrapping ErrStaleToken if it is older.
func (f *Fence) Check(ctx context.Context, resource string, token uint64) error {
	if f.store != nil {
		return checkStore(ctx, f.store, resource, token)
	}
	return f.run(ctx, resource, token, "c", "")
}

// Set stores value for resource together with token, atomically, unless
// token is older than the highest seen (then it returns an error wrapping
// ErrStaleToken and changes nothing). Redis fences only.
func (f *Fence) Set(ctx context.Context, resource string, token uint64, value string) error {
	if f.store != nil {
		return errors.New("lock: Fence.Set needs a Redis fence (NewFence)")
	}
	return f.run(ctx, resource, token, "s", value)
}

// Get returns the value last stored by Set and the highest token seen for
// resource; redis.Nil-free: a missing resource returns "", 0, nil.
func (f *Fence) Get(ctx context.Context, resource string) (value string, token uint64, err error) {
	if f.store != nil {
		t, err := f.store.Load(ctx, resource)
		return "", t, err
	}
	v, err := f.c.HMGet(ctx, f.key(resource), "v", "t").Result()
	if err != nil {
		return "", 0, fmt.Errorf("lock: fence get %q: %w", resource, err)
	}
	if s, ok := v[0].(string); ok {
		value = s
	}
	if s, ok := v[1].(string); ok {
		if token, err = strconv.ParseUint(s, 10, 64); err != nil {
			return "", 0, fmt.Errorf("lock: fence get %q: %w", resource, rediserr.BadReply("token %q", s))
		}
	}
	return value, token, nil
}

func (f *Fence) run(ctx context.Context, resource string, token uint64, mode, value string) error {
	op := "fence check"
	if mode == "s" {
		op = "fence set"
	}
	v, err := fenceScript.Run(ctx, f.c, []string{f.key(resource)}, strconv.FormatUint(token, 10), mode, value).Slice()
	if err == nil && len(v) != 2 {
		err = rediserr.BadReply("fence reply %v, want {accepted, token}", v)
	}
	if err != nil {
		return fmt.Errorf("lock: %s %q: %w", op, resource, err)
	}
	switch ok, _ := v[0].(int64); ok {
	case 1:
		return nil
	case 0:
	default:
		return fmt.Errorf("lock: %s %q: %w", op, resource, rediserr.BadReply("fence reply %v, want {0|1, token}", v))
	}
	return fmt.Errorf("%w: %d for %q, already saw %v", ErrStaleToken, token, resource, v[1])
}

func checkStore(ctx context.Context, s TokenStore, resource string, token uint64) error {
	for {
		cur, err := s.Load(ctx, resource)
		if err != nil {
			return err
		}
		if token < cur {
			return fmt.Errorf("%w: %d for %q, already saw %d", ErrStaleToken, token, resource, cur)
		}
		if token == cur {
			return nil
		}
		ok, err := s.CompareAndSwap(ctx, resource, cur, token)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// MemoryTokenStore is an in-process TokenStore, for tests and single-process
// resources. Its zero value is ready to use; it is safe for concurrent use.
type MemoryTokenStore struct {
	mu sync.Mutex // protects m
	m  map[string]uint64
}

// Load returns the resource's token.
func (s *MemoryTokenStore) Load(_ context.Context, resource string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[resource], nil
}

// CompareAndSwap sets the resource's token to new if it is old.
func (s *MemoryTokenStore) CompareAndSwap(_ context.Context, resource string, old, new uint64) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[resource] != old {
		return false, nil
	}
	if s.m == nil {
		s.m = make(map[string]uint64)
	}
	s.m[resource] = new
	return true, nil
}
