package web

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// baseCSP is the policy for every response. Pages whose forms lead, through
// redirects, to another origin (a client's redirect_uri) widen form-action
// with withFormTargets: Chrome checks form-action against every URL of the
// redirect chain a form submission starts, including the last hop from our
// resume endpoint to the client.
const cspPrefix = "default-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

type middlewareKey struct{}

// Middleware applies the security headers to every response and rejects
// cross-origin state-changing browser requests (except the OAuth machine
// endpoints listed in Config.CrossOriginBypass). Wrap the server's top-level
// handler with it. It runs once per request however often it is stacked.
//
// Handlers may replace Content-Security-Policy for their own response (an
// OAuth form_post page, for instance): the header is set before they run.
func (s *Server) Middleware(next http.Handler) http.Handler {
	protected := s.cop.Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Context().Value(middlewareKey{}) != nil {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", cspPrefix)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if s.secure {
			h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
		}
		r = r.WithContext(context.WithValue(r.Context(), middlewareKey{}, true))
		protected.ServeHTTP(w, r)
	})
}

// crossOriginDenied answers a request rejected by the cross-origin check.
func (s *Server) crossOriginDenied(w http.ResponseWriter, r *http.Request) {
	s.log.InfoContext(r.Context(), "cross-origin request rejected",
		"method", r.Method, "path", r.URL.Path, "sec_fetch_site", r.Header.Get("Sec-Fetch-Site"))
	if strings.HasPrefix(r.URL.Path, "/webauthn/") {
		writeAPI(w, http.StatusForbidden, apiResponse{Error: "cross_origin", Message: "This request came from another site, so it was not accepted."})
		return
	}
	s.renderMessage(w, r, http.StatusForbidden, messageView{
		Title:   "Request blocked",
		Message: "This form was submitted from another site, so it was not accepted. Go back and try again from this site.",
		IsError: true,
	})
}

// withFormTargets widens the response's form-action to the origins of
// targets (absolute URLs), so a form on this page may end, after redirects,
// at one of them.
func (s *Server) withFormTargets(w http.ResponseWriter, targets []string) {
	var extra []string
	for _, t := range targets {
		if src := cspSource(t); src != "" && !slices.Contains(extra, src) {
			extra = append(extra, src)
		}
	}
	if len(extra) == 0 {
		return
	}
	w.Header().Set("Content-Security-Policy", cspPrefix+" "+strings.Join(extra, " "))
}

// onlyChars reports whether s is non-empty and every byte is allowed.
func onlyChars(s string, allowed func(c byte) bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !allowed(s[i]) {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isSchemeChar(c byte) bool { return isAlnum(c) || c == '+' || c == '.' || c == '-' }
func isHostChar(c byte) bool   { return isAlnum(c) || c == '.' || c == '-' }
func isIPv6Char(c byte) bool   { return isAlnum(c) || c == ':' || c == '.' }
func isDigit(c byte) bool      { return c >= '0' && c <= '9' }

// cspSource turns a redirect URI into a CSP source expression: its origin
// for http(s), its scheme for a private-use scheme (native apps), and any
// port for loopback redirects (RFC 8252 §7.3). It returns "" for anything
// that cannot be expressed safely.
func cspSource(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return ""
	}
	scheme := strings.ToLower(u.Scheme)
	if !onlyChars(scheme, isSchemeChar) || !(scheme[0] >= 'a' && scheme[0] <= 'z') {
		return ""
	}
	switch scheme {
	case "http", "https":
	case "javascript", "vbscript", "data", "blob", "filesystem", "about", "file":
		return ""
	default:
		return scheme + ":"
	}
	host, port := u.Hostname(), u.Port()
	switch {
	case strings.Contains(host, ":"):
		if !onlyChars(host, isIPv6Char) {
			return ""
		}
		host = "[" + host + "]"
	case !onlyChars(host, isHostChar):
		return ""
	}
	if port != "" && (len(port) > 5 || !onlyChars(port, isDigit)) {
		return ""
	}
	if host == "127.0.0.1" || host == "[::1]" || strings.EqualFold(host, "localhost") {
		return scheme + "://" + host + ":*"
	}
	if port != "" {
		return scheme + "://" + host + ":" + port
	}
	return scheme + "://" + host
}
