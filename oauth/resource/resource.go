// Package resource protects APIs with Stepwise access tokens.
//
// It verifies RFC 9068 JWT access tokens against the issuer's JWKS, or
// introspects opaque ones (RFC 7662), applies a route table (method and
// path pattern → scopes, minimum acr, maximum authentication age) and
// answers shortfalls with the RFC 6750 / RFC 9470 challenges:
//
//	401 WWW-Authenticate: Bearer error="invalid_token", error_description="…"
//	401 WWW-Authenticate: Bearer error="insufficient_user_authentication", error_description="…", acr_values="phr", max_age=300
//	403 WWW-Authenticate: Bearer error="insufficient_scope", error_description="…", scope="payments:write"
//
// The same decision is offered two ways: Middleware wraps an http.Handler in
// a Go API, and Gateway answers forward-auth checks from nginx auth_request,
// Traefik forwardAuth or Envoy ext_authz at /gateway/check.
//
// DPoP-bound tokens (RFC 9449: cnf.jkt in the claims) are accepted only
// with the DPoP scheme and a valid proof of the request (see DPoPOptions);
// refusals then use the DPoP challenge: 401 WWW-Authenticate: DPoP
// error="invalid_dpop_proof", algs="…". Gateways must forward the DPoP
// header to the check (nginx and Traefik do by default; Envoy needs "dpop"
// in allowed_headers) and return DPoP-Nonce to the client when nonces are
// used.
//
// The package imports nothing else from Stepwise but the leaf package
// oauth/dpop, so API authors pull in neither fosite nor storage, and the
// provider can mount a Gateway that verifies tokens in-process (see
// LocalVerifier) without an import cycle.
package resource

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// Sentinel errors. A TokenVerifier returns an error wrapping ErrInvalidToken
// when the token itself is bad (answered with 401 invalid_token) and one
// wrapping ErrUnavailable when it could not decide (answered with 503).
var (
	ErrInvalidToken = errors.New("invalid access token")
	ErrExpired      = fmt.Errorf("%w: expired", ErrInvalidToken)
	ErrUnavailable  = errors.New("token verification unavailable")
)

// TokenVerifier checks a bearer token and returns its verified claims.
// RemoteVerifier (JWKS and introspection over HTTP) and LocalVerifier (the
// provider's own introspection, in-process) implement it.
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (*Claims, error)
}

// Ladder orders acr values. Satisfies reports whether have meets want: the
// same rung or a higher one; values not on the ladder satisfy nothing and are
// satisfied by nothing. oauth.Ladder implements it.
type Ladder interface {
	Satisfies(have, want string) bool
}

// OrderedLadder is a Ladder given as acr values, weakest first.
type OrderedLadder []string

// DefaultLadder returns the default ladder of DESIGN.md (a test keeps it
// equal to oauth.DefaultLadder).
func DefaultLadder() OrderedLadder {
	return OrderedLadder{"urn:stepwise:acr:pwd", "urn:stepwise:acr:passkey", "phr", "phrh"}
}

// Satisfies implements Ladder.
func (l OrderedLadder) Satisfies(have, want string) bool {
	h, w := slices.Index(l, have), slices.Index(l, want)
	return h >= 0 && w >= 0 && h >= w
}
