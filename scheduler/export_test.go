package scheduler

import (
	"fmt"

	"github.com/redis/go-redis/v9"
)

func (sc *scripts) by(name string) **redis.Script {
	switch name {
	case "claim":
		return &sc.claim
	case "refresh":
		return &sc.refresh
	case "complete":
		return &sc.complete
	case "abandoned":
		return &sc.abandoned
	}
	panic(fmt.Sprintf("scheduler: no script %q", name))
}

// SetScript makes s (made by New) run src instead of the named script
// (claim, refresh, complete, abandoned), for tests that need a broken one.
// Call it before Start and Trigger.
func SetScript(s *Scheduler, name, src string) {
	*s.b.(*redisBackend).sc.by(name) = redis.NewScript(src)
}

// Script returns the named embedded script, for tests that run a script's
// branches by hand.
func Script(name string) *redis.Script {
	sc := schedulerScripts
	return *sc.by(name)
}
