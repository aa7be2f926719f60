package oauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/stepwise-id/stepwise/storage"
)

// Token endpoint authentication methods a client may register
// (token_endpoint_auth_method, RFC 7591 §2).
const (
	AuthMethodSecretBasic   = "client_secret_basic"
	AuthMethodSecretPost    = "client_secret_post"
	AuthMethodPrivateKeyJWT = "private_key_jwt"
	AuthMethodNone          = "none"
)

// Access token formats a client may ask for (the access_token_format
// extension).
const (
	AccessTokenOpaque = "opaque"
	AccessTokenJWT    = "jwt"
)

// ErrClientHasNoSecret is returned by RotateSecret for a client that
// authenticates without a shared secret (none or private_key_jwt).
var ErrClientHasNoSecret = errors.New("client authenticates without a client secret")

// errRegistrationToken is why a bearer token was refused at the registration
// endpoints; the HTTP layer turns it into 401 invalid_token.
var errRegistrationToken = errors.New("invalid registration token")

// ScopeList is a list of scope tokens that travels in JSON as one
// space-separated string, as RFC 7591's scope member does.
type ScopeList []string

// MarshalJSON encodes the list as a space-separated string.
func (s ScopeList) MarshalJSON() ([]byte, error) {
	return json.Marshal(strings.Join(s, " "))
}

// UnmarshalJSON decodes a space-separated string; null leaves the list empty.
// Empty tokens from repeated spaces are dropped; the characters of each token
// are checked by validation, not here.
func (s *ScopeList) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		*s = nil
		return nil
	}
	var str string
	if err := json.Unmarshal(data, &str); err != nil {
		return err
	}
	var out ScopeList
	for tok := range strings.SplitSeq(str, " ") {
		if tok != "" {
			out = append(out, tok)
		}
	}
	*s = out
	return nil
}

// Metadata is the client metadata of RFC 7591 §2 (and OpenID Connect Dynamic
// Client Registration 1.0, for application_type and
// post_logout_redirect_uris), plus Stepwise's extensions. The JSON member
// names are the registered ones.
type Metadata struct {
	ClientName              string          `json:"client_name,omitempty"`
	RedirectURIs            []string        `json:"redirect_uris,omitempty"`
	GrantTypes              []string        `json:"grant_types,omitempty"`
	ResponseTypes           []string        `json:"response_types,omitempty"`
	Scope                   ScopeList       `json:"scope,omitempty"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method,omitempty"`
	JWKS                    json.RawMessage `json:"jwks,omitempty"`
	JWKSURI                 string          `json:"jwks_uri,omitempty"`
	// TokenEndpointAuthSigningAlg is the JWS algorithm of private_key_jwt
	// assertions (OIDC Registration §2); empty means inferred from the key.
	TokenEndpointAuthSigningAlg string `json:"token_endpoint_auth_signing_alg,omitempty"`
	// RequestObjectSigningAlg is the JWS algorithm request objects must use.
	RequestObjectSigningAlg string   `json:"request_object_signing_alg,omitempty"`
	PostLogoutRedirectURIs  []string `json:"post_logout_redirect_uris,omitempty"`
	// ApplicationType is "web" or "native" (OIDC Registration §2); native
	// clients may register private-use URI scheme redirects.
	ApplicationType string   `json:"application_type,omitempty"`
	ClientURI       string   `json:"client_uri,omitempty"`
	LogoURI         string   `json:"logo_uri,omitempty"`
	Contacts        []string `json:"contacts,omitempty"`
	TOSURI          string   `json:"tos_uri,omitempty"`
	PolicyURI       string   `json:"policy_uri,omitempty"`
	SoftwareID      string   `json:"software_id,omitempty"`
	SoftwareVersion string   `json:"software_version,omitempty"`

	// RequirePKCE makes PKCE mandatory for a confidential client; it is
	// always mandatory for public ones.
	RequirePKCE bool `json:"require_pkce,omitempty"`
	// RequirePAR makes pushed authorization requests mandatory (RFC 9126 §6).
	RequirePAR bool `json:"require_pushed_authorization_requests,omitempty"`
	// AccessTokenFormat is "opaque" (the default) or "jwt" (RFC 9068).
	AccessTokenFormat string `json:"access_token_format,omitempty"`
	// Audience lists the resource servers the client's tokens may target.
	Audience []string `json:"audience,omitempty"`
	// DPoPBoundAccessTokens makes DPoP mandatory at the token endpoint
	// (RFC 9449 §5.2): every token the client obtains is sender-constrained.
	DPoPBoundAccessTokens bool `json:"dpop_bound_access_tokens,omitempty"`
}

