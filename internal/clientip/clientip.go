// Package clientip works out the address of the client behind a request,
// believing X-Forwarded-For only from trusted proxies. The browser layer
// (sign-in throttling, audit events) and the risk gate share it, so a login
// and the authorization that follows it are attributed to the same address.
package clientip

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver resolves client addresses. The zero value trusts no proxy.
type Resolver struct {
	// Trusted are the peers whose X-Forwarded-For is believed.
	Trusted []netip.Prefix
}

// Addr returns the client's address: the TCP peer or, when the peer is a
// trusted proxy, the right-most X-Forwarded-For entry that is not itself a
// trusted proxy. It returns the zero Addr when RemoteAddr is not an address
// (e.g. a unix socket).
func (res Resolver) Addr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	peer = peer.Unmap()
	if !res.trusted(peer) {
		return peer
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		a = a.Unmap()
		if !res.trusted(a) {
			return a
		}
		peer = a
	}
	return peer
}

// String is Addr as text; when RemoteAddr is not an address it is returned
// as it is, so audit records still say something.
func (res Resolver) String(r *http.Request) string {
	if a := res.Addr(r); a.IsValid() {
		return a.String()
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (res Resolver) trusted(a netip.Addr) bool {
	for _, p := range res.Trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
