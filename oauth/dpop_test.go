package oauth

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	josev4 "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/stepwise-id/stepwise/oauth/dpop/dpoptest"
	"github.com/stepwise-id/stepwise/oauth/resource"
	"github.com/stepwise-id/stepwise/storage"
)

// The tests of this file drive the provider with golang.org/x/oauth2, whose
// HTTP client carries dpoptest.Transport: an independent DPoP client that
// signs a proof for every request.

func dpopKey(t testing.TB) *dpoptest.Key {
	t.Helper()
	k, err := dpoptest.NewKey(josev4.ES256)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// dpopCtx is an x/oauth2 context whose HTTP client adds proofs by k.
func (e *env) dpopCtx(k *dpoptest.Key) context.Context {
	c := *e.srv.Client()
	c.Transport = &dpoptest.Transport{Key: k, Base: e.srv.Client().Transport}
	return context.WithValue(context.Background(), oauth2.HTTPClient, &c)
}

// publicConfig is an x/oauth2 config for a public client (client_id in the body).
func (e *env) publicConfig(clientID string, scopes ...string) *oauth2.Config {
	c := e.oauth2Config(clientID, scopes...)
	c.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	return c
}

// proofRequest signs a proof by k for the token endpoint.
func (e *env) proof(k *dpoptest.Key, path string, mod func(*dpoptest.Proof)) string {
	e.t.Helper()
	p := k.NewProof(http.MethodPost, e.issuer+path, "", "")
	if mod != nil {
		mod(p)
	}
	s, err := p.Sign()
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func withProofs(proofs ...string) func(*http.Request) {
	return func(r *http.Request) {
		for _, p := range proofs {
			r.Header.Add("DPoP", p)
		}
	}
}

func retrieveCode(err error) string {
	var re *oauth2.RetrieveError
	if asRetrieve(err, &re) {
		return re.ErrorCode
	}
	if err == nil {
		return ""
	}
	return err.Error()
}

func cnfJKT(m map[string]any) string {
	c, _ := m["cnf"].(map[string]any)
	s, _ := c["jkt"].(string)
	return s
}

func TestDPoPPublicClientEndToEnd(t *testing.T) {
	e := newEnv(t, nil)
	keyA, keyB := dpopKey(t), dpopKey(t)
	conf := e.publicConfig("spa", "openid", "offline_access")
	verifier := oauth2.GenerateVerifier()
	q := e.authorize(conf.AuthCodeURL("state-123456", oauth2.S256ChallengeOption(verifier)))
	tok, err := conf.Exchange(e.dpopCtx(keyA), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange with a proof: %v", err)
	}
	if tok.TokenType != "DPoP" || tok.RefreshToken == "" {
		t.Fatalf("token_type %q, refresh %v", tok.TokenType, tok.RefreshToken != "")
	}
	m := e.introspect(tok.AccessToken)
	if m["active"] != true || cnfJKT(m) != keyA.JKT() || m["token_type"] != "DPoP" {
		t.Fatalf("introspection of a bound token: %v", m)
	}

	// The refresh token of a public client is bound to key A.
	old := &oauth2.Token{RefreshToken: tok.RefreshToken}
	if _, err := conf.TokenSource(e.dpopCtx(keyB), old).Token(); retrieveCode(err) != "invalid_grant" {
		t.Fatalf("refresh with key B: %v, want invalid_grant", err)
	}
	if _, err := conf.TokenSource(e.ctx(), old).Token(); retrieveCode(err) != "invalid_dpop_proof" {
		t.Fatalf("refresh without a proof: %v, want invalid_dpop_proof", err)
	}
	tok2, err := conf.TokenSource(e.dpopCtx(keyA), old).Token()
	if err != nil {
		t.Fatalf("refresh with key A: %v", err)
	}
	if tok2.TokenType != "DPoP" || cnfJKT(e.introspect(tok2.AccessToken)) != keyA.JKT() {
		t.Fatalf("refreshed token not bound to key A: %q", tok2.TokenType)
	}

	// A resource server in front of an API: the token works only with
	// proofs by key A, each used once.
	lv, err := resource.NewLocalVerifier(resource.LocalConfig{Introspect: e.p.IntrospectAccessToken, Issuer: e.issuer})
	if err != nil {
		t.Fatal(err)
	}
	mw, err := resource.NewMiddleware(resource.Options{Verifier: lv})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := resource.ClaimsFrom(r.Context())
		_, _ = w.Write([]byte("hello " + c.Subject))
	})))
	defer api.Close()
	call := func(ctx context.Context) *http.Response {
		t.Helper()
		resp, err := conf.Client(ctx, tok2).Get(api.URL + "/hello?x=1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := call(e.dpopCtx(keyA)); r.StatusCode != 200 {
		t.Fatalf("API with key A: %d %s", r.StatusCode, r.Header.Get("WWW-Authenticate"))
	}
	if r := call(e.dpopCtx(keyB)); r.StatusCode != 401 || !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_dpop_proof"`) {
		t.Fatalf("API with key B: %d %s", r.StatusCode, r.Header.Get("WWW-Authenticate"))
	}
	if r := call(e.ctx()); r.StatusCode != 401 || !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_dpop_proof"`) {
		t.Fatalf("API without a proof: %d %s", r.StatusCode, r.Header.Get("WWW-Authenticate"))
	}
	// A captured request (token and proof) replayed.
	p, err := keyA.NewProof("GET", api.URL+"/hello", tok2.AccessToken, "").Sign()
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{200, 401} {
		req, _ := http.NewRequest("GET", api.URL+"/hello", nil)
		req.Header.Set("Authorization", "DPoP "+tok2.AccessToken)
		req.Header.Set("DPoP", p)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("request %d with one proof: %d, want %d", i, resp.StatusCode, want)
		}
	}
	// As a bearer token.
	req, _ := http.NewRequest("GET", api.URL+"/hello", nil)
	req.Header.Set("Authorization", "Bearer "+tok2.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), `DPoP error="invalid_token"`) {
		t.Fatalf("bound token as bearer: %d %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}

func TestDPoPTokenEndpointRefusesBadProofs(t *testing.T) {
	e := newEnv(t, nil)
	k := dpopKey(t)
	cc := url.Values{"grant_type": {"client_credentials"}, "scope": {"api.read"}}
	auth := basic("svc", e.secrets["svc"])
	replayed := e.proof(k, PathToken, nil)
	cases := []struct {
		name   string
		proofs []string
		want   string
	}{
		{"valid", []string{replayed}, ""},
		{"replayed", []string{replayed}, "invalid_dpop_proof"},
		{"two headers", []string{e.proof(k, PathToken, nil), e.proof(k, PathToken, nil)}, "invalid_dpop_proof"},
		{"htu of another endpoint", []string{e.proof(k, PathIntrospect, nil)}, "invalid_dpop_proof"},
		{"htm GET", []string{e.proof(k, PathToken, func(p *dpoptest.Proof) { p.Claims["htm"] = "GET" })}, "invalid_dpop_proof"},
		{"old iat", []string{e.proof(k, PathToken, func(p *dpoptest.Proof) { p.Claims["iat"] = time.Now().Add(-time.Hour).Unix() })}, "invalid_dpop_proof"},
		{"typ JWT", []string{e.proof(k, PathToken, func(p *dpoptest.Proof) { p.Header["typ"] = "JWT" })}, "invalid_dpop_proof"},
		{"alg none", []string{k.NewProof(http.MethodPost, e.issuer+PathToken, "", "").Unsigned()}, "invalid_dpop_proof"},
		{"garbage", []string{"x"}, "invalid_dpop_proof"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, m := e.post(PathToken, cc, func(r *http.Request) { auth(r); withProofs(tc.proofs...)(r) })
			if tc.want == "" {
				if code != 200 || m["token_type"] != "DPoP" {
					t.Fatalf("%d %v", code, m)
				}
				return
			}
			if code != http.StatusBadRequest || m["error"] != tc.want {
				t.Fatalf("%d %v, want 400 %s", code, m, tc.want)
			}
		})
	}
	// Without a proof a client not registered for DPoP gets a bearer token.
	code, m := e.post(PathToken, cc, auth)
	if code != 200 || !strings.EqualFold(m["token_type"].(string), "bearer") {
		t.Fatalf("no proof: %d %v", code, m)
	}
	if _, ok := e.introspect(m["access_token"].(string))["cnf"]; ok {
		t.Error("unbound token has cnf")
	}
}

func TestDPoPConfidentialRefreshRebinds(t *testing.T) {
	e := newEnv(t, nil)
	keyA, keyB := dpopKey(t), dpopKey(t)
	conf := e.oauth2Config("web", "openid", "offline_access")
	code, verifier := e.authCode("web", []string{"openid", "offline_access"})
	tok, err := conf.Exchange(e.dpopCtx(keyA), code, oauth2.VerifierOption(verifier))
	if err != nil || tok.TokenType != "DPoP" {
		t.Fatalf("exchange: %v %q", err, tok.TokenType)
	}
	// RFC 9449 §5: a confidential client's refresh token is not bound
	// (the client authenticates); the new access token follows the proof.
	tok2, err := conf.TokenSource(e.dpopCtx(keyB), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refresh with another key: %v", err)
	}
	if cnfJKT(e.introspect(tok2.AccessToken)) != keyB.JKT() {
		t.Error("refreshed access token not bound to the new proof's key")
	}
	tok3, err := conf.TokenSource(e.ctx(), &oauth2.Token{RefreshToken: tok2.RefreshToken}).Token()
	if err != nil || !strings.EqualFold(tok3.TokenType, "bearer") {
		t.Fatalf("refresh without a proof: %v %q", err, tok3.TokenType)
	}
}

func TestDPoPJKTBindsCode(t *testing.T) {
	e := newEnv(t, nil)
	keyA, keyB := dpopKey(t), dpopKey(t)
	conf := e.oauth2Config("web", "openid")
	verifier := oauth2.GenerateVerifier()
	boundCode := func() string {
		q := e.authorize(conf.AuthCodeURL("state-123456", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("dpop_jkt", keyA.JKT())))
		return q.Get("code")
	}
	// A refused binding burns the code (fosite drops its PKCE data), so
	// every attempt gets its own.
	if _, err := conf.Exchange(e.dpopCtx(keyB), boundCode(), oauth2.VerifierOption(verifier)); retrieveCode(err) != "invalid_dpop_proof" {
		t.Fatalf("code bound to A exchanged with B: %v", err)
	}
	if _, err := conf.Exchange(e.ctx(), boundCode(), oauth2.VerifierOption(verifier)); retrieveCode(err) != "invalid_dpop_proof" {
		t.Fatalf("code bound to A exchanged without a proof: %v", err)
	}
	// An invalid proof is refused before the grant is looked at: the code
	// survives it.
	code := boundCode()
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {e.cb}, "code_verifier": {verifier}}
	badProof := e.proof(keyA, PathToken, func(p *dpoptest.Proof) { p.Claims["htm"] = "GET" })
	if st, m := e.post(PathToken, form, func(r *http.Request) { basic("web", e.secrets["web"])(r); withProofs(badProof)(r) }); st != 400 || m["error"] != "invalid_dpop_proof" {
		t.Fatalf("invalid proof: %d %v", st, m)
	}
	tok, err := conf.Exchange(e.dpopCtx(keyA), code, oauth2.VerifierOption(verifier))
	if err != nil || tok.TokenType != "DPoP" {
		t.Fatalf("code bound to A exchanged with A: %v", err)
	}
	// A malformed dpop_jkt is refused at the authorization endpoint.
	q := e.authorize(conf.AuthCodeURL("state-123456", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("dpop_jkt", "not-a-thumbprint")))
	if q.Get("error") != "invalid_request" {
		t.Fatalf("bad dpop_jkt: %v", q)
	}
}