// metadataExtras is the part of Metadata kept in storage.Client.Metadata.
type metadataExtras struct {
	TokenEndpointAuthSigningAlg string   `json:"token_endpoint_auth_signing_alg,omitempty"`
	RequestObjectSigningAlg     string   `json:"request_object_signing_alg,omitempty"`
	ApplicationType             string   `json:"application_type,omitempty"`
	ClientURI                   string   `json:"client_uri,omitempty"`
	LogoURI                     string   `json:"logo_uri,omitempty"`
	Contacts                    []string `json:"contacts,omitempty"`
	TOSURI                      string   `json:"tos_uri,omitempty"`
	PolicyURI                   string   `json:"policy_uri,omitempty"`
	SoftwareID                  string   `json:"software_id,omitempty"`
	SoftwareVersion             string   `json:"software_version,omitempty"`
	DPoPBoundAccessTokens       bool     `json:"dpop_bound_access_tokens,omitempty"`
}

// Registered is a client as the registry reports it: the RFC 7591 §3.2.1
// client information response. It is also the JSON view of a client for the
// CLI. ClientSecret is set only by Create, RotateSecret, or an Update that
// gave the client its first secret; the stored hash is never exposed.
type Registered struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret,omitempty"`
	// ClientIDIssuedAt is when the client was created, in Unix seconds.
	ClientIDIssuedAt int64 `json:"client_id_issued_at"`
	// ClientSecretExpiresAt is 0: secrets do not expire. It appears in JSON
	// only when HasSecret is true, as RFC 7591 asks.
	ClientSecretExpiresAt int64 `json:"client_secret_expires_at"`
	// HasSecret says whether the client authenticates with a shared secret.
	HasSecret bool `json:"-"`
	// RegistrationAccessToken and RegistrationClientURI are set only on
	// responses of the registration endpoints (RFC 7592).
	RegistrationAccessToken string `json:"registration_access_token,omitempty"`
	RegistrationClientURI   string `json:"registration_client_uri,omitempty"`
	Metadata
}

// MarshalJSON writes the RFC 7591 keys, with client_secret_expires_at only
// for clients that have a secret.
func (r Registered) MarshalJSON() ([]byte, error) {
	type plain Registered // drops this method
	var expires *int64
	if r.HasSecret {
		expires = &r.ClientSecretExpiresAt
	}
	return json.Marshal(struct {
		plain
		ClientSecretExpiresAt *int64 `json:"client_secret_expires_at,omitempty"`
	}{plain(r), expires})
}

// RegistryStore is the slice of storage the client registry consumes.
type RegistryStore interface {
	storage.Clients
	storage.RegistrationTokens
}

// ClientRegistry creates and manages OAuth clients. It validates metadata
// against RFC 7591, generates client IDs and secrets, and stores secrets
// only as SecretHasher hashes. The CLI uses its methods directly; Handler
// exposes them as the RFC 7591 / RFC 7592 endpoints.
type ClientRegistry struct {
	store    RegistryStore
	hasher   *SecretHasher
	now      func() time.Time
	logger   *slog.Logger
	onChange func(clientID string)
}

// RegistryOption configures a ClientRegistry.
type RegistryOption func(*ClientRegistry)

// WithRegistryClock sets the clock (for tests).
func WithRegistryClock(now func() time.Time) RegistryOption {
	return func(r *ClientRegistry) { r.now = now }
}

// WithRegistryLogger sets where the registration endpoints report internal
// errors. Secrets and tokens are never logged. The default discards.
func WithRegistryLogger(l *slog.Logger) RegistryOption {
	return func(r *ClientRegistry) { r.logger = l }
}

// WithRegistryOnChange sets a function called with the client ID after a
// client was updated, deleted or given a new secret, so that in-memory
// client caches can drop the entry at once.
func WithRegistryOnChange(fn func(clientID string)) RegistryOption {
	return func(r *ClientRegistry) { r.onChange = fn }
}

// changed reports a modified client to the change hook, if any.
func (r *ClientRegistry) changed(id string) {
	if r.onChange != nil {
		r.onChange(id)
	}
}

