package lock

import (
	"fmt"

	"github.com/redis/go-redis/v9"
)

// ScriptNames are the scripts a Locker runs, for SetScript and Script.
var ScriptNames = []string{"acquire", "release", "refresh", "pttl", "cancel"}

func (s *scripts) by(name string) **redis.Script {
	switch name {
	case "acquire":
		return &s.acquire
	case "release":
		return &s.release
	case "refresh":
		return &s.refresh
	case "pttl":
		return &s.pttl
	case "cancel":
		return &s.cancel
	}
	panic(fmt.Sprintf("lock: no script %q", name))
}

// SetScript makes l (a *RedisLocker or *Redlock) run src instead of the
// named script, for tests that need a broken one. Call it before l is used.
func SetScript(l Locker, name, src string) {
	switch x := l.(type) {
	case *RedisLocker:
		*x.sc.by(name) = redis.NewScript(src)
	case *Redlock:
		*x.sc.by(name) = redis.NewScript(src)
	default:
		panic(fmt.Sprintf("lock: SetScript on %T", l))
	}
}

// Script returns the named embedded script (with common.lua inserted), or
// "fence", for tests that run a script's branches by hand.
func Script(name string) *redis.Script {
	if name == "fence" {
		return fenceScript
	}
	s := lockScripts
	return *s.by(name)
}

// Keys returns the Redis keys of a lock on key under prefix, as the
// scripts take them: lock, fence, queue, queue info, wake-list prefix.
func Keys(prefix, key string) []string { return lockKeys(prefix, key) }

// ReleaseKeys returns Keys followed by owner's release tombstone.
func ReleaseKeys(prefix, key, owner string) []string {
	return releaseKeys(lockKeys(prefix, key), owner)
}
