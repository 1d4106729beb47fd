package lock

import (
	"embed"
	"strings"

	"github.com/redis/go-redis/v9"
)

//go:embed scripts/*.lua
var scriptFS embed.FS

// Scripts run with EVALSHA; after a NOSCRIPT they are loaded again (EVAL if
// that fails), so they survive SCRIPT FLUSH, restarts and failovers.
var (
	acquireScript = loadScript("acquire.lua")
	releaseScript = loadScript("release.lua")
	refreshScript = loadScript("refresh.lua")
	pttlScript    = loadScript("pttl.lua")
	cancelScript  = loadScript("cancel.lua")
	fenceScript   = loadScript("fence.lua")
)

// scripts are the scripts a Locker runs: the embedded ones (tests swap one
// for a broken one through export_test.go).
type scripts struct {
	acquire, release, refresh, pttl, cancel *redis.Script
}

var lockScripts = scripts{
	acquire: acquireScript, release: releaseScript, refresh: refreshScript,
	pttl: pttlScript, cancel: cancelScript,
}

// commonMarker is the line of a script where common.lua's helpers go: after
// its fast path, so that a call that returns early does not pay for
// defining them.
const commonMarker = "\n-- @common\n"

func loadScript(name string) *redis.Script {
	src, err := scriptFS.ReadFile("scripts/" + name)
	if err != nil {
		panic("lock: missing embedded script " + name) // build defect, not user input
	}
	if before, after, ok := strings.Cut(string(src), commonMarker); ok {
		c, err := scriptFS.ReadFile("scripts/common.lua")
		if err != nil {
			panic("lock: missing embedded script common.lua")
		}
		return redis.NewScript(before + "\n" + string(c) + "\n" + after)
	}
	return redis.NewScript(string(src))
}
