package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"

	"github.com/stepwise-id/stepwise/storage"
)

// Well-known scopes the core understands.
const (
	ScopeOpenID        = "openid"
	ScopeOfflineAccess = "offline_access"
	ScopeProfile       = "profile"
	ScopeEmail         = "email"
)

// relyingParty adapts a storage.Client to fosite's client interfaces.
type relyingParty struct {
	c      storage.Client
	jwks   *jose.JSONWebKeySet
	meta   map[string]any
	now    time.Time
	scopes fosite.Arguments
}

var (
	_ fosite.Client              = (*relyingParty)(nil)
	_ fosite.OpenIDConnectClient = (*relyingParty)(nil)
	_ fosite.ResponseModeClient  = (*relyingParty)(nil)
)

func newRelyingParty(c storage.Client, now time.Time) (*relyingParty, error) {
	rp := &relyingParty{c: c, now: now}
	if len(c.JWKS) > 0 {
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(c.JWKS, &set); err != nil {
			return nil, fmt.Errorf("client %q: parse jwks: %w", c.ID, err)
		}
		rp.jwks = &set
	}
	if len(c.Metadata) > 0 {
		// Metadata is informational; a malformed blob must not lock the client out.
		_ = json.Unmarshal(c.Metadata, &rp.meta)
	}
	// openid is implied for every client; offline_access only makes sense
	// (OIDC Core §11) for clients allowed to use refresh tokens.
	scopes := slices.Clone(c.Scopes)
	if !slices.Contains(scopes, ScopeOpenID) {
		scopes = append(scopes, ScopeOpenID)
	}
	if slices.Contains(c.GrantTypes, "refresh_token") && !slices.Contains(scopes, ScopeOfflineAccess) {
		scopes = append(scopes, ScopeOfflineAccess)
	}
	rp.scopes = scopes
	return rp, nil
}

func (r *relyingParty) GetID() string { return r.c.ID }

// GetHashedSecret returns nil once the secret expired, so authentication fails.
func (r *relyingParty) GetHashedSecret() []byte {
	if !r.c.SecretExpiresAt.IsZero() && !r.now.Before(r.c.SecretExpiresAt) {
		return nil
	}
	return r.c.SecretHash
}

func (r *relyingParty) GetRedirectURIs() []string { return r.c.RedirectURIs }

func (r *relyingParty) GetGrantTypes() fosite.Arguments {
	if len(r.c.GrantTypes) == 0 {
		return fosite.Arguments{"authorization_code"}
	}
	return r.c.GrantTypes
}

// GetResponseTypes: only the code flow is composed.
func (r *relyingParty) GetResponseTypes() fosite.Arguments { return fosite.Arguments{"code"} }

func (r *relyingParty) GetScopes() fosite.Arguments { return r.scopes }

func (r *relyingParty) IsPublic() bool { return r.authMethod() == "none" }

func (r *relyingParty) GetAudience() fosite.Arguments { return r.c.Audience }

// GetRequestURIs returns nothing: fetching request objects by URL is an SSRF
// vector we do not need (PAR covers the use case).
func (r *relyingParty) GetRequestURIs() []string { return nil }

func (r *relyingParty) GetJSONWebKeys() *jose.JSONWebKeySet { return r.jwks }

func (r *relyingParty) GetJSONWebKeysURI() string {
	if r.jwks != nil {
		return ""
	}
	return r.c.JWKSURI
}

func (r *relyingParty) GetRequestObjectSigningAlgorithm() string {
	return r.metaString("request_object_signing_alg")
}

func (r *relyingParty) GetTokenEndpointAuthMethod() string { return r.authMethod() }

// GetTokenEndpointAuthSigningAlgorithm returns the registered algorithm, or
// infers it from the client's first key so ES256 and RS256 clients both work
// without registering the algorithm.
func (r *relyingParty) GetTokenEndpointAuthSigningAlgorithm() string {
	if a := r.metaString("token_endpoint_auth_signing_alg"); a != "" {
		return a
	}
	if r.jwks != nil && len(r.jwks.Keys) > 0 {
		k := r.jwks.Keys[0]
		if k.Algorithm != "" {
			return k.Algorithm
		}
		if alg := algForKey(k.Key); alg != "" {
			return alg
		}
	}
	return "RS256"
}

// GetResponseModes allows the query and form_post response modes.
func (r *relyingParty) GetResponseModes() []fosite.ResponseModeType {
	return []fosite.ResponseModeType{fosite.ResponseModeDefault, fosite.ResponseModeQuery, fosite.ResponseModeFormPost}
}

func (r *relyingParty) authMethod() string {
	if r.c.TokenEndpointAuthMethod == "" {
		return "client_secret_basic"
	}
	return r.c.TokenEndpointAuthMethod
}

func (r *relyingParty) metaString(k string) string {
	s, _ := r.meta[k].(string)
	return s
}

// jwtAccessTokens reports whether the client asked for RFC 9068 access tokens.
func (r *relyingParty) jwtAccessTokens() bool { return r.c.AccessTokenFormat == "jwt" }

// clientCache keeps recently used clients in memory: GetClient runs on every
// token and introspection call, and a short TTL bounds how long a change made
// by another replica or the CLI takes to apply.
type clientCache struct {
	store storage.Clients
	ttl   time.Duration
	now   func() time.Time

	mu      sync.Mutex
	entries map[string]cachedClient
}

type cachedClient struct {
	rp      *relyingParty
	expires time.Time
}

func newClientCache(s storage.Clients, ttl time.Duration, now func() time.Time) *clientCache {
	return &clientCache{store: s, ttl: ttl, now: now, entries: map[string]cachedClient{}}
}

// get returns the client or an error wrapping storage.ErrNotFound.
func (cc *clientCache) get(ctx context.Context, id string) (*relyingParty, error) {
	if id == "" {
		return nil, fmt.Errorf("client id is empty: %w", storage.ErrNotFound)
	}
	now := cc.now()
	cc.mu.Lock()
	e, ok := cc.entries[id]
	cc.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.rp, nil
	}
	c, err := cc.store.GetClient(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("load client %q: %w", id, err)
	}
	rp, err := newRelyingParty(c, now)
	if err != nil {
		return nil, err
	}
	cc.mu.Lock()
	if len(cc.entries) > 10000 {
		// Bound memory: a flood of distinct IDs cannot grow the cache forever.
		clear(cc.entries)
	}
	cc.entries[id] = cachedClient{rp: rp, expires: now.Add(cc.ttl)}
	cc.mu.Unlock()
	return rp, nil
}

func (cc *clientCache) invalidate(id string) {
	cc.mu.Lock()
	delete(cc.entries, id)
	cc.mu.Unlock()
}

// isNotFound reports whether err means a missing row.
func isNotFound(err error) bool { return errors.Is(err, storage.ErrNotFound) }
