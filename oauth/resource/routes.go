package resource

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"
)

// RouteConfig is one entry of the config file's routes: list.
type RouteConfig struct {
	// Match is a net/http.ServeMux pattern without a host: "[METHOD ]/path",
	// e.g. "POST /payments/{rest...}". "GET" also matches HEAD; no method
	// matches every method.
	Match string `yaml:"match" json:"match"`
	// Scopes must all have been granted.
	Scopes []string `yaml:"scopes" json:"scopes,omitempty"`
	// ACR is the minimum acr; a higher rung of the ladder also satisfies it.
	ACR string `yaml:"acr" json:"acr,omitempty"`
	// MaxAge, in seconds, bounds the age of the authentication (auth_time);
	// 0 means no bound.
	MaxAge int `yaml:"max_age" json:"max_age,omitempty"`
}

// Values of the config file's routes_default.
const (
	DefaultAllow = "allow" // a request matching no route needs a valid token
	DefaultDeny  = "deny"  // a request matching no route is refused
)

// RoutesOptions are the rest of the route table's configuration.
type RoutesOptions struct {
	// Default is routes_default: "" or "allow", or "deny".
	Default string
	// Ladder orders acr values; nil means DefaultLadder(). Pass the
	// configured oauth.Ladder when acr_ladder is renamed.
	Ladder Ladder
}

// Route is a parsed RouteConfig.
type Route struct {
	Pattern string
	Scopes  []string
	ACR     string
	MaxAge  time.Duration
}

// Table is an immutable route table, safe for concurrent use.
type Table struct {
	routes      []Route
	mux         *http.ServeMux
	ladder      Ladder
	defaultDeny bool
}

// routeMarker is the handler registered for route i; the mux is used only to
// find the most specific pattern, with the standard library's own rules.
type routeMarker int

func (routeMarker) ServeHTTP(http.ResponseWriter, *http.Request) {}

// ParseRoutes validates routes and builds the table. Every problem is
// reported, each naming its entry.
func ParseRoutes(routes []RouteConfig, opts RoutesOptions) (*Table, error) {
	t := &Table{mux: http.NewServeMux(), ladder: opts.Ladder}
	if t.ladder == nil {
		t.ladder = DefaultLadder()
	}
	switch opts.Default {
	case "", DefaultAllow:
	case DefaultDeny:
		t.defaultDeny = true
	default:
		return nil, fmt.Errorf("routes_default: want %q or %q, got %q", DefaultAllow, DefaultDeny, opts.Default)
	}
	var errs []error
	for i, rc := range routes {
		r, err := t.add(len(t.routes), rc)
		if err != nil {
			errs = append(errs, fmt.Errorf("routes[%d] %q: %w", i, rc.Match, err))
			continue
		}
		t.routes = append(t.routes, r)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return t, nil
}

func (t *Table) add(idx int, rc RouteConfig) (Route, error) {
	r := Route{Pattern: strings.TrimSpace(rc.Match), ACR: rc.ACR, MaxAge: time.Duration(rc.MaxAge) * time.Second}
	if r.Pattern == "" {
		return Route{}, errors.New("match is empty")
	}
	_, p, hasMethod := strings.Cut(r.Pattern, " ")
	if !hasMethod {
		p = r.Pattern
	}
	if !strings.HasPrefix(strings.TrimLeft(p, " \t"), "/") {
		return Route{}, errors.New("match must be \"[METHOD ]/path\" (no host)")
	}
	for _, s := range rc.Scopes {
		if !isScopeToken(s) {
			return Route{}, fmt.Errorf("scope %q is not a valid scope token", s)
		}
		if !slices.Contains(r.Scopes, s) {
			r.Scopes = append(r.Scopes, s)
		}
	}
	if rc.ACR != "" && !t.ladder.Satisfies(rc.ACR, rc.ACR) {
		return Route{}, fmt.Errorf("acr %q is not on the acr ladder", rc.ACR)
	}
	if rc.MaxAge < 0 {
		return Route{}, fmt.Errorf("max_age %d: want seconds ≥ 0", rc.MaxAge)
	}
	if err := handleNoPanic(t.mux, r.Pattern, routeMarker(idx)); err != nil {
		return Route{}, err
	}
	return r, nil
}

// handleNoPanic registers a pattern, turning ServeMux's panic on an invalid
// or conflicting pattern into an error.
func handleNoPanic(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("invalid pattern: %v", v)
		}
	}()
	mux.Handle(pattern, h)
	return nil
}

// isScopeToken checks RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
func isScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch < 0x21 || ch > 0x7e || ch == '"' || ch == '\\' {
			return false
		}
	}
	return true
}