func TestDPoPPARBindsRequest(t *testing.T) {
	e := newEnv(t, nil)
	keyA, keyB := dpopKey(t), dpopKey(t)
	verifier := oauth2.GenerateVerifier()
	form := url.Values{
		"response_type": {"code"}, "client_id": {"parweb"}, "redirect_uri": {e.cb}, "scope": {"openid"},
		"state": {"state-123456"}, "code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"},
	}
	auth := basic("parweb", e.secrets["parweb"])
	// A proof and a dpop_jkt naming another key disagree.
	bad := url.Values{"dpop_jkt": {keyB.JKT()}}
	for k, v := range form {
		bad[k] = v
	}
	if code, m := e.post(PathPAR, bad, func(r *http.Request) { auth(r); withProofs(e.proof(keyA, PathPAR, nil))(r) }); code != 400 || m["error"] != "invalid_dpop_proof" {
		t.Fatalf("PAR with mismatching dpop_jkt: %d %v", code, m)
	}
	pushedCode := func() string {
		code, m := e.post(PathPAR, form, func(r *http.Request) { auth(r); withProofs(e.proof(keyA, PathPAR, nil))(r) })
		if code != http.StatusCreated {
			t.Fatalf("PAR with a proof: %d %v", code, m)
		}
		q := e.authorize(e.issuer + PathAuthorize + "?" + url.Values{"client_id": {"parweb"}, "request_uri": {m["request_uri"].(string)}}.Encode())
		return q.Get("code")
	}
	conf := e.oauth2Config("parweb")
	if _, err := conf.Exchange(e.dpopCtx(keyB), pushedCode(), oauth2.VerifierOption(verifier)); retrieveCode(err) != "invalid_dpop_proof" {
		t.Fatalf("PAR bound to A, exchanged with B: %v", err)
	}
	tok, err := conf.Exchange(e.dpopCtx(keyA), pushedCode(), oauth2.VerifierOption(verifier))
	if err != nil || tok.TokenType != "DPoP" {
		t.Fatalf("PAR bound to A, exchanged with A: %v", err)
	}
}

