package ratelimit

// DisableResendGuard makes l send re-sent copies as if they were first
// ones, for the control case of TestRetryCountsOnce.
func DisableResendGuard(l *RedisLimiter) { l.ridAgain = l.ridFirst }
