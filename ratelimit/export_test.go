package ratelimit

import "github.com/redis/go-redis/v9"

// DisableResendGuard makes l send re-sent copies as if they were first
// ones, for the control case of TestRetryCountsOnce.
func DisableResendGuard(l *RedisLimiter) { l.ridAgain = l.ridFirst }

// SetScript replaces the script l runs, for tests that need a broken one.
func SetScript(l *RedisLimiter, src string) { l.script = redis.NewScript(src) }
