package oauth

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	josev4 "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

type idClaims struct {
	Sub      string   `json:"sub"`
	ACR      string   `json:"acr"`
	AMR      []string `json:"amr"`
	AuthTime int64    `json:"auth_time"`
	Nonce    string   `json:"nonce"`
}

func (e *env) verifyIDToken(tok *oauth2.Token, clientID string) (*oidc.IDToken, idClaims) {
	e.t.Helper()
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		e.t.Fatal("no id_token in token response")
	}
	prov, err := oidc.NewProvider(e.ctx(), e.issuer)
	if err != nil {
		e.t.Fatalf("discovery: %v", err)
	}
	idt, err := prov.Verifier(&oidc.Config{ClientID: clientID}).Verify(e.ctx(), raw)
	if err != nil {
		e.t.Fatalf("verify id token: %v", err)
	}
	var c idClaims
	if err := idt.Claims(&c); err != nil {
		e.t.Fatal(err)
	}
	return idt, c
}

func TestDiscovery(t *testing.T) {
	e := newEnv(t, nil)
	prov, err := oidc.NewProvider(e.ctx(), e.issuer)
	if err != nil {
		t.Fatalf("go-oidc discovery: %v", err)
	}
	var m map[string]any
	if err := prov.Claims(&m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri", "introspection_endpoint",
		"revocation_endpoint", "end_session_endpoint", "pushed_authorization_request_endpoint", "registration_endpoint",
		"introspection_endpoint_auth_methods_supported"} {
		if _, ok := m[k]; !ok {
			t.Errorf("discovery lacks %s", k)
		}
	}
	if m["registration_endpoint"] != e.issuer+"/oauth2/register" {
		t.Errorf("registration_endpoint = %v", m["registration_endpoint"])
	}
	if got := toStrings(m["code_challenge_methods_supported"]); strings.Join(got, ",") != "S256" {
		t.Errorf("code_challenge_methods_supported = %v", got)
	}
	if got := toStrings(m["acr_values_supported"]); strings.Join(got, ",") != strings.Join(DefaultLadder().Values(), ",") {
		t.Errorf("acr_values_supported = %v", got)
	}
	if m["authorization_response_iss_parameter_supported"] != true || m["require_pushed_authorization_requests"] != false {
		t.Errorf("iss/par flags wrong: %v %v", m["authorization_response_iss_parameter_supported"], m["require_pushed_authorization_requests"])
	}
	if got := toStrings(m["token_endpoint_auth_methods_supported"]); strings.Join(got, ",") != "client_secret_basic,client_secret_post,private_key_jwt,none" {
		t.Errorf("token_endpoint_auth_methods_supported = %v", got)
	}
	for _, c := range []string{"acr", "amr", "auth_time"} {
		if !strings.Contains(strings.Join(toStrings(m["claims_supported"]), " "), c) {
			t.Errorf("claims_supported lacks %s", c)
		}
	}
	code, as := e.do(mustReq(t, http.MethodGet, e.issuer+PathASMetadata))
	if code != 200 || as["issuer"] != e.issuer {
		t.Errorf("RFC 8414 metadata: %d %v", code, as["issuer"])
	}
}

func toStrings(v any) []string {
	var out []string
	if a, ok := v.([]any); ok {
		for _, x := range a {
			s, _ := x.(string)
			out = append(out, s)
		}
	}
	return out
}

