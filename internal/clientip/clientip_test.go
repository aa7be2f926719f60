package clientip

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestAddr(t *testing.T) {
	res := Resolver{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}}
	cases := []struct {
		name, remote, xff, want string
	}{
		{"direct", "198.51.100.7:4000", "", "198.51.100.7"},
		{"untrusted peer's header ignored", "198.51.100.7:4000", "203.0.113.9", "198.51.100.7"},
		{"trusted proxy", "127.0.0.1:4000", "203.0.113.9", "203.0.113.9"},
		{"proxy chain", "127.0.0.1:4000", "192.0.2.1, 203.0.113.9, 10.1.2.3", "203.0.113.9"},
		{"only proxies", "127.0.0.1:4000", "10.1.2.3", "10.1.2.3"},
		{"garbage stops the walk", "127.0.0.1:4000", "203.0.113.9, junk", "127.0.0.1"},
		{"v4-mapped", "[::ffff:198.51.100.7]:4000", "", "198.51.100.7"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.remote
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := res.String(r); got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "@unix"
	if res.Addr(r).IsValid() || res.String(r) != "@unix" {
		t.Errorf("unix peer: %v %q", res.Addr(r), res.String(r))
	}
}
