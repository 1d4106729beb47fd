package sqlcheck_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind: the Recorder's
// wrappers start none, and every handle the tests open is closed.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
