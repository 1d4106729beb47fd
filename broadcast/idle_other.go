//go:build !unix

package broadcast

import "net"

// waitReadable returns at once: the WebSocket reader blocks by itself.
func waitReadable(net.Conn) {}