// Routes returns a copy of the parsed routes, in configuration order.
func (t *Table) Routes() []Route {
	out := slices.Clone(t.routes)
	for i := range out {
		out[i].Scopes = slices.Clone(out[i].Scopes)
	}
	return out
}

// DefaultDeny reports whether requests matching no route are refused.
func (t *Table) DefaultDeny() bool { return t.defaultDeny }

// Match returns the routes that apply to a request. The path is the
// request's escaped path (the part of the request-target before '?'). It is
// matched twice, after cleaning dot segments: segment by segment as
// net/http.ServeMux does (so %2F stays inside a segment), and fully decoded
// (as many other servers route). Each distinct route found applies, so a
// request cannot dodge a route by encoding its path. A path without a
// trailing slash that the mux would redirect to the slashed form gets the
// slashed form's route. Method names are matched upper-cased.
func (t *Table) Match(method, escapedPath string) []*Route {
	if len(t.routes) == 0 {
		return nil
	}
	method = strings.ToUpper(method)
	var out []*Route
	addFor := func(u *url.URL) {
		for _, candidate := range []*url.URL{u, slashed(u)} {
			if candidate == nil {
				continue
			}
			h, _ := t.mux.Handler(&http.Request{Method: method, URL: candidate, Host: ""})
			if m, ok := h.(routeMarker); ok {
				r := &t.routes[m]
				if !slices.Contains(out, r) {
					out = append(out, r)
				}
				return
			}
		}
	}
	// Segment-wise form: the cleaned escaped path.
	if u, err := url.Parse(cleanPath(escapedPath)); err == nil && u.Scheme == "" && u.Host == "" {
		addFor(&url.URL{Path: u.Path, RawPath: u.RawPath})
	}
	// Decoded form: %2F becomes a separator and %2E%2E a dot segment. A
	// path that does not decode is matched as it stands.
	dec, err := url.PathUnescape(escapedPath)
	if err != nil {
		dec = escapedPath
	}
	addFor(&url.URL{Path: cleanPath(dec)})
	return out
}

// slashed returns u with a trailing slash added, or nil when it has one.
func slashed(u *url.URL) *url.URL {
	if strings.HasSuffix(u.Path, "/") {
		return nil
	}
	v := *u
	v.Path += "/"
	if v.RawPath != "" {
		v.RawPath += "/"
	}
	return &v
}

// cleanPath is path.Clean for request paths: rooted, trailing slash kept.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if strings.HasSuffix(p, "/") && np != "/" {
		np += "/"
	}
	return np
}

// Authorize decides whether claims may make the request: the routes that
// match must all be satisfied; with none, DefaultDeny decides. It returns
// nil when the request may proceed. User authentication (acr, max_age) is
// checked before scopes: a new authorization can fix both at once.
func (t *Table) Authorize(method, escapedPath string, c *Claims, now time.Time) *Challenge {
	routes := t.Match(method, escapedPath)
	if len(routes) == 0 {
		if t.defaultDeny {
			return &Challenge{Status: http.StatusForbidden, Code: CodeInsufficientScope, Description: "No route allows this request"}
		}
		return nil
	}
	for _, r := range routes {
		if ch := t.authenticationShortfall(r, c, now); ch != nil {
			return ch
		}
	}
	for _, r := range routes {
		if ch := scopeShortfall(r, c); ch != nil {
			return ch
		}
	}
	return nil
}

func (t *Table) authenticationShortfall(r *Route, c *Claims, now time.Time) *Challenge {
	weak := r.ACR != "" && !t.ladder.Satisfies(c.ACR, r.ACR)
	old := r.MaxAge > 0 && (c.AuthTime.IsZero() || now.Sub(c.AuthTime) > r.MaxAge)
	if !weak && !old {
		return nil
	}
	ch := &Challenge{Status: http.StatusUnauthorized, Code: CodeInsufficientUserAuthentication, MaxAge: int(r.MaxAge / time.Second)}
	if r.ACR != "" {
		ch.ACRValues = []string{r.ACR}
	}
	if weak {
		ch.Description = "A stronger authentication is required"
	} else {
		ch.Description = "A more recent authentication is required"
	}
	return ch
}

func scopeShortfall(r *Route, c *Claims) *Challenge {
	for _, s := range r.Scopes {
		if !c.HasScope(s) {
			return &Challenge{Status: http.StatusForbidden, Code: CodeInsufficientScope, Description: "The access token lacks a required scope", Scope: slices.Clone(r.Scopes)}
		}
	}
	return nil
}