func mustReq(t testing.TB, method, u string) *http.Request {
	r, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCodeFlowPKCE(t *testing.T) {
	e := newEnv(t, nil)
	loginTime := e.ui.login.AuthTime
	tok := e.codeFlow("web", []string{"openid", "profile", "email", "offline_access"}, oidc.Nonce("nonce-abcdefgh"))
	if tok.RefreshToken == "" {
		t.Fatal("offline_access granted but no refresh token")
	}
	if v := tok.Extra("token_type"); !strings.EqualFold(v.(string), "bearer") {
		t.Errorf("token_type %v", v)
	}
	_, c := e.verifyIDToken(tok, "web")
	if c.Sub != testUser || c.ACR != ACRPassword || c.Nonce != "nonce-abcdefgh" {
		t.Errorf("id token claims %+v", c)
	}
	if c.AuthTime != loginTime.Unix() {
		t.Errorf("auth_time %d, want the login's %d", c.AuthTime, loginTime.Unix())
	}
	if a, _ := e.ui.calls(); a != 0 {
		t.Errorf("Authenticate called %d times for a satisfied login", a)
	}
	if _, n := e.ui.calls(); n != 1 {
		t.Errorf("consent asked %d times, want 1", n)
	}

	// Userinfo carries acr/amr/auth_time and the profile claims.
	req := mustReq(t, http.MethodGet, e.issuer+PathUserinfo)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	code, ui := e.do(req)
	if code != 200 || ui["sub"] != testUser || ui["acr"] != ACRPassword || ui["preferred_username"] != "alice" || ui["email"] != "alice@example.com" {
		t.Errorf("userinfo %d %v", code, ui)
	}

	// Refresh keeps acr/auth_time in the new ID token.
	conf := e.oauth2Config("web")
	tok2, err := conf.TokenSource(e.ctx(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if tok2.RefreshToken == tok.RefreshToken || tok2.RefreshToken == "" {
		t.Error("refresh token was not rotated")
	}
	_, c2 := e.verifyIDToken(tok2, "web")
	if c2.ACR != ACRPassword || c2.AuthTime != loginTime.Unix() {
		t.Errorf("refreshed id token %+v", c2)
	}

	// A second authorization for the same scopes reuses the consent.
	e.codeFlow("web", []string{"openid", "profile"})
	if _, n := e.ui.calls(); n != 1 {
		t.Errorf("consent asked again (%d) although remembered", n)
	}
}

func TestNoRefreshTokenWithoutOfflineAccess(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.codeFlow("web", []string{"openid"})
	if tok.RefreshToken != "" {
		t.Error("refresh token issued without offline_access")
	}
}

func TestRefreshReuseRevokesFamily(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.RefreshGracePeriod = -1 })
	tok := e.codeFlow("web", []string{"openid", "offline_access"})
	conf := e.oauth2Config("web")
	tok2, err := conf.TokenSource(e.ctx(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	_, err = conf.TokenSource(e.ctx(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	var re *oauth2.RetrieveError
	if !asRetrieve(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Fatalf("reuse: %v, want invalid_grant", err)
	}
	if _, err := conf.TokenSource(e.ctx(), &oauth2.Token{RefreshToken: tok2.RefreshToken}).Token(); err == nil {
		t.Fatal("the rotated refresh token still works after reuse was detected")
	}
	if m := e.introspect(tok2.AccessToken); m["active"] != false {
		t.Errorf("family access token still active: %v", m)
	}
}

func TestRefreshGracePeriod(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.RefreshGracePeriod = time.Minute })
	tok := e.codeFlow("web", []string{"openid", "offline_access"})
	conf := e.oauth2Config("web")
	if _, err := conf.TokenSource(e.ctx(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err != nil {
		t.Fatal(err)
	}
	// A second tab refreshing with the same token inside the grace period.
	if _, err := conf.TokenSource(e.ctx(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err != nil {
		t.Fatalf("refresh within grace: %v", err)
	}
}

func asRetrieve(err error, re **oauth2.RetrieveError) bool {
	r, ok := err.(*oauth2.RetrieveError)
	if ok {
		*re = r
	}
	return ok
}

// authCode runs the front channel only and returns the code and verifier.
func (e *env) authCode(clientID string, scopes []string) (code, verifier string) {
	e.t.Helper()
	conf := e.oauth2Config(clientID, scopes...)
	verifier = oauth2.GenerateVerifier()
	q := e.authorize(conf.AuthCodeURL("state-123456", oauth2.S256ChallengeOption(verifier)))
	if q.Get("code") == "" {
		e.t.Fatalf("no code: %v", q)
	}
	return q.Get("code"), verifier
}

func TestCodeReplayFails(t *testing.T) {
	e := newEnv(t, nil)
	code, verifier := e.authCode("web", []string{"openid"})
	conf := e.oauth2Config("web")
	tok, err := conf.Exchange(e.ctx(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	_, err = conf.Exchange(e.ctx(), code, oauth2.VerifierOption(verifier))
	var re *oauth2.RetrieveError
	if !asRetrieve(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Fatalf("replayed code: %v", err)
	}
	// RFC 6749 §4.1.2: tokens issued from a replayed code are revoked.
	if m := e.introspect(tok.AccessToken); m["active"] != false {
		t.Errorf("token from replayed code still active")
	}
}

func TestConcurrentCodeExchange(t *testing.T) {
	e := newEnv(t, nil)
	code, verifier := e.authCode("web", []string{"openid"})
	conf := e.oauth2Config("web")
	const n = 6
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, statuses := 0, []string{}
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := conf.Exchange(e.ctx(), code, oauth2.VerifierOption(verifier))
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				ok++
				return
			}
			var re *oauth2.RetrieveError
			if asRetrieve(err, &re) {
				statuses = append(statuses, re.ErrorCode)
				if re.Response.StatusCode >= 500 {
					t.Errorf("concurrent exchange got %d: %s", re.Response.StatusCode, re.Body)
				}
			} else {
				t.Errorf("exchange: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("%d successful exchanges of one code, want exactly 1 (errors %v)", ok, statuses)
	}
}

func TestIntrospectionCarriesAssurance(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.codeFlow("web", []string{"openid", "offline_access", "api"})
	m := e.introspect(tok.AccessToken)
	if m["active"] != true || m["sub"] != testUser || m["client_id"] != "web" || m["acr"] != ACRPassword || m["iss"] != e.issuer || m["token_type"] != "Bearer" {
		t.Fatalf("introspection %v", m)
	}
	if int64(m["auth_time"].(float64)) != e.ui.login.AuthTime.Unix() {
		t.Errorf("auth_time %v", m["auth_time"])
	}
	if amr := toStrings(m["amr"]); len(amr) != 1 || amr[0] != "pwd" {
		t.Errorf("amr %v", m["amr"])
	}
	if !strings.Contains(m["scope"].(string), "api") || m["exp"] == nil || m["iat"] == nil || m["aud"] == nil {
		t.Errorf("introspection members missing: %v", m)
	}
	// The refresh token introspects too, with its own expiry.
	r := e.introspect(tok.RefreshToken)
	if r["active"] != true || r["token_use"] != "refresh_token" || r["acr"] != ACRPassword {
		t.Errorf("refresh introspection %v", r)
	}
	// Also with client_secret_basic.
	code, b := e.post(PathIntrospect, url.Values{"token": {tok.AccessToken}}, basic("svc", e.secrets["svc"]))
	if code != 200 || b["active"] != true {
		t.Errorf("basic-auth introspection %d %v", code, b)
	}
	// After revocation (by its owner) the token is inactive.
	code, _ = e.post(PathRevoke, url.Values{"token": {tok.AccessToken}}, basic("web", e.secrets["web"]))
	if code != 200 {
		t.Fatalf("revoke: %d", code)
	}
	if m := e.introspect(tok.AccessToken); m["active"] != false {
		t.Errorf("revoked token active: %v", m)
	}
}

func TestRevokeOnlyOwnTokens(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.codeFlow("web", []string{"openid"})
	code, _ := e.post(PathRevoke, url.Values{"token": {tok.AccessToken}}, basic("svc", e.secrets["svc"]))
	if code == 200 {
		// RFC 7009 lets the server answer 200 or an error, but the token must survive.
		t.Log("foreign revocation answered 200")
	}
	if m := e.introspect(tok.AccessToken); m["active"] != true {
		t.Fatal("another client revoked web's token")
	}
}

func TestStepUpByACRValues(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.codeFlow("web", []string{"openid"}, oauth2.SetAuthURLParam("acr_values", ACRPhishingResist+" "+ACRHardware))
	a, _ := e.ui.calls()
	if a != 1 {
		t.Fatalf("Authenticate called %d times, want 1 (session is only %s)", a, ACRPassword)
	}
	p := e.ui.lastAuth()
	if p.Requirement.ACR != ACRPhishingResist || p.Requirement.PreferredACR != ACRPhishingResist {
		t.Errorf("requirement %+v: want weakest listed level phr", p.Requirement)
	}
	if !strings.HasPrefix(p.ResumeURL, PathAuthorizeResume+"?id=") {
		t.Errorf("resume url %q", p.ResumeURL)
	}
	_, c := e.verifyIDToken(tok, "web")
	if c.ACR != ACRPhishingResist {
		t.Errorf("id token acr %q, want the level reached (phr)", c.ACR)
	}
}

func TestACRValuesNeverSilentlyLower(t *testing.T) {
	e := newEnv(t, nil)
	// The user "signs in" but only reaches the password level.
	e.ui.nextLogin = func(Pending) *Login { return e.loginAt(ACRPassword, time.Now()) }
	conf := e.oauth2Config("web", "openid")
	q := e.authorize(conf.AuthCodeURL("state-123456", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
		oauth2.SetAuthURLParam("acr_values", ACRPhishingResist)))
	if q.Get("code") != "" || q.Get("error") != "unmet_authentication_requirements" {
		t.Fatalf("callback %v: a lower acr must never yield a code", q)
	}
	if q.Get("state") != "state-123456" || q.Get("iss") != e.issuer {
		t.Errorf("error redirect lacks state/iss: %v", q)
	}
}

func TestUnmetOutcome(t *testing.T) {
	e := newEnv(t, nil)
	e.ui.authOutcome = "unmet"
	conf := e.oauth2Config("web", "openid")
	q := e.authorize(conf.AuthCodeURL("state-123456", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
		oauth2.SetAuthURLParam("acr_values", ACRHardware)))
	if q.Get("error") != "unmet_authentication_requirements" || q.Get("iss") != e.issuer || q.Get("state") != "state-123456" {
		t.Fatalf("callback %v", q)
	}
}

func TestDeniedOutcome(t *testing.T) {
	e := newEnv(t, nil)
	e.ui.login = nil
	e.ui.authOutcome = "denied"
	conf := e.oauth2Config("web", "openid")
	q := e.authorize(conf.AuthCodeURL("state-123456", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if q.Get("error") != "access_denied" || q.Get("iss") != e.issuer {
		t.Fatalf("callback %v", q)
	}
}

func TestConsentDenied(t *testing.T) {
	e := newEnv(t, nil)
	e.ui.approve = false
	conf := e.oauth2Config("web", "openid", "profile")
	q := e.authorize(conf.AuthCodeURL("state-123456", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if q.Get("error") != "access_denied" {
		t.Fatalf("callback %v", q)
	}
}

func TestClientMinACR(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ClientMinACR = map[string]string{"web": ACRPasskey} })
	tok := e.codeFlow("web", []string{"openid"})
	if a, _ := e.ui.calls(); a != 1 || e.ui.lastAuth().Requirement.ACR != ACRPasskey {
		t.Fatalf("client minimum not enforced: %d calls", a)
	}
	if _, c := e.verifyIDToken(tok, "web"); c.ACR != ACRPasskey {
		t.Errorf("acr %q", c.ACR)
	}
}

func TestPromptNoneWithoutSession(t *testing.T) {
	e := newEnv(t, nil)
	e.ui.login = nil
	conf := e.oauth2Config("web", "openid")
	q := e.authorize(conf.AuthCodeURL("state-123456", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
		oauth2.SetAuthURLParam("prompt", "none")))
	if q.Get("error") != "login_required" || q.Get("iss") != e.issuer {
		t.Fatalf("callback %v", q)
	}
	if a, _ := e.ui.calls(); a != 0 {
		t.Error("prompt=none interacted with the user")
	}
}

func TestPromptNoneWithSession(t *testing.T) {
	e := newEnv(t, nil)
	e.codeFlow("web", []string{"openid", "profile"}) // remembers consent
	tok := e.codeFlow("web", []string{"openid", "profile"}, oauth2.SetAuthURLParam("prompt", "none"))
	if tok.AccessToken == "" {
		t.Fatal("no token")
	}
	// Consent missing for a new scope: consent_required.
	conf := e.oauth2Config("web", "openid", "email")
	q := e.authorize(conf.AuthCodeURL("state-123456", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "none")))
	if q.Get("error") != "consent_required" {
		t.Fatalf("callback %v", q)
	}
}

func TestMaxAge(t *testing.T) {
	e := newEnv(t, nil)
	e.ui.login = e.loginAt(ACRPassword, time.Now().Add(-10*time.Minute))
	tok := e.codeFlow("web", []string{"openid"}, oauth2.SetAuthURLParam("max_age", "60"))
	if a, _ := e.ui.calls(); a != 1 {
		t.Fatalf("max_age=60 with a 10-minute-old login: Authenticate called %d times", a)
	}
	if after := e.ui.lastAuth().Requirement.AuthenticatedAfter; time.Since(after) > 2*time.Minute {
		t.Errorf("AuthenticatedAfter %v", after)
	}
	_, c := e.verifyIDToken(tok, "web")
	if time.Since(time.Unix(c.AuthTime, 0)) > time.Minute {
		t.Errorf("auth_time %d not fresh", c.AuthTime)
	}
	// A fresh enough login passes without interaction.
	e.codeFlow("web", []string{"openid"}, oauth2.SetAuthURLParam("max_age", "3600"))
	if a, _ := e.ui.calls(); a != 1 {
		t.Errorf("fresh login re-authenticated (%d)", a)
	}
}

func TestPromptLogin(t *testing.T) {
	e := newEnv(t, nil)
	e.codeFlow("web", []string{"openid"}, oauth2.SetAuthURLParam("prompt", "login"))
	if a, _ := e.ui.calls(); a != 1 {
		t.Fatalf("prompt=login: Authenticate called %d times", a)
	}
}

func TestJWTAccessToken(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.codeFlow("jwtweb", []string{"openid", "api"})
	jws, err := josev4.ParseSigned(tok.AccessToken, []josev4.SignatureAlgorithm{josev4.ES256, josev4.RS256})
	if err != nil {
		t.Fatalf("access token is not a JWS: %v", err)
	}
	h := jws.Signatures[0].Protected
	if h.ExtraHeaders["typ"] != "at+jwt" {
		t.Errorf("typ %v, want at+jwt", h.ExtraHeaders["typ"])
	}
	set := e.jwks()
	keys := set.Key(h.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q not in JWKS", h.KeyID)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("verify against JWKS: %v", err)
	}
	var c map[string]any
	_ = json.Unmarshal(payload, &c)
	for _, k := range []string{"iss", "sub", "aud", "client_id", "scope", "jti", "acr", "amr", "auth_time", "exp", "iat"} {
		if _, ok := c[k]; !ok {
			t.Errorf("JWT access token lacks %s: %v", k, c)
		}
	}
	if c["iss"] != e.issuer || c["sub"] != testUser || c["client_id"] != "jwtweb" || c["acr"] != ACRPassword {
		t.Errorf("claims %v", c)
	}
	if m := e.introspect(tok.AccessToken); m["active"] != true || m["acr"] != ACRPassword || m["client_id"] != "jwtweb" {
		t.Errorf("JWT access token introspection %v", m)
	}
	// Revocation works for JWTs too (they are stored by signature).
	e.post(PathRevoke, url.Values{"token": {tok.AccessToken}}, basic("jwtweb", e.secrets["jwtweb"]))
	if m := e.introspect(tok.AccessToken); m["active"] != false {
		t.Error("revoked JWT still active")
	}
}

func (e *env) jwks() josev4.JSONWebKeySet {
	e.t.Helper()
	resp, err := e.srv.Client().Get(e.issuer + PathJWKS)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var set josev4.JSONWebKeySet
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &set); err != nil {
		e.t.Fatalf("jwks: %v", err)
	}
	return set
}

func TestKeyRotationKeepsOldKid(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.codeFlow("web", []string{"openid"})
	before := e.jwks()
	if len(before.Keys) != 1 {
		t.Fatalf("jwks has %d keys", len(before.Keys))
	}
	oldKid := before.Keys[0].KeyID
	info, err := e.p.Keys().Rotate(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	after := e.jwks()
	if len(after.Key(oldKid)) != 1 || len(after.Key(info.ID)) != 1 {
		t.Fatalf("after rotation JWKS kids %v, want old %s and new %s", kids(after), oldKid, info.ID)
	}
	// The old ID token still verifies; new tokens are signed by the new key.
	e.verifyIDToken(tok, "web")
	tok2 := e.codeFlow("web", []string{"openid"})
	e.verifyIDToken(tok2, "web")
	raw := tok2.Extra("id_token").(string)
	jws, _ := josev4.ParseSigned(raw, []josev4.SignatureAlgorithm{josev4.ES256})
	if jws.Signatures[0].Protected.KeyID != info.ID {
		t.Errorf("new token kid %s, want %s", jws.Signatures[0].Protected.KeyID, info.ID)
	}
	list, err := ListKeys(context.Background(), e.store, time.Now())
	if err != nil || len(list) != 2 {
		t.Fatalf("ListKeys: %v %v", list, err)
	}
	if !list[0].Active && !list[1].Active {
		t.Error("no active key listed")
	}
	// The CLI path works without a server and is picked up on refresh.
	if _, err := RotateKeys(context.Background(), e.store, Config{Issuer: e.issuer}); err != nil {
		t.Fatal(err)
	}
}

func kids(s josev4.JSONWebKeySet) []string {
	var out []string
	for _, k := range s.Keys {
		out = append(out, k.KeyID)
	}
	return out
}

func TestClientCredentials(t *testing.T) {
	e := newEnv(t, nil)
	cc := clientcredentials.Config{ClientID: "svc", ClientSecret: e.secrets["svc"], TokenURL: e.issuer + PathToken, Scopes: []string{"api.read"}}
	tok, err := cc.Token(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken != "" {
		t.Error("client_credentials issued a refresh token")
	}
	m := e.introspect(tok.AccessToken)
	if m["sub"] != "svc" || m["scope"] != "api.read" || m["acr"] != ACRClient || m["active"] != true {
		t.Errorf("introspection %v", m)
	}
	if amr := toStrings(m["amr"]); len(amr) != 1 || amr[0] != "client_secret_basic" {
		t.Errorf("amr %v", m["amr"])
	}
	// Unregistered scope is refused.
	cc.Scopes = []string{"admin"}
	if _, err := cc.Token(e.ctx()); err == nil {
		t.Error("unregistered scope granted")
	}
	// No scope: the registered ones.
	cc.Scopes = nil
	tok, err = cc.Token(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	if m := e.introspect(tok.AccessToken); m["scope"] != "api api.read" {
		t.Errorf("default scopes %v", m["scope"])
	}
}

type denyGate struct{}

func (denyGate) Evaluate(context.Context, GateRequest) (GateDecision, error) {
	return GateDecision{Deny: true, Reason: "test"}, nil
}

type stepUpGate struct{ acr string }

func (g stepUpGate) Evaluate(_ context.Context, r GateRequest) (GateDecision, error) {
	if r.GrantType != "authorization_code" {
		return GateDecision{Requirement: r.Requirement}, nil
	}
	return GateDecision{Requirement: Requirement{ACR: g.acr, AuthenticatedAfter: time.Now().Add(-time.Second * 30)}, Reason: "risky"}, nil
}

func TestGateHook(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Gate = stepUpGate{acr: ACRPhishingResist} })
	tok := e.codeFlow("web", []string{"openid"})
	if a, _ := e.ui.calls(); a != 1 || e.ui.lastAuth().Requirement.ACR != ACRPhishingResist {
		t.Fatalf("gate step-up not applied")
	}
	if _, c := e.verifyIDToken(tok, "web"); c.ACR != ACRPhishingResist {
		t.Errorf("acr %s", c.ACR)
	}

	d := newEnv(t, func(c *Config) { c.Gate = denyGate{} })
	conf := d.oauth2Config("web", "openid")
	q := d.authorize(conf.AuthCodeURL("state-123456", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if q.Get("error") != "access_denied" {
		t.Errorf("deny gate: %v", q)
	}
	cc := clientcredentials.Config{ClientID: "svc", ClientSecret: d.secrets["svc"], TokenURL: d.issuer + PathToken}
	if _, err := cc.Token(d.ctx()); err == nil {
		t.Error("deny gate let client_credentials through")
	}
}

func TestPAR(t *testing.T) {
	e := newEnv(t, nil)
	// The user must sign in: the resume path must not re-read the consumed request_uri.
	e.ui.login = nil
	verifier := oauth2.GenerateVerifier()
	sum := oauth2.S256ChallengeFromVerifier(verifier)
	code, m := e.post(PathPAR, url.Values{
		"response_type": {"code"}, "client_id": {"parweb"}, "redirect_uri": {e.cb}, "scope": {"openid"},
		"state": {"state-123456"}, "code_challenge": {sum}, "code_challenge_method": {"S256"},
	}, basic("parweb", e.secrets["parweb"]))
	if code != http.StatusCreated {
		t.Fatalf("PAR: %d %v", code, m)
	}
	uri, _ := m["request_uri"].(string)
	q := e.authorize(e.issuer + PathAuthorize + "?" + url.Values{"client_id": {"parweb"}, "request_uri": {uri}}.Encode())
	if q.Get("code") == "" || q.Get("state") != "state-123456" {
		t.Fatalf("PAR authorize: %v", q)
	}
	conf := e.oauth2Config("parweb")
	tok, err := conf.Exchange(e.ctx(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	e.verifyIDToken(tok, "parweb")
	// request_uri is one-time.
	res := e.authorizeRaw(e.issuer + PathAuthorize + "?" + url.Values{"client_id": {"parweb"}, "request_uri": {uri}}.Encode())
	if res.status < 400 || res.status >= 500 {
		t.Errorf("reused request_uri: %d %s", res.status, res.body)
	}
	// A PAR-only client cannot use a plain authorization request.
	conf = e.oauth2Config("parweb", "openid")
	cb := e.authorize(conf.AuthCodeURL("state-123456", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if cb.Get("error") != "invalid_request" {
		t.Errorf("non-PAR request for RequirePAR client: %v", cb)
	}
}

type rawResult struct {
	status int
	loc    string
	body   string
}

func (e *env) authorizeRaw(u string) rawResult {
	e.t.Helper()
	resp, err := e.browser().Get(u)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return rawResult{resp.StatusCode, resp.Header.Get("Location"), string(b)}
}

func TestLogout(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.codeFlow("web", []string{"openid"})
	hint := tok.Extra("id_token").(string)
	res := e.authorizeRaw(e.issuer + PathLogout + "?" + url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {e.issuer + "/bye"}, "state": {"xyz"}}.Encode())
	if res.status != http.StatusSeeOther || res.loc != e.issuer+"/bye?state=xyz" {
		t.Fatalf("logout: %d %q %s", res.status, res.loc, res.body)
	}
	if len(e.ui.logouts) != 1 {
		t.Fatal("Logout not called")
	}
	for _, bad := range []url.Values{
		{"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://evil.example/"}},
		{"post_logout_redirect_uri": {e.issuer + "/bye"}},
		{"id_token_hint": {"not.a.jwt"}},
		{"id_token_hint": {hint}, "client_id": {"spa"}},
	} {
		res := e.authorizeRaw(e.issuer + PathLogout + "?" + bad.Encode())
		if res.status != http.StatusBadRequest {
			t.Errorf("logout %v: %d, want 400", bad, res.status)
		}
	}
	if len(e.ui.logouts) != 1 {
		t.Error("Logout called for an invalid request")
	}
}

func TestUserinfoErrors(t *testing.T) {
	e := newEnv(t, nil)
	code, _ := e.do(mustReq(t, http.MethodGet, e.issuer+PathUserinfo))
	if code != 401 {
		t.Errorf("no token: %d", code)
	}
	cc := clientcredentials.Config{ClientID: "svc", ClientSecret: e.secrets["svc"], TokenURL: e.issuer + PathToken}
	tok, err := cc.Token(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	req := mustReq(t, http.MethodGet, e.issuer+PathUserinfo)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	if code, _ := e.do(req); code != 403 {
		t.Errorf("token without openid: %d", code)
	}
}

func TestRequestedAtCarried(t *testing.T) {
	// The resumed request keeps its first-received time: prompt=login plus a
	// sign-in during the pause must still pass fosite's own check.
	e := newEnv(t, nil)
	tok := e.codeFlow("web", []string{"openid"}, oauth2.SetAuthURLParam("prompt", "login"), oauth2.SetAuthURLParam("max_age", "0"))
	e.verifyIDToken(tok, "web")
}

func TestTokenResponseNotCached(t *testing.T) {
	e := newEnv(t, nil)
	for _, auth := range []func(*http.Request){basic("svc", e.secrets["svc"]), basic("svc", "wrong")} {
		req := formReq(e, PathToken, url.Values{"grant_type": {"client_credentials"}}, auth)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Pragma") != "no-cache" {
			t.Errorf("status %d: Cache-Control %q Pragma %q", resp.StatusCode, resp.Header.Get("Cache-Control"), resp.Header.Get("Pragma"))
		}
	}
}

// consentPauser pauses for consent without answering, so the test can
// resume from another browser session.
type consentPauser struct {
	*fakeUI
	pending chan Pending
}

func (c consentPauser) Consent(w http.ResponseWriter, r *http.Request, p Pending) {
	c.pending <- p
	w.WriteHeader(http.StatusOK)
}

func TestPausedRequestBoundToSession(t *testing.T) {
	e := newEnv(t, nil)
	cp := consentPauser{fakeUI: e.ui, pending: make(chan Pending, 1)}
	e.p.ui = cp
	conf := e.oauth2Config("web", "openid", "profile")
	res := e.authorizeRaw(conf.AuthCodeURL("state-123456", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if res.status != http.StatusOK {
		t.Fatalf("expected the consent page, got %d %s", res.status, res.loc)
	}
	p := <-cp.pending
	// Another browser session (same user, other session) resumes the URL.
	other := e.loginAt(ACRPassword, time.Now())
	other.SessionID = "sess-2"
	e.ui.login = other
	e.ui.nextLogin = nil
	e.ui.authOutcome = "denied"
	res = e.authorizeRaw(e.issuer + p.ResumeURL)
	if a, _ := e.ui.calls(); a != 1 {
		t.Fatalf("a foreign session resumed a paused request without re-authenticating (auth calls %d, status %d)", a, res.status)
	}
}
