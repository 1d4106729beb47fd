package redistest

import "syscall"

// sysProcAttr makes the kernel kill a started server if the test binary dies
// without cleaning up (kill -9, a panic in another goroutine).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
