package resource

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

func TestVerifyJWT(t *testing.T) {
	clock := newFakeClock()
	ti := newTestIssuer(t, clock)
	rsKey := ti.rotate(jose.RS256)
	es384 := ti.rotate(jose.ES384)
	ti.rotate(jose.ES256) // the current signer
	v := ti.verifier(nil)
	ctx := context.Background()
	now := clock.Now()
	at := map[jose.HeaderKey]any{jose.HeaderType: "at+jwt"}

	c, err := v.Verify(ctx, ti.mint(ti.baseClaims()))
	if err != nil {
		t.Fatalf("good token: %v", err)
	}
	if c.Subject != "alice" || c.ClientID != "web-app" || c.ACR != "phr" || !c.HasScope("payments:write") ||
		len(c.AMR) != 3 || c.AuthTime.Unix() != now.Add(-time.Minute).Unix() || c.Expiry.IsZero() || c.Raw["jti"] == nil {
		t.Fatalf("claims not read: %+v", c)
	}

	hs := func() string {
		// HS256 with the published public key as the HMAC secret: the
		// classic algorithm-confusion attack.
		ti.mu.Lock()
		k := ti.current
		ti.mu.Unlock()
		der, err := x509.MarshalPKIXPublicKey(k.priv.Public())
		if err != nil {
			t.Fatal(err)
		}
		s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: der}, (&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", k.kid))
		if err != nil {
			t.Fatal(err)
		}
		jws, _ := s.Sign(mustJSON(t, ti.baseClaims()))
		out, _ := jws.CompactSerialize()
		return out
	}
	stranger := newTestKey(t, jose.ES256)
	cases := []struct {
		name  string
		token string
		want  error
	}{
		{"rs256 accepted", mintWith(t, rsKey, at, ti.baseClaims()), nil},
		{"application/at+jwt typ", mintWith(t, ti.current, map[jose.HeaderKey]any{jose.HeaderType: "application/AT+JWT"}, ti.baseClaims()), nil},
		{"no typ", mintWith(t, ti.current, nil, ti.baseClaims()), ErrInvalidToken},
		{"typ JWT (an ID token)", mintWith(t, ti.current, map[jose.HeaderKey]any{jose.HeaderType: "JWT"}, ti.baseClaims()), ErrInvalidToken},
		{"wrong audience", ti.mint(ti.with(map[string]any{"aud": "https://other.example"})), ErrInvalidToken},
		{"no audience", ti.mint(ti.with(map[string]any{"aud": nil})), ErrInvalidToken},
		{"wrong issuer", ti.mint(ti.with(map[string]any{"iss": "https://evil.example"})), ErrInvalidToken},
		{"expired", ti.mint(ti.with(map[string]any{"exp": now.Add(-time.Minute).Unix()})), ErrExpired},
		{"expired within leeway", ti.mint(ti.with(map[string]any{"exp": now.Add(-5 * time.Second).Unix()})), nil},
		{"no exp", ti.mint(ti.with(map[string]any{"exp": nil})), ErrInvalidToken},
		{"not yet valid", ti.mint(ti.with(map[string]any{"nbf": now.Add(time.Minute).Unix()})), ErrInvalidToken},
		{"issued in the future", ti.mint(ti.with(map[string]any{"iat": now.Add(time.Hour).Unix()})), ErrInvalidToken},
		{"no sub", ti.mint(ti.with(map[string]any{"sub": nil})), ErrInvalidToken},
		{"scope of wrong type", ti.mint(ti.with(map[string]any{"scope": 42})), ErrInvalidToken},
		{"auth_time of wrong type", ti.mint(ti.with(map[string]any{"auth_time": "yesterday"})), ErrInvalidToken},
		{"alg none", unsignedJWT(t, map[string]any{"alg": "none", "typ": "at+jwt", "kid": ti.current.kid}, ti.baseClaims(), nil), ErrInvalidToken},
		{"alg none with a signature", unsignedJWT(t, map[string]any{"alg": "none", "typ": "at+jwt"}, ti.baseClaims(), []byte("x")), ErrInvalidToken},
		{"HS256 keyed with the public key", hs(), ErrInvalidToken},
		{"ES384 (not pinned) from a published key", mintWith(t, es384, at, ti.baseClaims()), ErrInvalidToken},
		{"unknown key", mintWith(t, stranger, at, ti.baseClaims()), ErrInvalidToken},
		{"known kid, foreign key", mintWith(t, &testKey{kid: ti.current.kid, alg: jose.ES256, priv: stranger.priv}, at, ti.baseClaims()), ErrInvalidToken},
		{"tampered payload", tamper(ti.mint(ti.baseClaims())), ErrInvalidToken},
		{"garbage with two dots", "a.b.c", ErrInvalidToken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(ctx, tc.token)
			if tc.want == nil && err != nil {
				t.Fatalf("want success, got %v", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("want %v, got %v", tc.want, err)
			}
		})
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tamper flips the subject inside a signed token's payload.
func tamper(tok string) string {
	parts := strings.SplitN(tok, ".", 3)
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	payload = []byte(strings.Replace(string(payload), `"alice"`, `"mallory"`, 1))
	return parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
}

func TestJWKSRotation(t *testing.T) {
	clock := newFakeClock()
	ti := newTestIssuer(t, clock)
	v := ti.verifier(nil)
	ctx := context.Background()
	if _, err := v.Verify(ctx, ti.mint(ti.baseClaims())); err != nil {
		t.Fatal(err)
	}
	if n := ti.jwksCalls.Load(); n != 1 {
		t.Fatalf("jwks fetched %d times, want 1", n)
	}
	// A cached kid needs no fetch.
	for range 5 {
		if _, err := v.Verify(ctx, ti.mint(ti.baseClaims())); err != nil {
			t.Fatal(err)
		}
	}
	if n := ti.jwksCalls.Load(); n != 1 {
		t.Fatalf("jwks fetched %d times for a known kid", n)
	}
	// Rotation: the new kid is unknown, so the set is refetched at once
	// (the last fetch being older than the refresh interval).
	clock.Advance(DefaultJWKSMinRefresh)
	ti.rotate(jose.ES256)
	if _, err := v.Verify(ctx, ti.mint(ti.baseClaims())); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if n := ti.jwksCalls.Load(); n != 2 {
		t.Fatalf("jwks fetched %d times, want 2", n)
	}
	// Made-up kids within the refresh interval cause no further fetch.
	stranger := newTestKey(t, jose.ES256)
	at := map[jose.HeaderKey]any{jose.HeaderType: "at+jwt"}
	for range 20 {
		if _, err := v.Verify(ctx, mintWith(t, stranger, at, ti.baseClaims())); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("unknown kid: %v", err)
		}
	}
	if n := ti.jwksCalls.Load(); n != 2 {
		t.Fatalf("unknown kids caused %d fetches, want rate-limited to 2 in all", n)
	}
	// Once the interval has passed, an unknown kid may refetch again; a
	// key rotated in meanwhile is then found.
	clock.Advance(DefaultJWKSMinRefresh + time.Second)
	ti.rotate(jose.RS256)
	tok := ti.mint(ti.baseClaims())
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("after second rotation: %v", err)
	}
	if n := ti.jwksCalls.Load(); n != 3 {
		t.Fatalf("jwks fetched %d times, want 3", n)
	}
	// A key dropped from the JWKS stops verifying after the next refresh.
	ti.mu.Lock()
	ti.published = ti.published[len(ti.published)-1:]
	ti.mu.Unlock()
	clock.Advance(DefaultJWKSMaxAge + time.Second)
	old := mintWith(t, &testKey{kid: "gone", alg: jose.ES256, priv: newTestKey(t, jose.ES256).priv}, at, ti.baseClaims())
	if _, err := v.Verify(ctx, old); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("removed key: %v", err)
	}
	if n := ti.discoveryCalls.Load(); n != 1 {
		t.Fatalf("discovery fetched %d times, want 1", n)
	}
}

