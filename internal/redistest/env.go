package redistest

import (
	"os"
	"strings"
)

// Environment variables read by the harness.
const (
	// EnvAddr names a Redis server (host:port) to use instead of discovering one.
	EnvAddr = "OUTRIGGER_REDIS_ADDR"
	// EnvRequire, when set to anything but "", "0" or "false", turns a missing
	// Redis into a test failure instead of a skip.
	EnvRequire = "OUTRIGGER_REQUIRE_REDIS"
	// EnvCI is set by CI systems; it has the same effect as EnvRequire.
	EnvCI = "CI"
	// EnvServerBin overrides the redis-server binary (default: from PATH).
	EnvServerBin = "OUTRIGGER_REDIS_SERVER"
)

// Required reports whether a missing Redis must fail tests rather than skip
// them: true when CI or OUTRIGGER_REQUIRE_REDIS is set to a true value.
func Required() bool {
	return truthy(os.Getenv(EnvRequire)) || truthy(os.Getenv(EnvCI))
}

func truthy(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "0", "false", "no", "off":
		return false
	}
	return true
}

func serverBin() string {
	if b := os.Getenv(EnvServerBin); b != "" {
		return b
	}
	return "redis-server"
}
