package resource

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// IntrospectFunc answers, in-process, what the provider's introspection
// endpoint would: the RFC 7662 response members for token (with "active":
// true, and acr, amr, auth_time, scope, client_id, sub, exp, iss, aud), or
// {"active": false} — or an error wrapping ErrInvalidToken — when the token
// is unknown, expired, revoked or not an access token. Any other error means
// the provider could not decide (storage down) and is answered with 503.
type IntrospectFunc func(ctx context.Context, token string) (map[string]any, error)

// LocalConfig configures a LocalVerifier.
type LocalConfig struct {
	// Introspect is the provider's in-process introspection; required.
	Introspect IntrospectFunc
	// Issuer, when set, must equal the response's iss when it has one.
	Issuer string
	// Audience, when set, must be in the response's aud when it has one.
	// Leave it empty for a gateway in front of several APIs.
	Audience string
	// CacheTTL caches answers for min(exp, CacheTTL); 0 asks the provider
	// every time, so a revocation applies to the very next request.
	CacheTTL  time.Duration
	CacheSize int
	Now       func() time.Time
}

// LocalVerifier verifies tokens inside the Stepwise server by calling the
// provider directly: no HTTP loopback, no JWKS, and revocation of JWT access
// tokens is seen too, since the provider looks every token up.
type LocalVerifier struct {
	cfg   LocalConfig
	cache *introspectionCache
}

// NewLocalVerifier returns a verifier over the provider's introspection.
func NewLocalVerifier(cfg LocalConfig) (*LocalVerifier, error) {
	if cfg.Introspect == nil {
		return nil, errors.New("resource: local verifier: Introspect is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	return &LocalVerifier{cfg: cfg, cache: newIntrospectionCache(cfg.CacheTTL, cfg.CacheSize, cfg.Now)}, nil
}

// Verify implements TokenVerifier.
func (v *LocalVerifier) Verify(ctx context.Context, token string) (*Claims, error) {
	return v.cache.get(ctx, token, v.introspect)
}

func (v *LocalVerifier) introspect(ctx context.Context, token string) (*Claims, error) {
	m, err := v.cfg.Introspect(ctx, token)
	switch {
	case errors.Is(err, ErrInvalidToken):
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("%w: introspect: %w", ErrUnavailable, err)
	}
	return claimsFromIntrospection(m, v.cfg.Issuer, v.cfg.Audience, v.cfg.Now(), 0)
}
