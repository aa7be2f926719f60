package resource

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// GatewayPath is where the Stepwise server mounts the forward-auth check.
const GatewayPath = "/gateway/check"

// Response headers of an allowed check; a gateway copies them to the
// upstream request.
const (
	HeaderSubject  = "X-Stepwise-Subject"
	HeaderClient   = "X-Stepwise-Client"
	HeaderScope    = "X-Stepwise-Scope"     // space-separated
	HeaderACR      = "X-Stepwise-Acr"       //
	HeaderAMR      = "X-Stepwise-Amr"       // space-separated
	HeaderAuthTime = "X-Stepwise-Auth-Time" // seconds since the epoch
)

// GatewayOptions configure a Gateway.
type GatewayOptions struct {
	Options
	// EnvoyPathPrefix is the path_prefix of Envoy's ext_authz
	// http_service. Envoy sends the check with the original request's
	// method and the original path appended to the prefix, so a check to
	// "/gateway/check/payments/42" with method POST stands for
	// "POST /payments/42". Empty means GatewayPath; "-" disables Envoy
	// checks.
	EnvoyPathPrefix string
}

// Gateway is the forward-auth endpoint (/gateway/check) for nginx
// auth_request, Traefik forwardAuth and Envoy ext_authz (HTTP service). It
// reads the original request from
//
//   - X-Original-Method and X-Original-URI (nginx, set with proxy_set_header),
//   - X-Forwarded-Method and X-Forwarded-Uri (Traefik sets them itself), or
//   - the check request's own method and path below EnvoyPathPrefix (Envoy),
//
// and the token from Authorization. It answers 200 with the identity in
// X-Stepwise-* headers, 401 or 403 with the RFC 6750 / RFC 9470 challenge in
// WWW-Authenticate (a malformed Authorization header, which the middleware
// answers with 400 invalid_request, is 401 invalid_request here: gateways
// treat anything but 2xx, 401 and 403 as their own failure), 400 when the
// original request cannot be told, and 503 when tokens cannot be verified.
//
// When the request carries more than one of these descriptions they must
// agree: otherwise a client could add, say, X-Original-URI behind Traefik
// (which forwards client headers) and have a harmless path checked instead
// of the real one.
type Gateway struct {
	g           *guard
	envoyPrefix string
}

// NewGateway returns the forward-auth handler.
func NewGateway(o GatewayOptions) (*Gateway, error) {
	g, err := newGuard(o.Options)
	if err != nil {
		return nil, err
	}
	prefix := o.EnvoyPathPrefix
	switch {
	case prefix == "":
		prefix = GatewayPath
	case prefix == "-":
		prefix = ""
	case !strings.HasPrefix(prefix, "/"):
		return nil, errors.New("resource: EnvoyPathPrefix must start with /")
	}
	return &Gateway{g: g, envoyPrefix: strings.TrimSuffix(prefix, "/")}, nil
}

// Original is the request a gateway asks about.
type Original struct {
	Method      string
	EscapedPath string
}

// errNoOriginal and errConflict are why an original request cannot be told.
var (
	errNoOriginal = errors.New("no X-Original-URI, X-Forwarded-Uri or Envoy path")
	errConflict   = errors.New("the gateway headers describe different requests")
)

// OriginalRequest extracts the original request from a forward-auth check.
func (gw *Gateway) OriginalRequest(r *http.Request) (Original, error) {
	var found []Original
	add := func(method, uri string) error {
		if method == "" {
			return errors.New("original method missing")
		}
		if !isToken(method) {
			return errors.New("original method is not an HTTP token")
		}
		p, err := requestPath(uri)
		if err != nil {
			return err
		}
		found = append(found, Original{Method: strings.ToUpper(method), EscapedPath: p})
		return nil
	}
	h := r.Header
	if uri := h.Get("X-Original-URI"); uri != "" {
		if err := add(h.Get("X-Original-Method"), uri); err != nil {
			return Original{}, err
		}
	}
	if uri := h.Get("X-Forwarded-Uri"); uri != "" {
		if err := add(h.Get("X-Forwarded-Method"), uri); err != nil {
			return Original{}, err
		}
	}
	if gw.envoyPrefix != "" {
		if rest, ok := strings.CutPrefix(r.URL.EscapedPath(), gw.envoyPrefix); ok && strings.HasPrefix(rest, "/") {
			uri := rest
			if r.URL.RawQuery != "" {
				uri += "?" + r.URL.RawQuery
			}
			if err := add(r.Method, uri); err != nil {
				return Original{}, err
			}
		}
	}
	if len(found) == 0 {
		return Original{}, errNoOriginal
	}
	for _, o := range found[1:] {
		if o != found[0] {
			return Original{}, errConflict
		}
	}
	return found[0], nil
}

// requestPath returns the escaped path of a request-target in origin form
// ("/a/b?q") or absolute form ("https://h/a/b?q").
func requestPath(uri string) (string, error) {
	if len(uri) > 8<<10 {
		return "", errors.New("original URI too long")
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		return "", errors.New("original URI is not a request-target")
	}
	p := u.EscapedPath()
	if u.Host != "" && p == "" {
		p = "/"
	}
	if !strings.HasPrefix(p, "/") {
		return "", errors.New("original URI has no absolute path")
	}
	return p, nil
}

// isToken reports whether s is an RFC 9110 token (a method name).
func isToken(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", ch) >= 0 {
			continue
		}
		return false
	}
	return true
}

// ServeHTTP answers a forward-auth check.
func (gw *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	orig, err := gw.OriginalRequest(r)
	if err != nil {
		w.Header().Set("Cache-Control", "no-store")
		http.Error(w, "stepwise gateway check: "+err.Error(), http.StatusBadRequest)
		return
	}
	out := gw.g.check(r.Context(), r.Header, orig.Method, orig.EscapedPath, func() string { return gw.originalURL(r, orig) })
	switch {
	case out.unavailable:
		writeUnavailable(w)
	case out.challenge != nil:
		ch := out.challenge
		if ch.Status == http.StatusBadRequest {
			c := *ch
			c.Status = http.StatusUnauthorized
			ch = &c
		}
		ch.Write(w, gw.g.realm)
	default:
		writeIdentity(w.Header(), out.claims)
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
	}
}

// writeIdentity sets the X-Stepwise-* headers. Every one is sent, empty
// when the token lacks the claim, so a gateway that copies them onto the
// upstream request overwrites any the client sent itself. Values are cleaned
// of control characters so a claim can never split a header.
func writeIdentity(h http.Header, c *Claims) {
	authTime := ""
	if !c.AuthTime.IsZero() {
		authTime = strconv.FormatInt(c.AuthTime.Unix(), 10)
	}
	h.Set(HeaderSubject, headerSafe(c.Subject))
	h.Set(HeaderClient, headerSafe(c.ClientID))
	h.Set(HeaderScope, headerSafe(strings.Join(c.Scopes, " ")))
	h.Set(HeaderACR, headerSafe(c.ACR))
	h.Set(HeaderAMR, headerSafe(strings.Join(c.AMR, " ")))
	h.Set(HeaderAuthTime, authTime)
}

func headerSafe(s string) string {
	if isPrintableASCII(s) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}
