package resource

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/stepwise-id/stepwise/oauth/dpop"
)

// Options configure a Middleware or a Gateway.
type Options struct {
	// Verifier checks tokens; required.
	Verifier TokenVerifier
	// Routes is the route table; nil means every request needs only a
	// valid token.
	Routes *Table
	// Realm, when set, is added to every challenge.
	Realm string
	// Logger records verifier outages (never tokens); nil discards.
	Logger *slog.Logger
	// Now is the clock for max_age; nil means time.Now.
	Now func() time.Time
	// DPoP configures the checks of DPoP-bound tokens (dpop.go).
	DPoP DPoPOptions
}

// guard is the decision shared by Middleware and Gateway.
type guard struct {
	verifier TokenVerifier
	routes   *Table
	realm    string
	log      *slog.Logger
	now      func() time.Time
	dpop     *dpop.Verifier
	dpopBase string
}

func newGuard(o Options) (*guard, error) {
	if o.Verifier == nil {
		return nil, errors.New("resource: Verifier is required")
	}
	g := &guard{verifier: o.Verifier, routes: o.Routes, realm: o.Realm, log: o.Logger, now: o.Now}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.realm != "" && !isPrintableASCII(g.realm) {
		return nil, errors.New("resource: Realm must be printable ASCII")
	}
	var err error
	if g.dpop, g.dpopBase, err = newProofVerifier(o.DPoP); err != nil {
		return nil, err
	}
	return g, nil
}

// outcome of a check: claims when allowed, else a challenge, or unavailable.
type outcome struct {
	claims      *Claims
	challenge   *Challenge
	unavailable bool
}

// check verifies the bearer or DPoP token of h, and the DPoP proof of a
// bound token (htu gives the request's URL), and applies the route table to
// the request (method, escaped path).
func (g *guard) check(ctx context.Context, h http.Header, method, escapedPath string, htu func() string) outcome {
	token, scheme, ch := presentedToken(h)
	if ch != nil {
		return outcome{challenge: ch}
	}
	claims, err := g.verifier.Verify(ctx, token)
	switch {
	case errors.Is(err, ErrExpired):
		return outcome{challenge: &Challenge{Status: http.StatusUnauthorized, Code: CodeInvalidToken, Description: "The access token expired"}}
	case errors.Is(err, ErrInvalidToken):
		return outcome{challenge: &Challenge{Status: http.StatusUnauthorized, Code: CodeInvalidToken, Description: "The access token is invalid"}}
	case err != nil:
		g.log.ErrorContext(ctx, "access token verification unavailable", "err", err)
		return outcome{unavailable: true}
	}
	ch, err = g.checkDPoP(ctx, h, scheme, token, claims, method, htu)
	switch {
	case err != nil:
		g.log.ErrorContext(ctx, "DPoP proof check unavailable", "err", err)
		return outcome{unavailable: true}
	case ch != nil:
		return outcome{challenge: ch}
	}
	if g.routes != nil {
		if ch := g.routes.Authorize(method, escapedPath, claims, g.now()); ch != nil {
			if scheme == dpop.TokenType {
				c := *ch
				c.Scheme = dpop.TokenType
				ch = &c
			}
			return outcome{challenge: ch}
		}
	}
	return outcome{claims: claims}
}

func writeUnavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "5")
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, "token verification temporarily unavailable", http.StatusServiceUnavailable)
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// Middleware protects an API: every request needs a valid bearer token, and
// the route table's scopes, acr and max_age for its method and path. Put CORS
// handling outside it: a preflight OPTIONS request carries no token.
type Middleware struct{ g *guard }

// NewMiddleware returns the middleware for o.
func NewMiddleware(o Options) (*Middleware, error) {
	g, err := newGuard(o)
	if err != nil {
		return nil, err
	}
	return &Middleware{g: g}, nil
}

// Wrap returns next guarded by the middleware. The handler finds the
// verified claims with ClaimsFrom(r.Context()).
func (m *Middleware) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := m.g.check(r.Context(), r.Header, r.Method, r.URL.EscapedPath(), func() string { return m.g.requestURL(r) })
		switch {
		case out.unavailable:
			writeUnavailable(w)
		case out.challenge != nil:
			out.challenge.Write(w, m.g.realm)
		default:
			next.ServeHTTP(w, r.WithContext(WithClaims(r.Context(), out.claims)))
		}
	})
}
