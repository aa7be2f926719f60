package web

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/stepwise-id/stepwise/oauth"
	"github.com/stepwise-id/stepwise/storage"
)

// TestOAuthFlowWithProvider runs the real oauth provider with this package
// as its Interaction and drives it with golang.org/x/oauth2: sign-in and
// consent yield a code that exchanges for tokens; prompt=login asks for the
// password again; acr_values=phr cannot be met by a password, and cancelling
// gives the client unmet_authentication_requirements.
func TestOAuthFlowWithProvider(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	srv := httptest.NewUnstartedServer(nil)
	issuer := "http://" + srv.Listener.Addr().String()
	ws, err := New(Config{Issuer: issuer, CookieKeys: []CookieKey{{HashKey: []byte(strings.Repeat("k", 32))}}}, e.store, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := oauth.New(oauth.Config{Issuer: issuer}, e.store, ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	p.Register(mux)
	mux.Handle("/", ws.Handler())
	srv.Config.Handler = ws.Middleware(mux)
	srv.Start()
	t.Cleanup(srv.Close)

	const redirect = "https://app.example.com/cb"
	if err := e.store.CreateClient(ctx, storage.Client{
		ID: "spa", Name: "The SPA", RedirectURIs: []string{redirect},
		PostLogoutRedirectURIs: []string{"https://app.example.com/bye"},
		GrantTypes:             []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
		Scopes: []string{"openid", "profile"}, TokenEndpointAuthMethod: "none",
		CreatedAt: time.Now(), UpdatedAt: time.Now(),
	}); err != nil {
		t.Fatal(err)
	}
	cfg := oauth2.Config{
		ClientID: "spa", RedirectURL: redirect, Scopes: []string{"openid", "profile"},
		Endpoint: oauth2.Endpoint{AuthURL: issuer + "/oauth2/authorize", TokenURL: issuer + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams},
	}
	verifier := oauth2.GenerateVerifier()
	authURL := func(state string, extra ...oauth2.AuthCodeOption) string {
		opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", "n-"+state)}, extra...)
		return cfg.AuthCodeURL(state, opts...)
	}

	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	var landed *url.URL // where the browser reached the client
	hc := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Host == "app.example.com" {
			landed = req.URL
			return http.ErrUseLastResponse
		}
		return nil
	}}
	// visit follows redirects and returns the final same-origin URL and body.
	visit := func(method, target string, form url.Values) (*url.URL, string) {
		t.Helper()
		landed = nil
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequest(method, target, body)
		if err != nil {
			t.Fatal(err)
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Sec-Fetch-Site", "same-origin")
		}
		res, err := hc.Do(req)
		if err != nil && !errors.Is(err, http.ErrUseLastResponse) {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.Request.URL, string(b)
	}
	login := func(at *url.URL) (*url.URL, string) {
		t.Helper()
		return visit(http.MethodPost, issuer+"/login", url.Values{"req": {at.Query().Get("req")}, "username": {"alice"}, "password": {testPassword}})
	}

	at, _ := visit(http.MethodGet, authURL("state-one-123"), nil)
	if at.Path != "/login" {
		t.Fatalf("authorize went to %s, want /login", at)
	}
	at, body := login(at)
	if landed != nil || at.Path != "/consent" || !strings.Contains(body, `data-test="consent-allow"`) {
		t.Fatalf("after sign-in: at %s, landed %v; want the consent page", at, landed)
	}
	visit(http.MethodPost, issuer+"/consent", url.Values{"req": {at.Query().Get("req")}, "decision": {"allow"}})
	if landed == nil || landed.Query().Get("code") == "" {
		t.Fatalf("no code after consent: %v", landed)
	}
	tok, err := cfg.Exchange(ctx, landed.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	idToken, _ := tok.Extra("id_token").(string)
	if idToken == "" {
		t.Fatal("no id_token")
	}

	// prompt=login: the password is asked again even though the session
	// and consent would do.
	at, _ = visit(http.MethodGet, authURL("state-three-1", oauth2.SetAuthURLParam("prompt", "login")), nil)
	if at.Path != "/login" {
		t.Fatalf("prompt=login went to %s", at)
	}
	login(at)
	if landed == nil || landed.Query().Get("code") == "" {
		t.Fatalf("prompt=login: no code: %v", landed)
	}

	// acr_values=phr: a password cannot do; cancel records "unmet".
	at, body = visit(http.MethodGet, authURL("state-four-12", oauth2.SetAuthURLParam("acr_values", "phr")), nil)
	if at.Path != "/login" || !hasErrorMarker(body) || strings.Contains(body, `data-test="password"`) {
		t.Fatalf("acr_values=phr: at %s", at)
	}
	visit(http.MethodPost, issuer+"/login", url.Values{"req": {at.Query().Get("req")}, "action": {"cancel"}})
	if landed == nil || landed.Query().Get("error") != "unmet_authentication_requirements" {
		t.Fatalf("cancel: %v", landed)
	}

	// RP-initiated logout: a confirmation page, then the signed redirect.
	logoutURL := issuer + "/oauth2/logout?" + url.Values{
		"id_token_hint": {idToken}, "post_logout_redirect_uri": {"https://app.example.com/bye"}, "state": {"bye-state"},
	}.Encode()
	at, body = visit(http.MethodGet, logoutURL, nil)
	m := regexp.MustCompile(`name="state" value="([^"]+)"`).FindStringSubmatch(body)
	if landed != nil || !strings.Contains(body, `data-test="logout"`) || m == nil {
		t.Fatalf("end-session: at %s, landed %v, no confirmation", at, landed)
	}
	visit(http.MethodPost, issuer+"/logout", url.Values{"state": {m[1]}})
	if landed == nil || landed.Path != "/bye" || landed.Query().Get("state") != "bye-state" {
		t.Fatalf("after logout: %v", landed)
	}
	at, _ = visit(http.MethodGet, authURL("state-five-12"), nil)
	if at.Path != "/login" {
		t.Errorf("after logout, authorize went to %s, want /login", at)
	}
}
