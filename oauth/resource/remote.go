package resource

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/sync/singleflight"
)

// Defaults of RemoteConfig.
const (
	DefaultLeeway            = 10 * time.Second
	DefaultCacheTTL          = 30 * time.Second
	DefaultCacheSize         = 10000
	DefaultJWKSMinRefresh    = 10 * time.Second
	DefaultJWKSMaxAge        = 10 * time.Minute
	fetchTimeout             = 10 * time.Second
	maxResponseBytes         = 1 << 20
	discoveryPath            = "/.well-known/openid-configuration"
	discoveryRetryAfterError = 5 * time.Second
)

// signingAlgs are the only JWS algorithms accepted: what Stepwise signs
// with. "none" and HMAC algorithms can never verify.
func signingAlgs() []jose.SignatureAlgorithm {
	return []jose.SignatureAlgorithm{jose.ES256, jose.RS256}
}

// RemoteConfig configures a RemoteVerifier.
type RemoteConfig struct {
	// Issuer is the provider's issuer identifier; JWT access tokens must
	// carry it as iss. Metadata is read from its discovery document unless
	// both JWKSURL and IntrospectionURL are set.
	Issuer string
	// Audience identifies this API: JWT access tokens (and introspected
	// ones, when the response names an aud) must list it in aud.
	Audience string
	// ClientID and ClientSecret authenticate to the introspection endpoint
	// (client_secret_basic). Without them opaque tokens are refused.
	ClientID     string
	ClientSecret string
	// JWKSURL and IntrospectionURL override discovery.
	JWKSURL          string
	IntrospectionURL string
	// HTTPClient makes every call; nil means a client with a 10 s timeout.
	HTTPClient *http.Client
	// Leeway is the clock skew allowed on exp, nbf and iat (default 10 s).
	Leeway time.Duration
	// CacheTTL bounds how long an introspection answer is reused, so a
	// revoked token is refused at most this long after revocation
	// (default 30 s; negative disables the cache). CacheSize bounds its
	// entries (default 10000).
	CacheTTL  time.Duration
	CacheSize int
	// JWKSMinRefresh is the least time between two JWKS fetches caused by
	// unknown kids (default 10 s); JWKSMaxAge the time after which the set
	// is refetched anyway (default 10 min).
	JWKSMinRefresh time.Duration
	JWKSMaxAge     time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// RemoteVerifier verifies Stepwise access tokens from outside the provider:
// JWT access tokens locally against the cached JWKS, opaque tokens by
// introspection with a short-lived cache. It is safe for concurrent use and
// makes no network call until the first token arrives.
type RemoteVerifier struct {
	cfg    RemoteConfig
	client *http.Client
	keys   *keySet
	cache  *introspectionCache

	metaSF  singleflight.Group
	metaMu  sync.Mutex
	meta    *metadata
	metaErr time.Time // when discovery last failed
}

type metadata struct {
	Issuer                string `json:"issuer"`
	JWKSURI               string `json:"jwks_uri"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
}

// NewRemoteVerifier checks cfg and returns a verifier.
func NewRemoteVerifier(cfg RemoteConfig) (*RemoteVerifier, error) {
	if cfg.Issuer == "" {
		return nil, errors.New("resource: remote verifier: Issuer is required")
	}
	if cfg.Audience == "" {
		return nil, errors.New("resource: remote verifier: Audience is required (RFC 9068 §4)")
	}
	if u, err := url.Parse(cfg.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("resource: remote verifier: Issuer %q is not an http(s) URL", cfg.Issuer)
	}
	if (cfg.ClientID == "") != (cfg.ClientSecret == "") {
		return nil, errors.New("resource: remote verifier: set both ClientID and ClientSecret, or neither")
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = DefaultCacheTTL
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.JWKSMinRefresh <= 0 {
		cfg.JWKSMinRefresh = DefaultJWKSMinRefresh
	}
	if cfg.JWKSMaxAge <= 0 {
		cfg.JWKSMaxAge = DefaultJWKSMaxAge
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v := &RemoteVerifier{cfg: cfg, client: cfg.HTTPClient}
	if v.client == nil {
		v.client = &http.Client{Timeout: fetchTimeout}
	}
	v.keys = &keySet{
		client: v.client, minRefresh: cfg.JWKSMinRefresh, maxAge: cfg.JWKSMaxAge, now: cfg.Now,
		uri: func(ctx context.Context) (string, error) {
			m, err := v.metadata(ctx)
			if err != nil {
				return "", err
			}
			if m.JWKSURI == "" {
				return "", fmt.Errorf("%w: discovery names no jwks_uri", ErrUnavailable)
			}
			return m.JWKSURI, nil
		},
	}
	v.cache = newIntrospectionCache(cfg.CacheTTL, cfg.CacheSize, cfg.Now)
	return v, nil
}

// Verify implements TokenVerifier. A token in JWS compact form (two dots) is
// a JWT access token and is verified locally; anything else is introspected.
func (v *RemoteVerifier) Verify(ctx context.Context, token string) (*Claims, error) {
	if strings.Count(token, ".") == 2 {
		return v.verifyJWT(ctx, token)
	}
	if v.cfg.ClientID == "" {
		return nil, fmt.Errorf("%w: opaque tokens need introspection credentials", ErrInvalidToken)
	}
	return v.cache.get(ctx, token, v.introspect)
}

// verifyJWT checks an RFC 9068 access token: algorithm pinned, typ at+jwt,
// signature by a key of the issuer's JWKS, iss, aud, exp/nbf/iat.
func (v *RemoteVerifier) verifyJWT(ctx context.Context, token string) (*Claims, error) {
	tok, err := jwt.ParseSigned(token, signingAlgs())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if len(tok.Headers) != 1 {
		return nil, fmt.Errorf("%w: want one signature", ErrInvalidToken)
	}
	h := tok.Headers[0]
	if !isATJWT(h.ExtraHeaders[jose.HeaderType]) {
		return nil, fmt.Errorf("%w: typ is not at+jwt", ErrInvalidToken)
	}
	keys, err := v.keys.find(ctx, h.KeyID, h.Algorithm)
	if err != nil {
		return nil, err
	}
	var payload json.RawMessage
	verified := false
	for _, k := range keys {
		if err := tok.Claims(k.Key, &payload); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return nil, fmt.Errorf("%w: bad signature", ErrInvalidToken)
	}
	// Decode the payload once; the registered claims go-jose validates are
	// taken from the same map.
	var raw map[string]any
	if err := json.Unmarshal(payload, &raw); err != nil || raw == nil {
		return nil, fmt.Errorf("%w: payload is not a JSON object", ErrInvalidToken)
	}
	c, err := claimsFromMap(raw)
	if err != nil {
		return nil, err
	}
	if c.Expiry.IsZero() {
		return nil, fmt.Errorf("%w: no exp", ErrInvalidToken)
	}
	std := jwt.Claims{Issuer: c.Issuer, Audience: jwt.Audience(c.Audience), Expiry: jwt.NewNumericDate(c.Expiry), IssuedAt: jwt.NewNumericDate(c.IssuedAt)}
	if v, ok := raw["nbf"]; ok && v != nil {
		nbf, err := numericDate(v)
		if err != nil {
			return nil, fmt.Errorf("%w: claim \"nbf\": %w", ErrInvalidToken, err)
		}
		std.NotBefore = jwt.NewNumericDate(nbf)
	}
	err = std.ValidateWithLeeway(jwt.Expected{
		Issuer:      v.cfg.Issuer,
		AnyAudience: jwt.Audience{v.cfg.Audience},
		Time:        v.cfg.Now(),
	}, v.cfg.Leeway)
	switch {
	case errors.Is(err, jwt.ErrExpired):
		return nil, ErrExpired
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if c.Subject == "" {
		return nil, fmt.Errorf("%w: no sub", ErrInvalidToken)
	}
	return c, nil
}

// isATJWT accepts "at+jwt" and its full media type, case-insensitively
// (RFC 9068 §2.1, RFC 7515 §4.1.9).
func isATJWT(v any) bool {
	s, _ := v.(string)
	s = strings.ToLower(s)
	return s == "at+jwt" || s == "application/at+jwt"
}

// keyFitsAlg reports whether a JWK's key can verify alg.
func keyFitsAlg(k jose.JSONWebKey, alg string) bool {
	switch key := k.Key.(type) {
	case *ecdsa.PublicKey:
		return alg == string(jose.ES256) && key.Curve == elliptic.P256()
	case *rsa.PublicKey:
		return alg == string(jose.RS256) && key.N.BitLen() >= 2048
	}
	return false
}

// introspect asks the introspection endpoint (RFC 7662 §2.1) as a
// confidential client.
func (v *RemoteVerifier) introspect(ctx context.Context, token string) (*Claims, error) {
	endpoint := v.cfg.IntrospectionURL
	if endpoint == "" {
		m, err := v.metadata(ctx)
		if err != nil {
			return nil, err
		}
		if endpoint = m.IntrospectionEndpoint; endpoint == "" {
			return nil, fmt.Errorf("%w: discovery names no introspection_endpoint", ErrUnavailable)
		}
	}
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("%w: introspect: %w", ErrUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 §2.3.1: form-encode the credentials before Basic.
	req.SetBasicAuth(url.QueryEscape(v.cfg.ClientID), url.QueryEscape(v.cfg.ClientSecret))
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: introspect: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// 401 means our own credentials are wrong: an outage, not a bad token.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
		return nil, fmt.Errorf("%w: introspect: status %d", ErrUnavailable, resp.StatusCode)
	}
	m, err := decodeJSONObject(resp)
	if err != nil {
		return nil, fmt.Errorf("%w: introspect: %w", ErrUnavailable, err)
	}
	return claimsFromIntrospection(m, v.cfg.Issuer, v.cfg.Audience, v.cfg.Now(), v.cfg.Leeway)
}

// claimsFromIntrospection turns an RFC 7662 response into claims. Inactive
// tokens, refresh tokens, expired tokens and tokens for another issuer or
// audience are all ErrInvalidToken.
func claimsFromIntrospection(m map[string]any, issuer, audience string, now time.Time, leeway time.Duration) (*Claims, error) {
	if active, _ := m["active"].(bool); !active {
		return nil, fmt.Errorf("%w: inactive", ErrInvalidToken)
	}
	for _, k := range []string{"token_use", "token_type"} {
		if s, ok := m[k].(string); ok && s != "" && !strings.EqualFold(s, "bearer") && !strings.EqualFold(s, "dpop") && s != "access_token" && !isATJWT(s) {
			return nil, fmt.Errorf("%w: %s %q is not an access token", ErrInvalidToken, k, s)
		}
	}
	c, err := claimsFromMap(m)
	if err != nil {
		return nil, err
	}
	if issuer != "" && c.Issuer != "" && c.Issuer != issuer {
		return nil, fmt.Errorf("%w: wrong issuer", ErrInvalidToken)
	}
	if audience != "" && len(c.Audience) > 0 && !slices.Contains(c.Audience, audience) {
		return nil, fmt.Errorf("%w: wrong audience", ErrInvalidToken)
	}
	if !c.Expiry.IsZero() && now.After(c.Expiry.Add(leeway)) {
		return nil, ErrExpired
	}
	return c, nil
}

// metadata returns the discovery document, fetched once. A failure is
// remembered for a few seconds so an unreachable issuer is not hammered.
func (v *RemoteVerifier) metadata(ctx context.Context) (*metadata, error) {
	if v.cfg.JWKSURL != "" && v.cfg.IntrospectionURL != "" {
		return &metadata{Issuer: v.cfg.Issuer, JWKSURI: v.cfg.JWKSURL, IntrospectionEndpoint: v.cfg.IntrospectionURL}, nil
	}
	v.metaMu.Lock()
	m, failedAt := v.meta, v.metaErr
	v.metaMu.Unlock()
	if m != nil {
		return m, nil
	}
	if !failedAt.IsZero() && v.cfg.Now().Sub(failedAt) < discoveryRetryAfterError {
		return nil, fmt.Errorf("%w: discovery failed recently", ErrUnavailable)
	}
	ch := v.metaSF.DoChan("discovery", func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
		defer cancel()
		m, err := v.fetchMetadata(fctx)
		v.metaMu.Lock()
		defer v.metaMu.Unlock()
		if err != nil {
			v.metaErr = v.cfg.Now()
			return nil, err
		}
		v.meta = m
		return m, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return nil, res.Err
		}
		return res.Val.(*metadata), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: discovery: %w", ErrUnavailable, ctx.Err())
	}
}

func (v *RemoteVerifier) fetchMetadata(ctx context.Context) (*metadata, error) {
	var m metadata
	if err := getJSON(ctx, v.client, strings.TrimSuffix(v.cfg.Issuer, "/")+discoveryPath, &m); err != nil {
		return nil, fmt.Errorf("%w: discovery: %w", ErrUnavailable, err)
	}
	// OpenID Connect Discovery §4.3: the document must name the issuer we
	// asked, or its keys could be anyone's.
	if m.Issuer != v.cfg.Issuer {
		return nil, fmt.Errorf("%w: discovery: issuer %q does not match %q", ErrUnavailable, m.Issuer, v.cfg.Issuer)
	}
	if v.cfg.JWKSURL != "" {
		m.JWKSURI = v.cfg.JWKSURL
	}
	if v.cfg.IntrospectionURL != "" {
		m.IntrospectionEndpoint = v.cfg.IntrospectionURL
	}
	return &m, nil
}

// getJSON fetches a JSON document with a bounded body.
func getJSON(ctx context.Context, client *http.Client, uri string, dst any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", uri, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
		return fmt.Errorf("get %s: status %d", uri, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBytes)).Decode(dst); err != nil {
		return fmt.Errorf("decode %s: %w", uri, err)
	}
	return nil
}

// decodeJSONObject reads a JSON object response.
func decodeJSONObject(resp *http.Response) (map[string]any, error) {
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, fmt.Errorf("content type %q is not application/json", resp.Header.Get("Content-Type"))
	}
	var m map[string]any
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponseBytes)).Decode(&m); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if m == nil {
		return nil, errors.New("response is not a JSON object")
	}
	return m, nil
}