func TestJWKSConcurrentMissesFetchOnce(t *testing.T) {
	clock := newFakeClock()
	ti := newTestIssuer(t, clock)
	v := ti.verifier(nil)
	tok := ti.mint(ti.baseClaims())
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			if _, err := v.Verify(context.Background(), tok); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := ti.jwksCalls.Load(); n != 1 {
		t.Fatalf("jwks fetched %d times by 32 concurrent first requests", n)
	}
}

func TestDiscoveryIssuerMismatch(t *testing.T) {
	clock := newFakeClock()
	ti := newTestIssuer(t, clock)
	v := ti.verifier(func(c *RemoteConfig) { c.Issuer = ti.srv.URL + "/" })
	_, err := v.Verify(context.Background(), ti.mint(ti.baseClaims()))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("want ErrUnavailable for a discovery document naming another issuer, got %v", err)
	}
}

func TestNewRemoteVerifierValidation(t *testing.T) {
	for _, cfg := range []RemoteConfig{
		{Audience: "a"},
		{Issuer: "https://id.example"},
		{Issuer: "id.example", Audience: "a"},
		{Issuer: "https://id.example", Audience: "a", ClientID: "x"},
	} {
		if _, err := NewRemoteVerifier(cfg); err == nil {
			t.Errorf("%+v: want an error", cfg)
		}
	}
}

