package cache

// WithClock replaces the cache's clock in tests.
var WithClock = withClock