func TestDPoPMandatoryClient(t *testing.T) {
	e := newEnv(t, nil)
	e.addClient(storage.Client{ID: "dsvc", GrantTypes: []string{"client_credentials"}, Scopes: []string{"api"},
		TokenEndpointAuthMethod: "client_secret_basic", AccessTokenFormat: "jwt", Metadata: []byte(`{"dpop_bound_access_tokens":true}`)})
	cc := clientcredentials.Config{ClientID: "dsvc", ClientSecret: e.secrets["dsvc"], TokenURL: e.issuer + PathToken, AuthStyle: oauth2.AuthStyleInHeader}
	if _, err := cc.Token(e.ctx()); retrieveCode(err) != "invalid_dpop_proof" {
		t.Fatalf("mandatory DPoP without a proof: %v", err)
	}
	k := dpopKey(t)
	tok, err := cc.Token(e.dpopCtx(k))
	if err != nil || tok.TokenType != "DPoP" {
		t.Fatalf("mandatory DPoP with a proof: %v", err)
	}
	// RFC 9068 JWT access token carries cnf.jkt.
	jws, err := josev4.ParseSigned(tok.AccessToken, []josev4.SignatureAlgorithm{josev4.ES256, josev4.RS256})
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	_ = json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &c)
	if cnfJKT(c) != k.JKT() {
		t.Fatalf("JWT access token cnf: %v", c["cnf"])
	}
	if cnfJKT(e.introspect(tok.AccessToken)) != k.JKT() {
		t.Fatal("introspection lacks cnf.jkt")
	}
}