func TestIntrospection(t *testing.T) {
	clock := newFakeClock()
	ti := newTestIssuer(t, clock)
	v := ti.verifier(nil)
	ctx := context.Background()
	now := clock.Now()

	tok := ti.issueOpaque(ti.baseClaims())
	c, err := v.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "alice" || c.ACR != "phr" || !c.HasScope("accounts:read") || c.AuthTime.Unix() != now.Add(-time.Minute).Unix() {
		t.Fatalf("claims: %+v", c)
	}

	cases := []struct {
		name   string
		claims map[string]any
		want   error
	}{
		{"refresh token", map[string]any{"token_use": "refresh_token", "token_type": "refresh_token"}, ErrInvalidToken},
		{"other audience", map[string]any{"aud": []string{"https://other.example"}}, ErrInvalidToken},
		{"other issuer", map[string]any{"iss": "https://evil.example"}, ErrInvalidToken},
		{"bad amr", map[string]any{"amr": 7}, ErrInvalidToken},
		{"no aud (accepted: the issuer vouches)", map[string]any{"aud": nil}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			claims := ti.with(tc.claims)
			tok := ti.issueOpaque(claims)
			if tu, ok := tc.claims["token_use"]; ok {
				ti.mu.Lock()
				ti.opaque[tok]["token_use"], ti.opaque[tok]["token_type"] = tu, tc.claims["token_type"]
				ti.mu.Unlock()
			}
			_, err := v.Verify(ctx, tok)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("want %v, got %v", tc.want, err)
			}
		})
	}

	if _, err := v.Verify(ctx, "unknown-opaque-token"); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("unknown token: %v", err)
	}
}

func TestIntrospectionCacheAndRevocation(t *testing.T) {
	clock := newFakeClock()
	ti := newTestIssuer(t, clock)
	v := ti.verifier(nil) // CacheTTL 30 s
	ctx := context.Background()
	tok := ti.issueOpaque(ti.baseClaims())

	for range 10 {
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if n := ti.introspections.Load(); n != 1 {
		t.Fatalf("introspected %d times, want 1 (cache)", n)
	}
	ti.revoke(tok)
	clock.Advance(DefaultCacheTTL - time.Second)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("within the TTL the cached answer stands: %v", err)
	}
	clock.Advance(2 * time.Second)
	if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("revocation must be honoured once the TTL has passed, got %v", err)
	}
	if n := ti.introspections.Load(); n != 2 {
		t.Fatalf("introspected %d times, want 2", n)
	}
	// The negative answer is cached too.
	if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrInvalidToken) {
		t.Fatal(err)
	}
	if n := ti.introspections.Load(); n != 2 {
		t.Fatalf("introspected %d times, want 2 (negative cache)", n)
	}
}

func TestIntrospectionCacheBoundedByExp(t *testing.T) {
	clock := newFakeClock()
	ti := newTestIssuer(t, clock)
	v := ti.verifier(nil)
	ctx := context.Background()
	tok := ti.issueOpaque(ti.with(map[string]any{"exp": clock.Now().Add(10 * time.Second).Unix()}))
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	clock.Advance(11 * time.Second) // before the TTL, after exp
	if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("a cached answer must not outlive the token's exp: %v", err)
	}
	if n := ti.introspections.Load(); n != 2 {
		t.Fatalf("introspected %d times, want 2", n)
	}
}

func TestIntrospectionSingleflight(t *testing.T) {
	clock := newFakeClock()
	ti := newTestIssuer(t, clock)
	v := ti.verifier(nil)
	tok := ti.issueOpaque(ti.baseClaims())
	gate := make(chan struct{})
	ti.mu.Lock()
	ti.gate = gate
	ti.mu.Unlock()

	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := v.Verify(context.Background(), tok)
			errs <- err
		})
	}
	// Let every goroutine reach the shared call before answering.
	deadline := time.Now().Add(5 * time.Second)
	for ti.introspections.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := ti.introspections.Load(); got != 1 {
		t.Fatalf("%d concurrent misses made %d introspection calls, want 1", n, got)
	}
}

func TestIntrospectionCallerCancelDoesNotFailOthers(t *testing.T) {
	clock := newFakeClock()
	ti := newTestIssuer(t, clock)
	v := ti.verifier(nil)
	tok := ti.issueOpaque(ti.baseClaims())
	gate := make(chan struct{})
	ti.mu.Lock()
	ti.gate = gate
	ti.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { _, err := v.Verify(ctx, tok); first <- err }()
	for ti.introspections.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	second := make(chan error, 1)
	go func() { _, err := v.Verify(context.Background(), tok); second <- err }()
	cancel()
	if err := <-first; !errors.Is(err, ErrUnavailable) {
		t.Fatalf("cancelled caller: %v", err)
	}
	close(gate)
	if err := <-second; err != nil {
		t.Fatalf("the other caller must still get the answer: %v", err)
	}
}

