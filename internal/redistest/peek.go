package redistest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// BrokenScript is a Lua script that compiles and fails when it runs (ERR
// user_script…: an undefined global), as a typo in one branch of a real
// script does. Tests swap it in to check that a package fails loudly.
const BrokenScript = "return never + 1"

// Peek sets keys up and reads them back for a test, failing it on an
// error. It is safe for concurrent use if TB is.
type Peek struct {
	TB  testing.TB
	Ctx context.Context
	C   redis.UniversalClient
}

// Do runs a command.
func (p Peek) Do(args ...any) {
	p.TB.Helper()
	if err := p.C.Do(p.Ctx, args...).Err(); err != nil {
		p.TB.Fatalf("%v: %v", args, err)
	}
}

// Get returns a string key's value, "" when it is missing.
func (p Peek) Get(key string) string {
	p.TB.Helper()
	v, err := p.C.Get(p.Ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		return ""
	}
	if err != nil {
		p.TB.Fatalf("GET %s: %v", key, err)
	}
	return v
}

// PTTL returns a key's remaining time to live (negative: see PTTL).
func (p Peek) PTTL(key string) time.Duration {
	p.TB.Helper()
	d, err := p.C.PTTL(p.Ctx, key).Result()
	if err != nil {
		p.TB.Fatalf("PTTL %s: %v", key, err)
	}
	return d
}

// ZRange returns a sorted set's members, lowest score first.
func (p Peek) ZRange(key string) []string {
	p.TB.Helper()
	v, err := p.C.ZRange(p.Ctx, key, 0, -1).Result()
	if err != nil {
		p.TB.Fatalf("ZRANGE %s: %v", key, err)
	}
	return v
}

// LRange returns a list's elements, head first.
func (p Peek) LRange(key string) []string {
	p.TB.Helper()
	v, err := p.C.LRange(p.Ctx, key, 0, -1).Result()
	if err != nil {
		p.TB.Fatalf("LRANGE %s: %v", key, err)
	}
	return v
}
