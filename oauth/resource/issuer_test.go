package resource

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Test fixtures: an in-process token source that mimics the provider's
// discovery, JWKS and introspection endpoints, so these tests do not depend
// on the oauth package.

const (
	testAudience = "https://api.example"
	testClientID = "api-introspector"
	testSecret   = "s3cr3t value/with:odd chars"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now().Truncate(time.Second)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type testKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

func newTestKey(t testing.TB, alg jose.SignatureAlgorithm) *testKey {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.RS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES384:
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	default:
		t.Fatalf("no test key for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return &testKey{kid: fmt.Sprintf("%x", b), alg: alg, priv: priv}
}

func (k *testKey) publicJWK() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

// testIssuer is the fake provider.
type testIssuer struct {
	t     testing.TB
	srv   *httptest.Server
	clock *fakeClock

	mu        sync.Mutex
	published []*testKey
	current   *testKey
	opaque    map[string]map[string]any
	revoked   map[string]bool
	gate      chan struct{} // when set, introspection waits on it

	jwksDown       atomic.Bool
	discoveryCalls atomic.Int32
	jwksCalls      atomic.Int32
	introspections atomic.Int32
}

func newTestIssuer(t testing.TB, clock *fakeClock) *testIssuer {
	t.Helper()
	ti := &testIssuer{t: t, clock: clock, opaque: map[string]map[string]any{}, revoked: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		ti.discoveryCalls.Add(1)
		writeTestJSON(w, map[string]any{
			"issuer":                 ti.srv.URL,
			"jwks_uri":               ti.srv.URL + "/oauth2/jwks",
			"introspection_endpoint": ti.srv.URL + "/oauth2/introspect",
		})
	})
	mux.HandleFunc("GET /oauth2/jwks", func(w http.ResponseWriter, r *http.Request) {
		ti.jwksCalls.Add(1)
		if ti.jwksDown.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		ti.mu.Lock()
		set := jose.JSONWebKeySet{}
		for _, k := range ti.published {
			set.Keys = append(set.Keys, k.publicJWK())
		}
		ti.mu.Unlock()
		writeTestJSON(w, set)
	})
	mux.HandleFunc("POST /oauth2/introspect", ti.serveIntrospect)
	ti.srv = httptest.NewServer(mux)
	t.Cleanup(ti.srv.Close)
	ti.rotate(jose.ES256)
	return ti
}

func writeTestJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (ti *testIssuer) serveIntrospect(w http.ResponseWriter, r *http.Request) {
	ti.introspections.Add(1)
	ti.mu.Lock()
	gate := ti.gate
	ti.mu.Unlock()
	if gate != nil {
		<-gate
	}
	// RFC 6749 §2.3.1: the credentials are form-encoded inside Basic.
	id, secret, ok := r.BasicAuth()
	id, err1 := url.QueryUnescape(id)
	secret, err2 := url.QueryUnescape(secret)
	if !ok || err1 != nil || err2 != nil || id != testClientID || secret != testSecret {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
		return
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("token_type_hint") != "access_token" {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	tok := r.PostForm.Get("token")
	ti.mu.Lock()
	resp, known := ti.opaque[tok]
	revoked := ti.revoked[tok]
	ti.mu.Unlock()
	if !known || revoked {
		writeTestJSON(w, map[string]any{"active": false})
		return
	}
	if exp, ok := resp["exp"].(int64); ok && ti.clock.Now().Unix() >= exp {
		writeTestJSON(w, map[string]any{"active": false})
		return
	}
	writeTestJSON(w, resp)
}

// rotate publishes a new key and makes it the signer; old keys stay published.
func (ti *testIssuer) rotate(alg jose.SignatureAlgorithm) *testKey {
	k := newTestKey(ti.t, alg)
	ti.mu.Lock()
	ti.published = append(ti.published, k)
	ti.current = k
	ti.mu.Unlock()
	return k
}

// baseClaims are a user's token claims: alice via a user-verified passkey
// one minute ago.
func (ti *testIssuer) baseClaims() map[string]any {
	now := ti.clock.Now()
	return map[string]any{
		"iss":       ti.srv.URL,
		"aud":       []string{testAudience},
		"sub":       "alice",
		"client_id": "web-app",
		"scope":     "payments:write accounts:read",
		"acr":       "phr",
		"amr":       []string{"swk", "user", "mfa"},
		"auth_time": now.Add(-time.Minute).Unix(),
		"iat":       now.Unix(),
		"exp":       now.Add(5 * time.Minute).Unix(),
		"jti":       "jti-" + fmt.Sprint(now.UnixNano()),
	}
}

// with returns a copy of the base claims with changes; a nil value deletes.
func (ti *testIssuer) with(changes map[string]any) map[string]any {
	c := ti.baseClaims()
	for k, v := range changes {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// mint signs claims as an RFC 9068 access token with the current key.
func (ti *testIssuer) mint(claims map[string]any) string {
	ti.mu.Lock()
	k := ti.current
	ti.mu.Unlock()
	return mintWith(ti.t, k, map[jose.HeaderKey]any{jose.HeaderType: "at+jwt"}, claims)
}

// mintWith signs claims with key and extra headers.
func mintWith(t testing.TB, k *testKey, hdr map[jose.HeaderKey]any, claims map[string]any) string {
	t.Helper()
	opts := &jose.SignerOptions{ExtraHeaders: hdr}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// unsignedJWT builds a compact JWS by hand, for algorithms go-jose refuses
// to produce ("none").
func unsignedJWT(t testing.TB, header, claims map[string]any, sig []byte) string {
	t.Helper()
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(h) + "." + enc.EncodeToString(c) + "." + enc.EncodeToString(sig)
}

// issueOpaque registers an opaque token with its introspection response.
func (ti *testIssuer) issueOpaque(claims map[string]any) string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	tok := "ory_at_" + base64.RawURLEncoding.EncodeToString(b) + "." + base64.RawURLEncoding.EncodeToString(b[:8])
	resp := map[string]any{"active": true, "token_type": "Bearer", "token_use": "access_token"}
	for k, v := range claims {
		resp[k] = v
	}
	ti.mu.Lock()
	ti.opaque[tok] = resp
	ti.mu.Unlock()
	return tok
}

func (ti *testIssuer) revoke(tok string) {
	ti.mu.Lock()
	ti.revoked[tok] = true
	ti.mu.Unlock()
}

// verifier returns a RemoteVerifier for this issuer on clock.
func (ti *testIssuer) verifier(mod func(*RemoteConfig)) *RemoteVerifier {
	cfg := RemoteConfig{
		Issuer: ti.srv.URL, Audience: testAudience,
		ClientID: testClientID, ClientSecret: testSecret,
		HTTPClient: ti.srv.Client(), Now: ti.clock.Now,
	}
	if mod != nil {
		mod(&cfg)
	}
	v, err := NewRemoteVerifier(cfg)
	if err != nil {
		ti.t.Fatal(err)
	}
	return v
}

func newTextLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, nil))
}
