package broadcast_test

// runChild reports whether this process is a child Hub (see TestPresenceHubKilled); it then runs it and
// returns true.
func runChild() bool { return false }
