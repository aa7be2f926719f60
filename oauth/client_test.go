package oauth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v3"

	"github.com/stepwise-id/stepwise/storage"
	"github.com/stepwise-id/stepwise/storage/storagetest"
)

// testClock is a settable clock for the registry.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTestHasher(t testing.TB) *SecretHasher {
	t.Helper()
	h, err := NewSecretHasher(bytes.Repeat([]byte{0x5a}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// newTestRegistry returns a registry over a fresh SQLite store.
func newTestRegistry(t testing.TB, opts ...RegistryOption) (*ClientRegistry, storage.Storage, *testClock) {
	t.Helper()
	store := storagetest.SQLite(t)
	clock := &testClock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	opts = append([]RegistryOption{WithRegistryClock(clock.Now)}, opts...)
	return NewClientRegistry(store, newTestHasher(t), opts...), store, clock
}

func ecJWKS(t testing.TB, private bool) json.RawMessage {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var key any = &k.PublicKey
	if private {
		key = k
	}
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key, KeyID: "k1", Use: "sig", Algorithm: "ES256"}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rsaJWKS(t testing.TB, bits int) json.RawMessage {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "r1"}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func webMetadata() Metadata {
	return Metadata{
		ClientName:   "Web app",
		RedirectURIs: []string{"https://app.example.com/callback"},
	}
}

func TestClientMetadataValidateRejects(t *testing.T) {
	weakRSA := rsaJWKS(t, 1024)
	privateEC := ecJWKS(t, true)
	publicEC := ecJWKS(t, false)

	tests := []struct {
		name string
		m    Metadata
		code string
	}{
		{"code grant without redirect_uris", Metadata{}, CodeInvalidRedirectURI},
		{"relative redirect", Metadata{RedirectURIs: []string{"/callback"}}, CodeInvalidRedirectURI},
		{"fragment", Metadata{RedirectURIs: []string{"https://app.example.com/cb#frag"}}, CodeInvalidRedirectURI},
		{"empty fragment", Metadata{RedirectURIs: []string{"https://app.example.com/cb#"}}, CodeInvalidRedirectURI},
		{"plain http on a public host", Metadata{RedirectURIs: []string{"http://app.example.com/cb"}}, CodeInvalidRedirectURI},
		{"http on a private address", Metadata{RedirectURIs: []string{"http://10.0.0.1/cb"}}, CodeInvalidRedirectURI},
		{"https without host", Metadata{RedirectURIs: []string{"https:///cb"}}, CodeInvalidRedirectURI},
		{"user info", Metadata{RedirectURIs: []string{"https://user:pw@app.example.com/cb"}}, CodeInvalidRedirectURI},
		{"javascript scheme", Metadata{RedirectURIs: []string{"javascript:alert(1)"}, TokenEndpointAuthMethod: "none"}, CodeInvalidRedirectURI},
		{"custom scheme for a web client", Metadata{RedirectURIs: []string{"com.example.app:/cb"}}, CodeInvalidRedirectURI},
		{"custom scheme that is not a reverse domain", Metadata{RedirectURIs: []string{"myapp:/cb"}, TokenEndpointAuthMethod: "none"}, CodeInvalidRedirectURI},
		{"whitespace in redirect", Metadata{RedirectURIs: []string{"https://app.example.com/c b"}}, CodeInvalidRedirectURI},
		{"empty redirect", Metadata{RedirectURIs: []string{""}}, CodeInvalidRedirectURI},
		{"bad post-logout redirect", Metadata{RedirectURIs: []string{"https://a.example/cb"}, PostLogoutRedirectURIs: []string{"http://a.example/out"}}, CodeInvalidRedirectURI},
		{"implicit grant", Metadata{RedirectURIs: []string{"https://a.example/cb"}, GrantTypes: []string{"implicit"}}, CodeInvalidClientMetadata},
		{"password grant", Metadata{GrantTypes: []string{"password"}}, CodeInvalidClientMetadata},
		{"unknown grant", Metadata{GrantTypes: []string{"urn:ietf:params:oauth:grant-type:device_code"}}, CodeInvalidClientMetadata},
		{"refresh without code", Metadata{GrantTypes: []string{"client_credentials", "refresh_token"}}, CodeInvalidClientMetadata},
		{"token response type", Metadata{RedirectURIs: []string{"https://a.example/cb"}, ResponseTypes: []string{"token"}}, CodeInvalidClientMetadata},
		{"code id_token response type", Metadata{RedirectURIs: []string{"https://a.example/cb"}, ResponseTypes: []string{"code id_token"}}, CodeInvalidClientMetadata},
		{"code response without code grant", Metadata{GrantTypes: []string{"client_credentials"}, ResponseTypes: []string{"code"}}, CodeInvalidClientMetadata},
		{"unknown auth method", Metadata{GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "tls_client_auth"}, CodeInvalidClientMetadata},
		{"client_secret_jwt", Metadata{GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "client_secret_jwt"}, CodeInvalidClientMetadata},
		{"public client with client_credentials", Metadata{GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "none"}, CodeInvalidClientMetadata},
		{"private_key_jwt without jwks", Metadata{GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "private_key_jwt"}, CodeInvalidClientMetadata},
		{"jwks_uri", Metadata{GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "private_key_jwt", JWKSURI: "https://a.example/jwks.json"}, CodeInvalidClientMetadata},
		{"jwks and jwks_uri", Metadata{GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "private_key_jwt", JWKS: publicEC, JWKSURI: "https://a.example/jwks.json"}, CodeInvalidClientMetadata},
		{"jwks with a private key", Metadata{GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "private_key_jwt", JWKS: privateEC}, CodeInvalidClientMetadata},
		{"jwks with a symmetric key", Metadata{GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "private_key_jwt", JWKS: json.RawMessage(`{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0"}]}`)}, CodeInvalidClientMetadata},
		{"jwks with a weak RSA key", Metadata{GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "private_key_jwt", JWKS: weakRSA}, CodeInvalidClientMetadata},
		{"empty jwks", Metadata{GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "private_key_jwt", JWKS: json.RawMessage(`{"keys":[]}`)}, CodeInvalidClientMetadata},
		{"jwks not a key set", Metadata{GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "private_key_jwt", JWKS: json.RawMessage(`"keys"`)}, CodeInvalidClientMetadata},
		{"jwks with a broken key", Metadata{GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "private_key_jwt", JWKS: json.RawMessage(`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`)}, CodeInvalidClientMetadata},
		{"scope with a quote", Metadata{GrantTypes: []string{"client_credentials"}, Scope: ScopeList{`api"read`}}, CodeInvalidClientMetadata},
		{"scope with a backslash", Metadata{GrantTypes: []string{"client_credentials"}, Scope: ScopeList{`api\read`}}, CodeInvalidClientMetadata},
		{"scope with non-ASCII", Metadata{GrantTypes: []string{"client_credentials"}, Scope: ScopeList{"café"}}, CodeInvalidClientMetadata},
		{"access token format", Metadata{GrantTypes: []string{"client_credentials"}, AccessTokenFormat: "paseto"}, CodeInvalidClientMetadata},
		{"application type", Metadata{GrantTypes: []string{"client_credentials"}, ApplicationType: "browser"}, CodeInvalidClientMetadata},
		{"logo_uri javascript", Metadata{GrantTypes: []string{"client_credentials"}, LogoURI: "javascript:alert(1)"}, CodeInvalidClientMetadata},
		{"client_uri relative", Metadata{GrantTypes: []string{"client_credentials"}, ClientURI: "/about"}, CodeInvalidClientMetadata},
		{"client name with control characters", Metadata{GrantTypes: []string{"client_credentials"}, ClientName: "evil\x00name"}, CodeInvalidClientMetadata},
		{"client name too long", Metadata{GrantTypes: []string{"client_credentials"}, ClientName: strings.Repeat("n", 300)}, CodeInvalidClientMetadata},
		{"empty contact", Metadata{GrantTypes: []string{"client_credentials"}, Contacts: []string{""}}, CodeInvalidClientMetadata},
		{"audience with spaces", Metadata{GrantTypes: []string{"client_credentials"}, Audience: []string{"https://api one"}}, CodeInvalidClientMetadata},
		{"assertion alg none", Metadata{GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "private_key_jwt", JWKS: publicEC, TokenEndpointAuthSigningAlg: "none"}, CodeInvalidClientMetadata},
		{"request object alg none", Metadata{RedirectURIs: []string{"https://a.example/cb"}, RequestObjectSigningAlg: "none"}, CodeInvalidClientMetadata},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.m.Validate()
			var me *MetadataError
			if !errors.As(err, &me) {
				t.Fatalf("Validate() error = %v, want a *MetadataError", err)
			}
			if me.Code != tt.code {
				t.Errorf("code = %q (%s), want %q", me.Code, me.Description, tt.code)
			}
			if me.Description == "" {
				t.Error("empty description")
			}
		})
	}
}

