package ratelimit

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// KeyFunc extracts the rate-limit key of a request (a client IP, an API key,
// a user ID). An error sends the request to the middleware's error handler.
type KeyFunc func(r *http.Request) (string, error)

// ErrNoKey is returned by a KeyFunc that finds no key in a request.
var ErrNoKey = errors.New("ratelimit: no key in request")

// KeyByIP returns a KeyFunc keyed by the client's IP address. IPv4 clients
// are keyed by their address ("203.0.113.7"), IPv6 clients by their /64
// ("2001:db8:1:2::/64"), since one host usually holds a whole /64. IPv4
// addresses mapped into IPv6 count as IPv4.
//
// X-Forwarded-For is believed only through trustedProxies, given as IPs or
// CIDRs ("10.0.0.0/8", "2001:db8::1"). When the peer (RemoteAddr) is
// trusted, the header's hops are walked from right to left, skipping trusted
// proxies, and the first untrusted hop is the client. A hop that does not
// parse stops the walk: everything to its left was written by the client, so
// the key is the last trusted hop examined. Entries a client adds itself are
// therefore never used. Without trusted proxies the header is ignored.
//
// If a trusted proxy does not parse, the returned KeyFunc fails every request
// with an error naming it (the middleware's error handler then decides); use
// [NewKeyByIP] to get that error at start-up instead.
func KeyByIP(trustedProxies ...string) KeyFunc {
	kf, err := NewKeyByIP(trustedProxies...)
	if err != nil {
		return func(*http.Request) (string, error) { return "", err }
	}
	return kf
}

// NewKeyByIP is [KeyByIP] that reports a trusted proxy that is neither an IP
// nor a CIDR.
func NewKeyByIP(trustedProxies ...string) (KeyFunc, error) {
	var nets []netip.Prefix
	for _, s := range trustedProxies {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			nets = append(nets, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%w: trusted proxy %q is neither an IP nor a CIDR", ErrInvalidArgument, s)
		}
		a = a.Unmap()
		nets = append(nets, netip.PrefixFrom(a, a.BitLen()))
	}
	t := trust(nets)
	return func(r *http.Request) (string, error) {
		peer, ok := parseHop(r.RemoteAddr)
		if !ok {
			return "", fmt.Errorf("%w: RemoteAddr %q is not an IP", ErrNoKey, r.RemoteAddr)
		}
		if len(t) == 0 || !t.has(peer) {
			return ipKey(peer), nil
		}
		client := peer
		vals := r.Header.Values("X-Forwarded-For")
		for i := len(vals) - 1; i >= 0; i-- {
			v := vals[i]
			for v != "" {
				hop := v
				if j := strings.LastIndexByte(v, ','); j >= 0 {
					hop, v = v[j+1:], v[:j]
				} else {
					v = ""
				}
				a, ok := parseHop(hop)
				if !ok {
					return ipKey(client), nil
				}
				client = a
				if !t.has(a) {
					return ipKey(a), nil
				}
			}
		}
		return ipKey(client), nil
	}, nil
}

type trust []netip.Prefix

func (t trust) has(a netip.Addr) bool {
	for _, p := range t {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHop parses "ip", "ip:port", "[ipv6]:port" or "[ipv6]", dropping any
// zone and unmapping IPv4-in-IPv6.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Addr{}, false
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.WithZone("").Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().WithZone("").Unmap(), true
	}
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return a.WithZone("").Unmap(), true
		}
	}
	return netip.Addr{}, false
}

// ipKey is the key of a client address: itself for IPv4, its /64 for IPv6.
func ipKey(a netip.Addr) string {
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// KeyByHeader returns a KeyFunc keyed by the value of the request header
// name (for example "X-API-Key"). When the header is missing or empty, the
// first fallback decides (for example KeyByIP()); with no fallback the
// KeyFunc returns [ErrNoKey].
//
// Keys from the header are prefixed with "<name>:" ("X-Api-Key:abc") so that
// they cannot collide with the fallback's keys (an attacker cannot choose a
// header value that shares another client's IP key).
func KeyByHeader(name string, fallback ...KeyFunc) KeyFunc {
	canon := http.CanonicalHeaderKey(name)
	var fb KeyFunc
	if len(fallback) > 0 {
		fb = fallback[0]
	}
	return func(r *http.Request) (string, error) {
		if v := strings.TrimSpace(r.Header.Get(canon)); v != "" {
			return canon + ":" + v, nil
		}
		if fb != nil {
			return fb(r)
		}
		return "", fmt.Errorf("%w: header %s is missing", ErrNoKey, canon)
	}
}
