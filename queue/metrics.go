package queue

import (
	"strconv"
	"time"
)

// Per-minute metrics. Every publish pipeline and every settle pipeline of a
// Redis queue also counts, in the same round trip, what it did in a hash
// per queue and minute:
//
//	p{name}:m:<unix minute>   published, acked, retried, dead, released,
//	                          requeued, deleted (counts), depth and
//	                          deadletters (the backlog and the dead letters, as last
//	                          seen that minute)
//
// kept for metricsTTL, so that [Inspector.History] can chart the last hour
// from every replica's work, whether or not anybody was looking. The minute
// is the writer's clock: replicas whose clocks disagree by seconds shift a
// few counts into the next minute, which a chart does not show.

// metricsTTL is how long a minute's metrics hash is kept.
const metricsTTL = 2 * time.Hour

var metricsTTLArg = strconv.FormatInt(int64(metricsTTL/time.Second), 10)

// metricsBase returns the prefix of a queue's metrics hashes.
func metricsBase(prefix, name string) string { return prefix + "{" + name + "}:m:" }

// metricsKey returns the metrics hash of the minute of t.
func metricsKey(base string, t time.Time) string {
	return base + strconv.FormatInt(t.Unix()/60, 10)
}

// withMetrics makes a publish script call count its messages (see
// scripts/publish.lua: the hash is the last key, its TTL the last
// argument).
func (q *Redis) withMetrics(keys []string, args []any) ([]string, []any) {
	return append(keys, metricsKey(metricsBase(q.cfg.prefix, q.name), time.Now())), append(args, metricsTTLArg)
}

// tally returns the keys and arguments of the scripts/tally.lua call that
// counts settlements ss.
func (q *Redis) tally(ss []settlement) ([]string, []any) {
	var n [4]int64 // by settleKind
	for _, s := range ss {
		n[s.kind]++
	}
	args := make([]any, 1, 9)
	args[0] = metricsTTLArg
	for kind, field := range [...]string{settleAck: "acked", settleRetry: "retried", settleDead: "dead", settleRelease: "released"} {
		if n[kind] > 0 {
			args = append(args, field, n[kind])
		}
	}
	return []string{metricsKey(metricsBase(q.cfg.prefix, q.name), time.Now()), q.stream, q.delayed, q.dead}, args
}