// NewClientRegistry returns a registry over store. hasher must be the same
// one the token endpoint uses to check client secrets.
func NewClientRegistry(store RegistryStore, hasher *SecretHasher, opts ...RegistryOption) *ClientRegistry {
	r := &ClientRegistry{
		store:  store,
		hasher: hasher,
		now:    time.Now,
		logger: slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Create validates m, applies the defaults and registers a new client. The
// returned client carries the plaintext secret, which is not kept, when the
// auth method uses one. Invalid metadata yields a *MetadataError.
func (r *ClientRegistry) Create(ctx context.Context, m Metadata) (Registered, error) {
	reg, _, err := r.create(ctx, m, false)
	return reg, err
}

// create registers a client; withToken also issues an RFC 7592 registration
// access token, returned separately.
func (r *ClientRegistry) create(ctx context.Context, m Metadata, withToken bool) (Registered, string, error) {
	m, err := m.Validate()
	if err != nil {
		return Registered{}, "", err
	}
	id, err := randomToken(16)
	if err != nil {
		return Registered{}, "", fmt.Errorf("generate client id: %w", err)
	}
	now := r.now().UTC()
	c := storage.Client{ID: id, CreatedAt: now, UpdatedAt: now}
	if err := applyMetadata(&c, m); err != nil {
		return Registered{}, "", err
	}
	var secret string
	if usesSecret(m.TokenEndpointAuthMethod) {
		if secret, c.SecretHash, err = r.newSecret(ctx); err != nil {
			return Registered{}, "", err
		}
	}
	var token string
	if withToken {
		if token, err = randomToken(32); err != nil {
			return Registered{}, "", fmt.Errorf("generate registration access token: %w", err)
		}
		if c.RegistrationAccessTokenHash, err = r.hasher.Hash(ctx, []byte(token)); err != nil {
			return Registered{}, "", fmt.Errorf("hash registration access token: %w", err)
		}
	}
	if err := r.store.CreateClient(ctx, c); err != nil {
		return Registered{}, "", fmt.Errorf("create client %q: %w", id, err)
	}
	reg, err := registeredFrom(c)
	if err != nil {
		return Registered{}, "", err
	}
	reg.ClientSecret = secret
	return reg, token, nil
}

// Get returns a client; the error wraps storage.ErrNotFound when there is none.
func (r *ClientRegistry) Get(ctx context.Context, id string) (Registered, error) {
	c, err := r.store.GetClient(ctx, id)
	if err != nil {
		return Registered{}, fmt.Errorf("get client %q: %w", id, err)
	}
	return registeredFrom(c)
}

// List returns every client.
func (r *ClientRegistry) List(ctx context.Context) ([]Registered, error) {
	cs, err := r.store.ListClients(ctx)
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	out := make([]Registered, 0, len(cs))
	for _, c := range cs {
		reg, err := registeredFrom(c)
		if err != nil {
			return nil, err
		}
		out = append(out, reg)
	}
	return out, nil
}

// Update replaces the client's metadata with m (a full replacement, as RFC
// 7592 §2.2 specifies; callers wanting a partial change Get, modify and
// Update). The secret is kept while the auth method uses one, dropped when
// it no longer does, and generated (and returned once) when the client
// gains a secret-based auth method.
func (r *ClientRegistry) Update(ctx context.Context, id string, m Metadata) (Registered, error) {
	return r.update(ctx, id, m, nil)
}

// update is Update with a check run on the stored client inside the
// storage transaction.
func (r *ClientRegistry) update(ctx context.Context, id string, m Metadata, check func(storage.Client) error) (Registered, error) {
	m, err := m.Validate()
	if err != nil {
		return Registered{}, err
	}
	// Generated up front: the closure must not fail for reasons of its own.
	freshSecret, freshHash, err := r.newSecret(ctx)
	if err != nil {
		return Registered{}, err
	}
	var (
		updated storage.Client
		issued  string
	)
	err = r.store.UpdateClient(ctx, id, func(c storage.Client) (storage.Client, error) {
		if check != nil {
			if err := check(c); err != nil {
				return c, err
			}
		}
		issued = ""
		if err := applyMetadata(&c, m); err != nil {
			return c, err
		}
		switch {
		case !usesSecret(m.TokenEndpointAuthMethod):
			c.SecretHash = nil
			c.SecretExpiresAt = time.Time{}
		case len(c.SecretHash) == 0:
			c.SecretHash = freshHash
			issued = freshSecret
		}
		c.UpdatedAt = r.now().UTC()
		updated = c
		return c, nil
	})
	if err != nil {
		return Registered{}, fmt.Errorf("update client %q: %w", id, err)
	}
	r.changed(id)
	reg, err := registeredFrom(updated)
	if err != nil {
		return Registered{}, err
	}
	reg.ClientSecret = issued
	return reg, nil
}

// Delete removes a client; the error wraps storage.ErrNotFound when there is
// none.
func (r *ClientRegistry) Delete(ctx context.Context, id string) error {
	if err := r.store.DeleteClient(ctx, id); err != nil {
		return fmt.Errorf("delete client %q: %w", id, err)
	}
	r.changed(id)
	return nil
}

// RotateSecret replaces the client's secret with a new one, returned once in
// the result. The old secret stops working at once. It returns
// ErrClientHasNoSecret for clients that authenticate without one.
func (r *ClientRegistry) RotateSecret(ctx context.Context, id string) (Registered, error) {
	secret, hash, err := r.newSecret(ctx)
	if err != nil {
		return Registered{}, err
	}
	var updated storage.Client
	err = r.store.UpdateClient(ctx, id, func(c storage.Client) (storage.Client, error) {
		if !usesSecret(c.TokenEndpointAuthMethod) {
			return c, ErrClientHasNoSecret
		}
		c.SecretHash = hash
		c.SecretExpiresAt = time.Time{}
		c.UpdatedAt = r.now().UTC()
		updated = c
		return c, nil
	})
	if err != nil {
		return Registered{}, fmt.Errorf("rotate secret of client %q: %w", id, err)
	}
	r.changed(id)
	reg, err := registeredFrom(updated)
	if err != nil {
		return Registered{}, err
	}
	reg.ClientSecret = secret
	return reg, nil
}

// CreateRegistrationToken issues an initial access token for RFC 7591
// registration, valid for ttl and reusable until it expires. Only its hex
// SHA-256 is stored.
func (r *ClientRegistry) CreateRegistrationToken(ctx context.Context, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		return "", fmt.Errorf("create registration token: lifetime must be positive, got %s", ttl)
	}
	token, err := randomToken(32)
	if err != nil {
		return "", fmt.Errorf("create registration token: %w", err)
	}
	now := r.now().UTC()
	t := storage.RegistrationToken{Hash: hashRegistrationToken(token), CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := r.store.CreateRegistrationToken(ctx, t); err != nil {
		return "", fmt.Errorf("create registration token: %w", err)
	}
	return token, nil
}

// checkRegistrationToken accepts an unexpired initial access token.
func (r *ClientRegistry) checkRegistrationToken(ctx context.Context, token string) error {
	if token == "" {
		return errRegistrationToken
	}
	hash := hashRegistrationToken(token)
	t, err := r.store.GetRegistrationToken(ctx, hash)
	if errors.Is(err, storage.ErrNotFound) {
		return errRegistrationToken
	}
	if err != nil {
		return fmt.Errorf("look up registration token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(t.Hash), []byte(hash)) != 1 || !r.now().Before(t.ExpiresAt) {
		return errRegistrationToken
	}
	return nil
}

// authenticateClient returns the client whose registration access token is
// token; any failure, including an unknown client, is errRegistrationToken
// unless storage itself failed.
func (r *ClientRegistry) authenticateClient(ctx context.Context, id, token string) (storage.Client, error) {
	if token == "" {
		return storage.Client{}, errRegistrationToken
	}
	c, err := r.store.GetClient(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.Client{}, errRegistrationToken
	}
	if err != nil {
		return storage.Client{}, fmt.Errorf("get client %q: %w", id, err)
	}
	if len(c.RegistrationAccessTokenHash) == 0 ||
		r.hasher.Compare(ctx, c.RegistrationAccessTokenHash, []byte(token)) != nil {
		return storage.Client{}, errRegistrationToken
	}
	return c, nil
}

// newSecret generates a client secret and its hash.
func (r *ClientRegistry) newSecret(ctx context.Context) (string, []byte, error) {
	secret, err := GenerateSecret()
	if err != nil {
		return "", nil, fmt.Errorf("generate client secret: %w", err)
	}
	hash, err := r.hasher.Hash(ctx, []byte(secret))
	if err != nil {
		return "", nil, fmt.Errorf("hash client secret: %w", err)
	}
	return secret, hash, nil
}

// usesSecret reports whether an auth method authenticates with a client secret.
func usesSecret(method string) bool {
	return method == AuthMethodSecretBasic || method == AuthMethodSecretPost
}

// applyMetadata copies validated metadata onto a stored client.
func applyMetadata(c *storage.Client, m Metadata) error {
	extras, err := json.Marshal(metadataExtras{
		TokenEndpointAuthSigningAlg: m.TokenEndpointAuthSigningAlg,
		RequestObjectSigningAlg:     m.RequestObjectSigningAlg,
		ApplicationType:             m.ApplicationType,
		ClientURI:                   m.ClientURI,
		LogoURI:                     m.LogoURI,
		Contacts:                    m.Contacts,
		TOSURI:                      m.TOSURI,
		PolicyURI:                   m.PolicyURI,
		SoftwareID:                  m.SoftwareID,
		SoftwareVersion:             m.SoftwareVersion,
		DPoPBoundAccessTokens:       m.DPoPBoundAccessTokens,
	})
	if err != nil {
		return fmt.Errorf("encode client metadata: %w", err)
	}
	c.Name = m.ClientName
	c.RedirectURIs = slices.Clone(m.RedirectURIs)
	c.PostLogoutRedirectURIs = slices.Clone(m.PostLogoutRedirectURIs)
	c.GrantTypes = slices.Clone(m.GrantTypes)
	c.ResponseTypes = slices.Clone(m.ResponseTypes)
	c.Scopes = slices.Clone([]string(m.Scope))
	c.Audience = slices.Clone(m.Audience)
	c.TokenEndpointAuthMethod = m.TokenEndpointAuthMethod
	c.JWKS = slices.Clone([]byte(m.JWKS))
	c.JWKSURI = m.JWKSURI
	c.RequirePKCE = m.RequirePKCE
	c.RequirePAR = m.RequirePAR
	c.AccessTokenFormat = m.AccessTokenFormat
	c.Metadata = extras
	return nil
}

// registeredFrom builds the public view of a stored client.
func registeredFrom(c storage.Client) (Registered, error) {
	var extras metadataExtras
	if len(c.Metadata) > 0 {
		if err := json.Unmarshal(c.Metadata, &extras); err != nil {
			return Registered{}, fmt.Errorf("decode metadata of client %q: %w", c.ID, err)
		}
	}
	reg := Registered{
		ClientID:         c.ID,
		ClientIDIssuedAt: c.CreatedAt.Unix(),
		HasSecret:        len(c.SecretHash) > 0,
		Metadata: Metadata{
			ClientName:                  c.Name,
			RedirectURIs:                c.RedirectURIs,
			GrantTypes:                  c.GrantTypes,
			ResponseTypes:               c.ResponseTypes,
			Scope:                       ScopeList(c.Scopes),
			TokenEndpointAuthMethod:     c.TokenEndpointAuthMethod,
			JWKSURI:                     c.JWKSURI,
			TokenEndpointAuthSigningAlg: extras.TokenEndpointAuthSigningAlg,
			RequestObjectSigningAlg:     extras.RequestObjectSigningAlg,
			PostLogoutRedirectURIs:      c.PostLogoutRedirectURIs,
			ApplicationType:             extras.ApplicationType,
			ClientURI:                   extras.ClientURI,
			LogoURI:                     extras.LogoURI,
			Contacts:                    extras.Contacts,
			TOSURI:                      extras.TOSURI,
			PolicyURI:                   extras.PolicyURI,
			SoftwareID:                  extras.SoftwareID,
			SoftwareVersion:             extras.SoftwareVersion,
			RequirePKCE:                 c.RequirePKCE,
			RequirePAR:                  c.RequirePAR,
			AccessTokenFormat:           c.AccessTokenFormat,
			Audience:                    c.Audience,
			DPoPBoundAccessTokens:       extras.DPoPBoundAccessTokens,
		},
	}
	if len(c.JWKS) > 0 {
		reg.JWKS = json.RawMessage(c.JWKS)
	}
	if !c.SecretExpiresAt.IsZero() {
		reg.ClientSecretExpiresAt = c.SecretExpiresAt.Unix()
	}
	return reg, nil
}

// randomToken returns n random bytes as unpadded base64url.
func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// hashRegistrationToken is how initial access tokens are stored: hex SHA-256.
func hashRegistrationToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