func TestDPoPNonceRequired(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.DPoP.RequireNonce = true })
	k := dpopKey(t)
	cc := url.Values{"grant_type": {"client_credentials"}}
	resp := func(proof string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, e.issuer+PathToken, strings.NewReader(cc.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		basic("svc", e.secrets["svc"])(req)
		req.Header.Set("DPoP", proof)
		rec := httptest.NewRecorder()
		e.p.Handler().ServeHTTP(rec, req)
		return rec
	}
	rec := resp(e.proof(k, PathToken, nil))
	nonce := rec.Header().Get("DPoP-Nonce")
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), `"use_dpop_nonce"`) || nonce == "" {
		t.Fatalf("no nonce: %d %s nonce=%q", rec.Code, rec.Body, nonce)
	}
	rec = resp(e.proof(k, PathToken, func(p *dpoptest.Proof) { p.Claims["nonce"] = "forged" }))
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), `"use_dpop_nonce"`) {
		t.Fatalf("forged nonce: %d %s", rec.Code, rec.Body)
	}
	rec = resp(e.proof(k, PathToken, func(p *dpoptest.Proof) { p.Claims["nonce"] = nonce }))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"token_type":"DPoP"`) {
		t.Fatalf("with the nonce: %d %s", rec.Code, rec.Body)
	}
	// x/oauth2 behind a DPoP client that follows use_dpop_nonce.
	c := clientcredentials.Config{ClientID: "svc", ClientSecret: e.secrets["svc"], TokenURL: e.issuer + PathToken}
	if tok, err := c.Token(e.dpopCtx(dpopKey(t))); err != nil || tok.TokenType != "DPoP" {
		t.Fatalf("x/oauth2 with nonce retry: %v", err)
	}
}

func TestDPoPDiscoveryAndMetadata(t *testing.T) {
	e := newEnv(t, nil)
	_, m := e.do(mustReq(t, http.MethodGet, e.issuer+PathDiscovery))
	algs := toStrings(m["dpop_signing_alg_values_supported"])
	if len(algs) == 0 {
		t.Fatalf("no dpop_signing_alg_values_supported: %v", m)
	}
	for _, a := range algs {
		if a == "none" || strings.HasPrefix(a, "HS") {
			t.Errorf("advertised %s", a)
		}
	}
	reg, _, _ := newTestRegistry(t)
	md := webMetadata()
	md.DPoPBoundAccessTokens = true
	c, err := reg.Create(context.Background(), md)
	if err != nil {
		t.Fatal(err)
	}
	got, err := reg.Get(context.Background(), c.ClientID)
	if err != nil || !got.DPoPBoundAccessTokens {
		t.Fatalf("dpop_bound_access_tokens not kept: %v %+v", err, got.Metadata)
	}
	b, _ := json.Marshal(got)
	if !strings.Contains(string(b), `"dpop_bound_access_tokens":true`) {
		t.Errorf("client JSON %s", b)
	}
}

// TestDPoPGatewayInProcess wires the gateway as cmd/stepwise does: the
// provider's in-process introspection and its storage-backed replay cache.
func TestDPoPGatewayInProcess(t *testing.T) {
	e := newEnv(t, nil)
	k := dpopKey(t)
	cc := clientcredentials.Config{ClientID: "svc", ClientSecret: e.secrets["svc"], TokenURL: e.issuer + PathToken, AuthStyle: oauth2.AuthStyleInHeader}
	tok, err := cc.Token(e.dpopCtx(k))
	if err != nil || tok.TokenType != "DPoP" {
		t.Fatalf("token: %v", err)
	}
	lv, err := resource.NewLocalVerifier(resource.LocalConfig{Introspect: e.p.IntrospectAccessToken, Issuer: e.issuer})
	if err != nil {
		t.Fatal(err)
	}
	proofs, err := e.p.ResourceDPoPVerifier()
	if err != nil {
		t.Fatal(err)
	}
	gw, err := resource.NewGateway(resource.GatewayOptions{Options: resource.Options{Verifier: lv, DPoP: resource.DPoPOptions{Verifier: proofs}}})
	if err != nil {
		t.Fatal(err)
	}
	proof, err := k.NewProof("POST", "https://api.example/payments/1", tok.AccessToken, "").Sign()
	if err != nil {
		t.Fatal(err)
	}
	check := func(auth string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/gateway/check", nil)
		r.Header.Set("X-Original-Method", "POST")
		r.Header.Set("X-Original-URI", "/payments/1?amount=3")
		r.Header.Set("X-Forwarded-Proto", "https")
		r.Header.Set("X-Forwarded-Host", "api.example")
		r.Header.Set("Authorization", auth)
		r.Header.Set("DPoP", proof)
		rec := httptest.NewRecorder()
		gw.ServeHTTP(rec, r)
		return rec
	}
	if rec := check("DPoP " + tok.AccessToken); rec.Code != 200 || rec.Header().Get(resource.HeaderSubject) != "svc" {
		t.Fatalf("gateway with proof: %d %s", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	// The same proof again: refused by the shared replay cache.
	if rec := check("DPoP " + tok.AccessToken); rec.Code != 401 || !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="invalid_dpop_proof"`) {
		t.Fatalf("replayed proof at the gateway: %d %s", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	if rec := check("Bearer " + tok.AccessToken); rec.Code != 401 || !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), `DPoP error="invalid_token"`) {
		t.Fatalf("bound token as bearer at the gateway: %d %s", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
}
