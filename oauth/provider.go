// Package oauth is Stepwise's OAuth 2.0 / OpenID Connect core: it composes
// fosite, serves every protocol endpoint, owns the signing keys and carries
// the assurance ladder (acr/amr/auth_time) into codes and tokens.
package oauth

import (
	"context"
	"crypto/sha512"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"sync/atomic"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/hmac"

	"github.com/stepwise-id/stepwise/oauth/dpop"
	"github.com/stepwise-id/stepwise/storage"
)

// Endpoint paths, relative to the issuer.
const (
	PathDiscovery       = "/.well-known/openid-configuration"
	PathASMetadata      = "/.well-known/oauth-authorization-server"
	PathJWKS            = "/oauth2/jwks"
	PathAuthorize       = "/oauth2/authorize"
	PathAuthorizeResume = "/oauth2/authorize/resume"
	PathToken           = "/oauth2/token"
	PathIntrospect      = "/oauth2/introspect"
	PathRevoke          = "/oauth2/revoke"
	PathUserinfo        = "/oauth2/userinfo"
	PathPAR             = "/oauth2/par"
	PathLogout          = "/oauth2/logout"
	// PathRegister is served by the registration handler (register.go).
	PathRegister = "/oauth2/register"
)

// Provider serves the OAuth/OIDC endpoints. Fields are unexported; the
// registration handler (another file of this package) may use:
//
//   - store: the storage.Storage everything persists to;
//   - hasher: the client-secret hasher (hash new secrets with it);
//   - clients.invalidate(id) (or InvalidateClient) after changing a client;
//   - cfg.Issuer and p.url(path) for endpoint URLs;
//   - log for logging.
type Provider struct {
	cfg    Config
	store  storage.Storage
	ui     Interaction
	log    *slog.Logger
	hasher *SecretHasher

	// oauth is fosite's provider; fcfg its configuration.
	oauth *fosite.Fosite
	fcfg  *fositeConfig
	// fstore adapts storage.Storage to fosite.
	fstore  *fositeStore
	clients *clientCache
	keys    *KeyManager
	signer  tokenSigner
	// proofs verifies DPoP proofs (dpop.go).
	proofs *dpop.Verifier

	// discovery holds the precomputed metadata documents, rebuilt when the
	// published keys (and so the signing algorithms) change.
	discovery atomic.Pointer[discoveryDocs]
}

// fositeConfig lets client assertions (private_key_jwt) name the token,
// introspection, revocation or PAR endpoint, or the issuer, as audience: RFC
// 7523 allows the issuer, and callers of the other endpoints reasonably name
// the endpoint they call.
type fositeConfig struct {
	*fosite.Config
	tokenURLs []string
}

func (c *fositeConfig) GetTokenURLs(context.Context) []string { return c.tokenURLs }

// verifiedJWTCacheSize bounds the set of verified JWT access tokens (32-byte
// digests): about 1 MB at most.
const verifiedJWTCacheSize = 16384

// New builds the provider: it loads (or creates) the system secret and the
// signing keys and composes fosite. ui must not be nil.
func New(cfg Config, store storage.Storage, ui Interaction, logger *slog.Logger) (*Provider, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if store == nil || ui == nil {
		return nil, errors.New("oauth: store and ui are required")
	}
	ctx := context.Background()
	secret := c.SystemSecret
	if secret == nil {
		if secret, err = LoadSystemSecret(ctx, store); err != nil {
			return nil, fmt.Errorf("oauth: %w", err)
		}
	}
	hasher, err := NewClientSecretHasher(secret)
	if err != nil {
		return nil, fmt.Errorf("oauth: %w", err)
	}
	p := &Provider{cfg: c, store: store, ui: ui, log: c.logger(logger), hasher: hasher}
	p.keys, err = NewKeyManager(store, c)
	if err != nil {
		return nil, err
	}
	if err := p.keys.Init(ctx); err != nil {
		return nil, fmt.Errorf("oauth: signing keys: %w", err)
	}
	p.signer = tokenSigner{keys: p.keys}
	if p.proofs, err = newDPoPVerifier(c, store, secret); err != nil {
		return nil, err
	}
	p.clients = newClientCache(store, c.ClientCacheTTL, c.Now)
	p.fstore = &fositeStore{s: store, clients: p.clients, decoded: newDecodeCache(decodeCacheSize), issuer: c.Issuer, grace: c.RefreshGracePeriod, now: c.Now, log: p.log}

	fc := &fosite.Config{
		AccessTokenLifespan:            c.AccessTokenLifespan,
		RefreshTokenLifespan:           c.RefreshTokenLifespan,
		AuthorizeCodeLifespan:          c.AuthCodeLifespan,
		IDTokenLifespan:                c.IDTokenLifespan,
		IDTokenIssuer:                  c.Issuer,
		AccessTokenIssuer:              c.Issuer,
		ScopeStrategy:                  fosite.ExactScopeStrategy,
		AudienceMatchingStrategy:       fosite.DefaultAudienceMatchingStrategy,
		EnforcePKCEForPublicClients:    true,
		EnablePKCEPlainChallengeMethod: false,
		TokenURL:                       p.url(PathToken),
		RefreshTokenScopes:             []string{ScopeOfflineAccess},
		ClientSecretsHasher:            hasher,
		GlobalSecret:                   deriveKey(secret, "token-hmac"),
		HMACHasher:                     sha512.New512_256,
		PushedAuthorizeContextLifespan: c.PARLifespan,
		IsPushedAuthorizeEnforced:      false,
		SendDebugMessagesToClients:     false,
	}
	p.fcfg = &fositeConfig{Config: fc, tokenURLs: []string{
		p.url(PathToken), c.Issuer, c.Issuer + "/", p.url(PathIntrospect), p.url(PathRevoke), p.url(PathPAR),
	}}
	hmacStrategy := oauth2.NewHMACSHAStrategy(&hmac.HMACStrategy{Config: fc}, fc)
	strategy := &compose.CommonStrategy{
		CoreStrategy: &tokenStrategy{HMACSHAStrategy: hmacStrategy, signer: p.signer, issuer: c.Issuer,
			verified: newVerifiedJWTs(verifiedJWTCacheSize, p.keys.published)},
		OpenIDConnectTokenStrategy: &openid.DefaultStrategy{Signer: p.signer, Config: fc},
		Signer:                     p.signer,
	}
	p.oauth = fosite.NewOAuth2Provider(p.fstore, p.fcfg)
	fc.ClientAuthenticationStrategy = p.authenticateClient
	// Order matters: the code handler must run before PKCE, and both before
	// the OpenID Connect handler that issues the ID token.
	for _, factory := range []compose.Factory{
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OpenIDConnectExplicitFactory,
		compose.OpenIDConnectRefreshFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
		compose.OAuth2PKCEFactory,
		compose.PushedAuthorizeHandlerFactory,
	} {
		h := factory(p.fcfg, p.fstore, strategy)
		if ah, ok := h.(fosite.AuthorizeEndpointHandler); ok {
			fc.AuthorizeEndpointHandlers.Append(ah)
		}
		if th, ok := h.(fosite.TokenEndpointHandler); ok {
			fc.TokenEndpointHandlers.Append(th)
		}
		if ti, ok := h.(fosite.TokenIntrospector); ok {
			fc.TokenIntrospectionHandlers.Append(ti)
		}
		if rh, ok := h.(fosite.RevocationHandler); ok {
			fc.RevocationHandlers.Append(rh)
		}
		if ph, ok := h.(fosite.PushedAuthorizeEndpointHandler); ok {
			fc.PushedAuthorizeEndpointHandlers.Append(ph)
		}
	}
	if err := p.rebuildDiscovery(); err != nil {
		return nil, err
	}
	p.keys.OnChange(func() {
		if err := p.rebuildDiscovery(); err != nil {
			p.log.Error("rebuild discovery", "err", err)
		}
	})
	return p, nil
}

