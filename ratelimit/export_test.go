package ratelimit

import "github.com/redis/go-redis/v9"

// DisableResendGuard makes l send re-sent copies as if they were first
// ones, for the control case of TestRetryCountsOnce.
func DisableResendGuard(l *RedisLimiter) { l.ridAgain = l.ridFirst }

// SetScript replaces the script l runs, for tests that need a broken one.
func SetScript(l *RedisLimiter, src string) { l.script = redis.NewScript(src) }

// ScriptArgs returns the script l runs and the per-limit arguments it passes
// after n, m, the request-ID TTL and the limit count, for tests that run
// the script by hand.
func ScriptArgs(l *RedisLimiter) (*redis.Script, []any) { return l.script, l.static }