func TestClientMetadataValidateAccepts(t *testing.T) {
	tests := []struct {
		name  string
		m     Metadata
		check func(t *testing.T, got Metadata)
	}{
		{
			name: "defaults",
			m:    webMetadata(),
			check: func(t *testing.T, got Metadata) {
				want := Metadata{
					ClientName:              "Web app",
					RedirectURIs:            []string{"https://app.example.com/callback"},
					GrantTypes:              []string{"authorization_code"},
					ResponseTypes:           []string{"code"},
					Scope:                   ScopeList{"openid"},
					TokenEndpointAuthMethod: "client_secret_basic",
					AccessTokenFormat:       "opaque",
				}
				gotJSON, _ := json.Marshal(got)
				wantJSON, _ := json.Marshal(want)
				if !bytes.Equal(gotJSON, wantJSON) {
					t.Errorf("got %s\nwant %s", gotJSON, wantJSON)
				}
			},
		},
		{
			name: "loopback http and localhost",
			m: Metadata{RedirectURIs: []string{
				"http://localhost:8080/cb", "http://127.0.0.1:49152/cb", "http://[::1]/cb",
			}},
		},
		{
			name: "native public client with a private-use scheme",
			m: Metadata{
				RedirectURIs:            []string{"com.example.app:/oauth2redirect"},
				TokenEndpointAuthMethod: "none",
			},
		},
		{
			name: "native application_type with a confidential method",
			m: Metadata{
				RedirectURIs:    []string{"com.example.app:/cb"},
				ApplicationType: "native",
			},
		},
		{
			name: "machine client needs no redirect",
			m:    Metadata{GrantTypes: []string{"client_credentials"}, Scope: ScopeList{"api:read", "api:write"}},
			check: func(t *testing.T, got Metadata) {
				if len(got.ResponseTypes) != 0 {
					t.Errorf("response_types = %v, want none", got.ResponseTypes)
				}
				if !slices.Equal(got.Scope, ScopeList{"api:read", "api:write"}) {
					t.Errorf("scope = %v", got.Scope)
				}
			},
		},
		{
			name: "private_key_jwt with an EC key",
			m: Metadata{
				GrantTypes:                  []string{"client_credentials"},
				TokenEndpointAuthMethod:     "private_key_jwt",
				TokenEndpointAuthSigningAlg: "ES256",
				JWKS:                        ecJWKS(t, false),
			},
		},
		{
			name: "private_key_jwt with an RSA key",
			m: Metadata{
				GrantTypes:              []string{"client_credentials"},
				TokenEndpointAuthMethod: "private_key_jwt",
				JWKS:                    rsaJWKS(t, 2048),
			},
		},
		{
			name: "offline_access adds the refresh grant",
			m: Metadata{
				RedirectURIs: []string{"https://a.example/cb"},
				Scope:        ScopeList{"openid", "offline_access", "openid"},
			},
			check: func(t *testing.T, got Metadata) {
				if !slices.Equal(got.GrantTypes, []string{"authorization_code", "refresh_token"}) {
					t.Errorf("grant_types = %v", got.GrantTypes)
				}
				if !slices.Equal(got.Scope, ScopeList{"openid", "offline_access"}) {
					t.Errorf("scope = %v", got.Scope)
				}
			},
		},
		{
			name: "refresh grant defaults the scope to openid offline_access",
			m: Metadata{
				RedirectURIs: []string{"https://a.example/cb"},
				GrantTypes:   []string{"authorization_code", "refresh_token"},
			},
			check: func(t *testing.T, got Metadata) {
				if !slices.Equal(got.Scope, ScopeList{"openid", "offline_access"}) {
					t.Errorf("scope = %v", got.Scope)
				}
			},
		},
		{
			name: "extensions",
			m: Metadata{
				RedirectURIs:      []string{"https://a.example/cb"},
				RequirePKCE:       true,
				RequirePAR:        true,
				AccessTokenFormat: "jwt",
				Audience:          []string{"https://api.example.com"},
				ClientURI:         "https://a.example",
				LogoURI:           "https://a.example/logo.png",
				Contacts:          []string{"ops@a.example"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.m.Validate()
			if err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			if tt.check != nil {
				tt.check(t, got)
			}
		})
	}
}

func TestClientMetadataValidateDoesNotAlias(t *testing.T) {
	in := Metadata{RedirectURIs: []string{"https://a.example/cb", "https://a.example/cb"}, Scope: ScopeList{"openid", "openid"}}
	if _, err := in.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(in.RedirectURIs) != 2 || len(in.Scope) != 2 {
		t.Errorf("Validate modified its receiver: %+v", in)
	}
}

func TestClientScopeListJSON(t *testing.T) {
	var m Metadata
	if err := json.Unmarshal([]byte(`{"scope":"openid  profile offline_access "}`), &m); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.Scope, ScopeList{"openid", "profile", "offline_access"}) {
		t.Fatalf("scope = %q", m.Scope)
	}
	b, err := json.Marshal(Metadata{Scope: ScopeList{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"scope":"a b"}` {
		t.Errorf("marshal = %s", b)
	}
	if err := json.Unmarshal([]byte(`{"scope":["openid"]}`), &m); err == nil {
		t.Error("an array scope was accepted")
	}
}

func TestClientRegistryLifecycle(t *testing.T) {
	ctx := context.Background()
	var changed []string
	reg, store, clock := newTestRegistry(t, WithRegistryOnChange(func(id string) { changed = append(changed, id) }))

	created, err := reg.Create(ctx, webMetadata())
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if len(created.ClientID) < 22 || strings.ContainsAny(created.ClientID, "+/=") {
		t.Errorf("client_id %q is not a 22+ char URL-safe id", created.ClientID)
	}
	if len(created.ClientSecret) < 43 || !created.HasSecret {
		t.Fatalf("secret %q not issued", created.ClientSecret)
	}
	if created.ClientIDIssuedAt != clock.Now().Unix() {
		t.Errorf("client_id_issued_at = %d", created.ClientIDIssuedAt)
	}

	stored, err := store.GetClient(ctx, created.ClientID)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored.SecretHash, []byte(created.ClientSecret)) || len(stored.SecretHash) != 32 {
		t.Errorf("secret not stored as a hash: %x", stored.SecretHash)
	}
	if err := reg.hasher.Compare(ctx, stored.SecretHash, []byte(created.ClientSecret)); err != nil {
		t.Errorf("stored hash does not verify the secret: %v", err)
	}
	if stored.RegistrationAccessTokenHash != nil {
		t.Error("a CLI client got a registration access token")
	}

	got, err := reg.Get(ctx, created.ClientID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ClientSecret != "" {
		t.Error("Get returned a secret")
	}
	if got.ClientName != "Web app" || !slices.Equal(got.Scope, ScopeList{"openid"}) {
		t.Errorf("Get = %+v", got)
	}

	// A second, public client; List returns both.
	public, err := reg.Create(ctx, Metadata{RedirectURIs: []string{"http://localhost:3000/cb"}, TokenEndpointAuthMethod: "none"})
	if err != nil {
		t.Fatal(err)
	}
	if public.ClientSecret != "" || public.HasSecret {
		t.Error("a public client got a secret")
	}
	all, err := reg.List(ctx)
	if err != nil || len(all) != 2 {
		t.Fatalf("List = %d clients, %v", len(all), err)
	}

	// Update replaces the metadata and keeps the secret.
	clock.Advance(time.Minute)
	m := got.Metadata
	m.RedirectURIs = []string{"https://app.example.com/new"}
	m.ClientURI = "https://app.example.com"
	updated, err := reg.Update(ctx, created.ClientID, m)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if updated.ClientSecret != "" {
		t.Error("Update reissued an unchanged secret")
	}
	again, _ := reg.Get(ctx, created.ClientID)
	if !slices.Equal(again.RedirectURIs, []string{"https://app.example.com/new"}) || again.ClientURI != "https://app.example.com" {
		t.Errorf("after Update: %+v", again)
	}
	after, _ := store.GetClient(ctx, created.ClientID)
	if !bytes.Equal(after.SecretHash, stored.SecretHash) {
		t.Error("Update changed the secret hash")
	}
	bad := m
	bad.RedirectURIs = []string{"http://evil.example/cb"}
	if _, err := reg.Update(ctx, created.ClientID, bad); !isMetadataCode(err, CodeInvalidRedirectURI) {
		t.Errorf("Update with a bad redirect: %v", err)
	}

	// RotateSecret: the old secret stops working.
	rotated, err := reg.RotateSecret(ctx, created.ClientID)
	if err != nil {
		t.Fatal(err)
	}
	after, _ = store.GetClient(ctx, created.ClientID)
	if reg.hasher.Compare(ctx, after.SecretHash, []byte(created.ClientSecret)) == nil {
		t.Error("old secret still verifies")
	}
	if reg.hasher.Compare(ctx, after.SecretHash, []byte(rotated.ClientSecret)) != nil {
		t.Error("new secret does not verify")
	}
	if _, err := reg.RotateSecret(ctx, public.ClientID); !errors.Is(err, ErrClientHasNoSecret) {
		t.Errorf("RotateSecret of a public client: %v", err)
	}

	if err := reg.Delete(ctx, created.ClientID); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Get(ctx, created.ClientID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get after Delete: %v", err)
	}
	if err := reg.Delete(ctx, created.ClientID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("second Delete: %v", err)
	}
	if _, err := reg.Update(ctx, "missing", webMetadata()); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Update of a missing client: %v", err)
	}
	want := []string{created.ClientID, created.ClientID, created.ClientID}
	if !slices.Equal(changed, want) {
		t.Errorf("change hook calls = %v, want %v", changed, want)
	}
}

func TestClientRegistryAuthMethodChange(t *testing.T) {
	ctx := context.Background()
	reg, store, _ := newTestRegistry(t)

	c, err := reg.Create(ctx, Metadata{GrantTypes: []string{"client_credentials"}})
	if err != nil {
		t.Fatal(err)
	}
	// To private_key_jwt: the secret is dropped.
	m := Metadata{GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "private_key_jwt", JWKS: ecJWKS(t, false)}
	u, err := reg.Update(ctx, c.ClientID, m)
	if err != nil {
		t.Fatal(err)
	}
	if u.HasSecret || u.ClientSecret != "" {
		t.Error("private_key_jwt client kept a secret")
	}
	if s, _ := store.GetClient(ctx, c.ClientID); s.SecretHash != nil || len(s.JWKS) == 0 {
		t.Errorf("stored: secret hash %x, jwks %s", s.SecretHash, s.JWKS)
	}
	// Back to client_secret_post: a fresh secret is issued once.
	u, err = reg.Update(ctx, c.ClientID, Metadata{GrantTypes: []string{"client_credentials"}, TokenEndpointAuthMethod: "client_secret_post"})
	if err != nil {
		t.Fatal(err)
	}
	if u.ClientSecret == "" || u.ClientSecret == c.ClientSecret {
		t.Errorf("no fresh secret: %q", u.ClientSecret)
	}
	s, _ := store.GetClient(ctx, c.ClientID)
	if reg.hasher.Compare(ctx, s.SecretHash, []byte(u.ClientSecret)) != nil {
		t.Error("fresh secret does not verify")
	}
}

func TestClientRegisteredJSON(t *testing.T) {
	ctx := context.Background()
	reg, _, _ := newTestRegistry(t)
	created, err := reg.Create(ctx, Metadata{
		ClientName:   "CLI app",
		RedirectURIs: []string{"https://app.example.com/cb"},
		Scope:        ScopeList{"openid", "profile"},
		Contacts:     []string{"ops@example.com"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	b, _ := json.Marshal(created)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"client_id", "client_secret", "client_id_issued_at", "client_secret_expires_at",
		"client_name", "redirect_uris", "grant_types", "response_types", "scope", "token_endpoint_auth_method", "contacts"} {
		if _, ok := out[k]; !ok {
			t.Errorf("created JSON lacks %q: %s", k, b)
		}
	}
	if out["scope"] != "openid profile" || out["client_secret_expires_at"] != float64(0) {
		t.Errorf("scope/expiry: %s", b)
	}

	got, _ := reg.Get(ctx, created.ClientID)
	b, _ = json.Marshal(got)
	if strings.Contains(string(b), "client_secret\"") || strings.Contains(string(b), "hash") {
		t.Errorf("Get JSON exposes a secret: %s", b)
	}
	if !strings.Contains(string(b), `"client_secret_expires_at":0`) {
		t.Errorf("confidential client lacks client_secret_expires_at: %s", b)
	}

	public, _ := reg.Create(ctx, Metadata{RedirectURIs: []string{"http://127.0.0.1/cb"}, TokenEndpointAuthMethod: "none"})
	b, _ = json.Marshal(public)
	if strings.Contains(string(b), "client_secret") {
		t.Errorf("public client JSON mentions a secret: %s", b)
	}
	// The JSON view round-trips into Registered.
	var back Registered
	if err := json.Unmarshal(b, &back); err != nil || back.ClientID != public.ClientID || back.TokenEndpointAuthMethod != "none" {
		t.Errorf("round trip: %+v, %v", back, err)
	}
}

func TestClientRegistrationToken(t *testing.T) {
	ctx := context.Background()
	reg, store, clock := newTestRegistry(t)
	if _, err := reg.CreateRegistrationToken(ctx, 0); err == nil {
		t.Error("a zero lifetime was accepted")
	}
	tok, err := reg.CreateRegistrationToken(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) < 43 {
		t.Errorf("token %q is short", tok)
	}
	stored, err := store.GetRegistrationToken(ctx, hashRegistrationToken(tok))
	if err != nil {
		t.Fatalf("token not stored by its hash: %v", err)
	}
	if len(stored.Hash) != 64 || stored.Hash == tok {
		t.Errorf("stored hash = %q", stored.Hash)
	}
	if err := reg.checkRegistrationToken(ctx, tok); err != nil {
		t.Errorf("fresh token refused: %v", err)
	}
	if err := reg.checkRegistrationToken(ctx, tok+"x"); !errors.Is(err, errRegistrationToken) {
		t.Errorf("wrong token: %v", err)
	}
	clock.Advance(time.Hour)
	if err := reg.checkRegistrationToken(ctx, tok); !errors.Is(err, errRegistrationToken) {
		t.Errorf("expired token: %v", err)
	}
}

func isMetadataCode(err error, code string) bool {
	var me *MetadataError
	return errors.As(err, &me) && me.Code == code
}