// authenticateClient wraps fosite's client authentication so that a
// low-level failure (an expired or malformed client assertion surfaces as a
// bare go-jose error) is reported as invalid_client, never as a 500.
func (p *Provider) authenticateClient(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
	c, err := p.oauth.DefaultClientAuthenticationStrategy(ctx, r, form)
	if err != nil {
		var rfc *fosite.RFC6749Error
		if !errors.As(err, &rfc) {
			return nil, fosite.ErrInvalidClient.WithHint("Client authentication failed.").WithWrap(err).WithDebug(err.Error())
		}
		return nil, err
	}
	return c, nil
}

// Keys returns the key manager (for rotation from an admin page).
func (p *Provider) Keys() *KeyManager { return p.keys }

// SecretHasher returns the client-secret hasher.
func (p *Provider) SecretHasher() *SecretHasher { return p.hasher }

// InvalidateClient drops a client from the cache; call it after updating or
// deleting the client so the change applies at once on this replica.
func (p *Provider) InvalidateClient(id string) { p.clients.invalidate(id) }

// Issuer returns the issuer identifier.
func (p *Provider) Issuer() string { return p.cfg.Issuer }

// Handler returns an http.Handler serving every endpoint this file owns.
func (p *Provider) Handler() http.Handler {
	mux := http.NewServeMux()
	p.Register(mux)
	return mux
}

// Register adds the endpoints to mux. The registration endpoint is added
// separately by the registration handler.
func (p *Provider) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PathDiscovery, p.serveDiscovery)
	mux.HandleFunc("GET "+PathASMetadata, p.serveASMetadata)
	mux.HandleFunc("GET "+PathJWKS, p.serveJWKS)
	mux.HandleFunc("GET "+PathAuthorize, p.serveAuthorize)
	mux.HandleFunc("POST "+PathAuthorize, p.serveAuthorize)
	mux.HandleFunc("GET "+PathAuthorizeResume, p.serveResume)
	mux.HandleFunc("POST "+PathToken, p.serveToken)
	mux.HandleFunc("POST "+PathIntrospect, p.serveIntrospect)
	mux.HandleFunc("POST "+PathRevoke, p.serveRevoke)
	mux.HandleFunc("GET "+PathUserinfo, p.serveUserinfo)
	mux.HandleFunc("POST "+PathUserinfo, p.serveUserinfo)
	mux.HandleFunc("POST "+PathPAR, p.servePAR)
	mux.HandleFunc("GET "+PathLogout, p.serveLogout)
	mux.HandleFunc("POST "+PathLogout, p.serveLogout)
}

func (p *Provider) url(path string) string { return p.cfg.Issuer + path }

// readForm bounds the body and parses a form POST. Anything but
// application/x-www-form-urlencoded is refused, so a JSON body or a huge
// upload gets invalid_request rather than reaching fosite.
func (p *Provider) readForm(w http.ResponseWriter, r *http.Request) *fosite.RFC6749Error {
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, p.cfg.MaxBodyBytes)
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/x-www-form-urlencoded" {
			return fosite.ErrInvalidRequest.WithHint("The request body must be application/x-www-form-urlencoded.")
		}
	}
	if err := r.ParseForm(); err != nil {
		return fosite.ErrInvalidRequest.WithHint("The request body could not be parsed or is too large.")
	}
	return nil
}

// noStore marks a response as uncacheable (RFC 6749 §5.1).
func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}
