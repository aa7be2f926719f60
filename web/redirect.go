package web

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/stepwise-id/stepwise/internal/clientip"
)

// localURL returns raw as a same-origin path (with query) when it is one, so
// it is safe to redirect to: an absolute path that is not scheme-relative
// ("//host"), has no backslashes or control characters, or an absolute URL
// on the issuer's own origin (reduced to its path). Anything else, and every
// other origin, is refused: there are no open redirects.
func (s *Server) localURL(raw string) (string, bool) {
	if raw == "" || len(raw) > 2048 {
		return "", false
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c < 0x20 || c == 0x7f || c == '\\' {
			return "", false
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.User != nil || u.Opaque != "" {
		return "", false
	}
	if u.Scheme != "" || u.Host != "" {
		if !strings.EqualFold(u.Scheme+"://"+u.Host, s.origin) {
			return "", false
		}
		u.Scheme, u.Host = "", ""
	}
	if !strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") {
		return "", false
	}
	u.Fragment = ""
	out := u.String()
	if !strings.HasPrefix(out, "/") || strings.HasPrefix(out, "//") {
		return "", false
	}
	return out, true
}

// seeOther redirects to a same-origin path after a form submission or a
// hand-over. Targets are checked by localURL before they get here.
func seeOther(w http.ResponseWriter, r *http.Request, target string) {
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// clientIP returns the client's address: the TCP peer, or, when the peer is
// a trusted proxy, the right-most X-Forwarded-For entry that is not itself a
// trusted proxy (internal/clientip, shared with the risk gate).
func (s *Server) clientIP(r *http.Request) string {
	return clientip.Resolver{Trusted: s.proxies}.String(r)
}
