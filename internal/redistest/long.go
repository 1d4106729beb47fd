package redistest

import "os"

// EnvLong, when set to a true value ("1", "true", ...), asks fault tests for
// their long variants: more iterations, more faults, bigger topologies.
const EnvLong = "OUTRIGGER_LONG"

// Long reports whether EnvLong asks for the long variants of fault tests.
func Long() bool { return truthy(os.Getenv(EnvLong)) }
