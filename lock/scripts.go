package lock

import (
	"embed"

	"github.com/redis/go-redis/v9"
)

//go:embed scripts/*.lua
var scriptFS embed.FS

// Scripts run with EVALSHA and fall back to EVAL (redis.Script), so they
// survive SCRIPT FLUSH, restarts and failovers.
var (
	acquireScript = loadScript("acquire.lua", true)
	releaseScript = loadScript("release.lua", true)
	refreshScript = loadScript("refresh.lua", true)
	pttlScript    = loadScript("pttl.lua", true)
	cancelScript  = loadScript("cancel.lua", true)
	fenceScript   = loadScript("fence.lua", false)
)

func loadScript(name string, common bool) *redis.Script {
	src, err := scriptFS.ReadFile("scripts/" + name)
	if err != nil {
		panic("lock: missing embedded script " + name) // build defect, not user input
	}
	if common {
		c, err := scriptFS.ReadFile("scripts/common.lua")
		if err != nil {
			panic("lock: missing embedded script common.lua")
		}
		src = append(append(c, '\n'), src...)
	}
	return redis.NewScript(string(src))
}
