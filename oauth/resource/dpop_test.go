package resource

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/stepwise-id/stepwise/oauth/dpop"
	"github.com/stepwise-id/stepwise/oauth/dpop/dpoptest"
)

func newDPoPKey(t testing.TB) *dpoptest.Key {
	t.Helper()
	k, err := dpoptest.NewKey(jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func proofFor(t testing.TB, k *dpoptest.Key, method, uri, token string) string {
	t.Helper()
	s, err := k.NewProof(method, uri, token, "").Sign()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const invalidProofPrefix = `DPoP error="invalid_dpop_proof", error_description="`

func TestMiddlewareDPoP(t *testing.T) {
	clock := newFakeClock()
	ti := newTestIssuer(t, clock)
	keyA, keyB := newDPoPKey(t), newDPoPKey(t)
	tbl, err := ParseRoutes([]RouteConfig{
		{Match: "POST /payments/{rest...}", Scopes: []string{"payments:write"}, ACR: "phr", MaxAge: 300},
	}, RoutesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mw, err := NewMiddleware(Options{Verifier: ti.verifier(nil), Routes: tbl, Now: clock.Now,
		DPoP: DPoPOptions{BaseURL: "https://api.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	h := mw.Wrap(sampleAPI())
	const uri = "https://api.example.com/payments/7"
	bound := ti.mint(ti.with(map[string]any{"cnf": map[string]any{"jkt": keyA.JKT()}}))
	weakBound := ti.mint(ti.with(map[string]any{"cnf": map[string]any{"jkt": keyA.JKT()}, "acr": "urn:stepwise:acr:pwd"}))
	plain := ti.mint(ti.baseClaims())
	replayed := proofFor(t, keyA, "POST", uri, bound)

	cases := []struct {
		name      string
		auth      string
		proofs    []string
		status    int
		challenge string // prefix
	}{
		{"bound token with a proof by its key", "DPoP " + bound, []string{replayed}, 200, ""},
		{"replayed proof", "DPoP " + bound, []string{replayed}, 401, invalidProofPrefix + "jti was already used"},
		{"proof by another key", "DPoP " + bound, []string{proofFor(t, keyB, "POST", uri, bound)}, 401, invalidProofPrefix + "proof key is not"},
		{"no proof", "DPoP " + bound, nil, 401, invalidProofPrefix + "no DPoP header"},
		{"two proofs", "DPoP " + bound, []string{proofFor(t, keyA, "POST", uri, bound), proofFor(t, keyA, "POST", uri, bound)}, 401, invalidProofPrefix + "more than one"},
		{"proof for another method", "DPoP " + bound, []string{proofFor(t, keyA, "GET", uri, bound)}, 401, invalidProofPrefix + "htm"},
		{"proof for another URI", "DPoP " + bound, []string{proofFor(t, keyA, "POST", "https://api.example.com/payments/8", bound)}, 401, invalidProofPrefix + "htu"},
		{"proof for another host", "DPoP " + bound, []string{proofFor(t, keyA, "POST", "https://evil.example.com/payments/7", bound)}, 401, invalidProofPrefix + "htu"},
		{"proof without ath", "DPoP " + bound, []string{proofFor(t, keyA, "POST", uri, "")}, 401, invalidProofPrefix + "ath missing"},
		{"proof for another token", "DPoP " + bound, []string{proofFor(t, keyA, "POST", uri, plain)}, 401, invalidProofPrefix + "ath does not match"},
		{"bound token as a bearer token", "Bearer " + bound, []string{proofFor(t, keyA, "POST", uri, bound)}, 401, `DPoP error="invalid_token"`},
		{"unbound token with the DPoP scheme", "DPoP " + plain, []string{proofFor(t, keyA, "POST", uri, plain)}, 401, `DPoP error="invalid_token"`},
		{"unbound bearer token still works", "Bearer " + plain, nil, 200, ""},
		{"step-up challenge keeps the DPoP scheme", "DPoP " + weakBound, []string{proofFor(t, keyA, "POST", uri, weakBound)}, 401, `DPoP error="insufficient_user_authentication"`},
		{"malformed DPoP authorization", "DPoP a b", nil, 400, `DPoP error="invalid_request"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/payments/7?amount=5", nil)
			r.Header.Set("Authorization", tc.auth)
			for _, p := range tc.proofs {
				r.Header.Add("DPoP", p)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d; %s %s", rec.Code, tc.status, rec.Header().Get("WWW-Authenticate"), rec.Body)
			}
			got := rec.Header().Get("WWW-Authenticate")
			if !strings.HasPrefix(got, tc.challenge) {
				t.Fatalf("WWW-Authenticate\n got  %s\n want %s…", got, tc.challenge)
			}
			if (strings.HasPrefix(tc.challenge, invalidProofPrefix) || strings.HasPrefix(tc.challenge, `DPoP error="invalid_token"`)) && !strings.Contains(got, `algs="ES256 `) {
				t.Errorf("DPoP challenge without algs: %s", got)
			}
		})
	}
}

func TestMiddlewareDPoPIntrospected(t *testing.T) {
	clock := newFakeClock()
	ti := newTestIssuer(t, clock)
	key := newDPoPKey(t)
	mw, err := NewMiddleware(Options{Verifier: ti.verifier(nil), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mw.Wrap(sampleAPI()))
	defer srv.Close()
	opaque := ti.issueOpaque(ti.with(map[string]any{"cnf": map[string]any{"jkt": key.JKT()}, "token_type": "DPoP"}))
	client := &http.Client{Transport: &dpoptest.Transport{Key: key}}
	req, _ := http.NewRequest("GET", srv.URL+"/hello", nil)
	req.Header.Set("Authorization", "DPoP "+opaque)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("introspected bound token with proof: %d %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	// The same token presented as a bearer token.
	req, _ = http.NewRequest("GET", srv.URL+"/hello", nil)
	req.Header.Set("Authorization", "Bearer "+opaque)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `DPoP error="invalid_token"`) {
		t.Fatalf("bound token as bearer: %d %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

func TestGatewayDPoP(t *testing.T) {
	clock := newFakeClock()
	ti := newTestIssuer(t, clock)
	keyA, keyB := newDPoPKey(t), newDPoPKey(t)
	gw, err := NewGateway(GatewayOptions{Options: Options{Verifier: ti.verifier(nil), Now: clock.Now}})
	if err != nil {
		t.Fatal(err)
	}
	bound := ti.mint(ti.with(map[string]any{"cnf": map[string]any{"jkt": keyA.JKT()}}))
	nginx := map[string]string{"X-Original-Method": "POST", "X-Original-URI": "/payments/1?x=1",
		"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example"}
	traefik := map[string]string{"X-Forwarded-Method": "POST", "X-Forwarded-Uri": "/payments/1",
		"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example"}
	const uri = "https://api.example/payments/1"
	cases := []struct {
		name    string
		method  string
		target  string
		headers map[string]string
		auth    string
		proof   string
		status  int
	}{
		{"nginx, proof of the original request", "GET", "/gateway/check", nginx, "DPoP " + bound, proofFor(t, keyA, "POST", uri, bound), 200},
		{"traefik, proof of the original request", "GET", "/gateway/check", traefik, "DPoP " + bound, proofFor(t, keyA, "POST", uri, bound), 200},
		{"envoy, proof of the original request", "POST", "/gateway/check/payments/1", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "api.example"},
			"DPoP " + bound, proofFor(t, keyA, "POST", uri, bound), 200},
		{"proof of the check request", "GET", "/gateway/check", nginx, "DPoP " + bound, proofFor(t, keyA, "GET", "https://api.example/gateway/check", bound), 401},
		{"proof by another key", "GET", "/gateway/check", nginx, "DPoP " + bound, proofFor(t, keyB, "POST", uri, bound), 401},
		{"no proof", "GET", "/gateway/check", nginx, "DPoP " + bound, "", 401},
		{"bearer scheme", "GET", "/gateway/check", nginx, "Bearer " + bound, proofFor(t, keyA, "POST", uri, bound), 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.target, nil)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			r.Header.Set("Authorization", tc.auth)
			if tc.proof != "" {
				r.Header.Set("DPoP", tc.proof)
			}
			rec := httptest.NewRecorder()
			gw.ServeHTTP(rec, r)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Header().Get("WWW-Authenticate"))
			}
			if tc.status == 200 {
				if rec.Header().Get(HeaderSubject) != "alice" {
					t.Fatal("no identity")
				}
				return
			}
			if !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "DPoP error=") {
				t.Fatalf("challenge %q", rec.Header().Get("WWW-Authenticate"))
			}
		})
	}
}

func TestDPoPNonceChallenge(t *testing.T) {
	clock := newFakeClock()
	ti := newTestIssuer(t, clock)
	key := newDPoPKey(t)
	n, err := dpop.NewNonces([]byte("resource-server-nonce-key-0123456789"), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := dpop.NewVerifier(dpop.Config{Replay: dpop.NewMemoryReplayCache(0, nil), Nonces: n})
	if err != nil {
		t.Fatal(err)
	}
	mw, err := NewMiddleware(Options{Verifier: ti.verifier(nil), Now: clock.Now, DPoP: DPoPOptions{Verifier: v}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mw.Wrap(sampleAPI()))
	defer srv.Close()
	bound := ti.mint(ti.with(map[string]any{"cnf": map[string]any{"jkt": key.JKT()}}))
	// Without a nonce: 401 use_dpop_nonce with a DPoP-Nonce header.
	req, _ := http.NewRequest("GET", srv.URL+"/hello", nil)
	req.Header.Set("Authorization", "DPoP "+bound)
	req.Header.Set("DPoP", proofFor(t, key, "GET", srv.URL+"/hello", bound))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `DPoP error="use_dpop_nonce"`) || resp.Header.Get("DPoP-Nonce") == "" {
		t.Fatalf("no nonce: %d %q nonce %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), resp.Header.Get("DPoP-Nonce"))
	}
	// A client that follows the challenge gets through.
	client := &http.Client{Transport: &dpoptest.Transport{Key: key}}
	req, _ = http.NewRequest("GET", srv.URL+"/hello", nil)
	req.Header.Set("Authorization", "DPoP "+bound)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("with nonce: %d %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

func TestConfirmationClaim(t *testing.T) {
	key := newDPoPKey(t)
	for _, tc := range []struct {
		cnf any
		ok  bool
	}{
		{map[string]any{"jkt": key.JKT()}, true},
		{"jkt", false},
		{map[string]any{"jkt": "short"}, false},
		{map[string]any{"x5t#S256": "abc"}, false},
		{map[string]any{"jkt": 5}, false},
	} {
		_, err := claimsFromMap(map[string]any{"sub": "a", "cnf": tc.cnf})
		if (err == nil) != tc.ok {
			t.Errorf("cnf %v: err %v", tc.cnf, err)
		}
	}
}
