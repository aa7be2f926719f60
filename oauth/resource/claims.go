package resource

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Claims are the verified claims of an access token. The same fields come
// from a JWT access token (RFC 9068) and from an introspection response
// (RFC 7662). Treat a Claims as read-only: it may be shared through a cache.
type Claims struct {
	Subject  string
	ClientID string
	Scopes   []string
	ACR      string
	AMR      []string
	AuthTime time.Time // zero when the token has no auth_time
	Expiry   time.Time
	IssuedAt time.Time
	Issuer   string
	Audience []string
	// JKT is cnf.jkt: the thumbprint of the DPoP key the token is bound to
	// (RFC 9449 §6), empty for a bearer token.
	JKT string
	// Raw holds every claim or introspection member as decoded JSON.
	Raw map[string]any
}

// HasScope reports whether the token was granted scope.
func (c *Claims) HasScope(scope string) bool { return slices.Contains(c.Scopes, scope) }

type claimsKey struct{}

// WithClaims returns a context carrying c.
func WithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// ClaimsFrom returns the claims the middleware verified for this request.
func ClaimsFrom(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok && c != nil
}

// claimsFromMap reads the registered members shared by JWT access tokens and
// introspection responses. Members of the wrong JSON type are errors, not
// silently ignored.
func claimsFromMap(m map[string]any) (*Claims, error) {
	c := &Claims{Raw: m}
	var err error
	str := func(name string, dst *string) {
		if err != nil {
			return
		}
		if v, ok := m[name]; ok && v != nil {
			s, ok := v.(string)
			if !ok {
				err = fmt.Errorf("claim %q: want a string", name)
				return
			}
			*dst = s
		}
	}
	date := func(name string, dst *time.Time) {
		if err != nil {
			return
		}
		if v, ok := m[name]; ok && v != nil {
			t, e := numericDate(v)
			if e != nil {
				err = fmt.Errorf("claim %q: %w", name, e)
				return
			}
			*dst = t
		}
	}
	list := func(name string, dst *[]string, sep bool) {
		if err != nil {
			return
		}
		v, ok := m[name]
		if !ok || v == nil {
			return
		}
		switch v := v.(type) {
		case string:
			if sep {
				*dst = strings.Fields(v)
			} else {
				*dst = []string{v}
			}
		case []string:
			// In-process introspection (LocalVerifier) hands over Go values.
			*dst = append([]string(nil), v...)
		case []any:
			out := make([]string, 0, len(v))
			for _, e := range v {
				s, ok := e.(string)
				if !ok {
					err = fmt.Errorf("claim %q: want strings", name)
					return
				}
				out = append(out, s)
			}
			*dst = out
		default:
			err = fmt.Errorf("claim %q: want a string or an array of strings", name)
		}
	}
	str("sub", &c.Subject)
	str("client_id", &c.ClientID)
	str("acr", &c.ACR)
	str("iss", &c.Issuer)
	list("scope", &c.Scopes, true)
	list("amr", &c.AMR, false)
	list("aud", &c.Audience, false)
	date("auth_time", &c.AuthTime)
	date("exp", &c.Expiry)
	date("iat", &c.IssuedAt)
	if err == nil {
		c.JKT, err = confirmationJKT(m)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	return c, nil
}

// numericDate converts a JSON NumericDate (seconds since the epoch).
func numericDate(v any) (time.Time, error) {
	var f float64
	switch n := v.(type) {
	case float64:
		f = n
	case json.Number:
		var err error
		if f, err = n.Float64(); err != nil {
			return time.Time{}, fmt.Errorf("bad number: %w", err)
		}
	case int64: // in-process introspection (LocalVerifier)
		f = float64(n)
	case int:
		f = float64(n)
	default:
		return time.Time{}, fmt.Errorf("want a number")
	}
	if math.IsNaN(f) || f < 0 || f > 1<<40 {
		return time.Time{}, fmt.Errorf("out of range")
	}
	return time.Unix(int64(f), 0).UTC(), nil
}
