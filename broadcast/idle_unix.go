//go:build unix

package broadcast

import (
	"errors"
	"net"
	"syscall"
)

// waitReadable blocks until conn has data (or an error or EOF) to read,
// without reading it. The reading goroutine of an idle connection parks
// here, a few frames deep, instead of deep inside the WebSocket reader:
// the garbage collector then shrinks its stack to the minimum. It returns
// at once when conn gives no raw access (TLS).
func waitReadable(conn net.Conn) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	var b [1]byte
	_ = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return n > 0 || !errors.Is(err, syscall.EAGAIN)
	})
}