func TestIntrospectionOutageIsNotCached(t *testing.T) {
	clock := newFakeClock()
	ti := newTestIssuer(t, clock)
	v := ti.verifier(func(c *RemoteConfig) { c.ClientSecret = "wrong" })
	tok := ti.issueOpaque(ti.baseClaims())
	for range 2 {
		if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("rejected client credentials are an outage, not a bad token: %v", err)
		}
	}
	if n := ti.introspections.Load(); n != 2 {
		t.Fatalf("outage answers must not be cached: %d calls", n)
	}
}

func TestOpaqueWithoutCredentials(t *testing.T) {
	clock := newFakeClock()
	ti := newTestIssuer(t, clock)
	v := ti.verifier(func(c *RemoteConfig) { c.ClientID, c.ClientSecret = "", "" })
	if _, err := v.Verify(context.Background(), ti.issueOpaque(ti.baseClaims())); !errors.Is(err, ErrInvalidToken) {
		t.Fatal(err)
	}
	if ti.introspections.Load() != 0 {
		t.Fatal("introspected without credentials")
	}
}

func TestCacheEviction(t *testing.T) {
	clock := newFakeClock()
	c := newIntrospectionCache(time.Minute, 100, clock.Now)
	fetch := func(context.Context, string) (*Claims, error) { return &Claims{Subject: "s"}, nil }
	for i := range 1000 {
		if _, err := c.get(context.Background(), "tok"+strconv.Itoa(i), fetch); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.len(); n > 100 {
		t.Fatalf("cache holds %d entries, bound is 100", n)
	}
}

func TestLocalVerifier(t *testing.T) {
	clock := newFakeClock()
	calls := 0
	store := map[string]map[string]any{
		"good":    {"active": true, "sub": "alice", "client_id": "app", "scope": "a b", "acr": "phr", "amr": []any{"hwk"}, "auth_time": float64(clock.Now().Unix()), "exp": float64(clock.Now().Add(time.Hour).Unix()), "iss": "https://id.example", "aud": []any{"app"}},
		"refresh": {"active": true, "sub": "alice", "token_use": "refresh_token", "token_type": "refresh_token"},
	}
	introspect := func(ctx context.Context, tok string) (map[string]any, error) {
		calls++
		if tok == "broken" {
			return nil, errors.New("database is down")
		}
		if m, ok := store[tok]; ok {
			return m, nil
		}
		return map[string]any{"active": false}, nil
	}
	v, err := NewLocalVerifier(LocalConfig{Introspect: introspect, Issuer: "https://id.example", Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := v.Verify(ctx, "good")
	if err != nil || c.Subject != "alice" || c.ACR != "phr" || !c.HasScope("b") {
		t.Fatalf("good: %+v %v", c, err)
	}
	for tok, want := range map[string]error{"refresh": ErrInvalidToken, "nope": ErrInvalidToken, "broken": ErrUnavailable} {
		if _, err := v.Verify(ctx, tok); !errors.Is(err, want) {
			t.Errorf("%s: want %v, got %v", tok, want, err)
		}
	}
	// No cache by default: revocation applies to the next request.
	before := calls
	_, _ = v.Verify(ctx, "good")
	_, _ = v.Verify(ctx, "good")
	if calls-before != 2 {
		t.Fatalf("local verifier without CacheTTL cached: %d calls", calls-before)
	}
	if _, err := NewLocalVerifier(LocalConfig{}); err == nil {
		t.Fatal("want an error without Introspect")
	}
}

func TestJWKSOutage(t *testing.T) {
	clock := newFakeClock()
	ti := newTestIssuer(t, clock)
	v := ti.verifier(nil)
	ctx := context.Background()
	tok := ti.mint(ti.baseClaims())

	ti.jwksDown.Store(true)
	for range 3 {
		if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("issuer down before the first fetch: want ErrUnavailable, got %v", err)
		}
	}
	if n := ti.jwksCalls.Load(); n != 1 {
		t.Fatalf("a down JWKS was fetched %d times within the refresh interval", n)
	}
	ti.jwksDown.Store(false)
	clock.Advance(DefaultJWKSMinRefresh)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
	// The set is stale and the issuer down again: the cached key still
	// verifies rather than failing every request.
	ti.jwksDown.Store(true)
	clock.Advance(DefaultJWKSMaxAge + time.Second)
	tok = ti.mint(ti.baseClaims())
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("stale but matching key during an outage: %v", err)
	}
}

// Both verifiers satisfy the interface the middleware and gateway take.
var (
	_ TokenVerifier = (*RemoteVerifier)(nil)
	_ TokenVerifier = (*LocalVerifier)(nil)
)
