package queue

import "github.com/redis/go-redis/v9"

// Scripts are the embedded Lua scripts by file name without ".lua", for
// tests that run their branches by hand.
var Scripts = map[string]*redis.Script{
	"ack":             ackScript,
	"fail":            failScript,
	"inspect_dead":    inspectDeadScript,
	"inspect_delayed": inspectDelayedScript,
	"inspect_delete":  inspectDeleteScript,
	"inspect_info":    inspectInfoScript,
	"leave":           leaveScript,
	"move":            moveScript,
	"publish":         publishScript,
	"renew":           renewScript,
	"requeue":         requeueScript,
	"stats":           statsScript,
	"tally":           tallyScript,
}
