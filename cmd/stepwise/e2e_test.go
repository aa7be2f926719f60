package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/net/html"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/stepwise-id/stepwise/oauth"
	"github.com/stepwise-id/stepwise/oauth/resource"
	"github.com/stepwise-id/stepwise/storage"
	"github.com/stepwise-id/stepwise/storage/storagetest"
	"github.com/stepwise-id/stepwise/web/password"
)

// e2e is a fully wired Stepwise server on loopback, as `stepwise serve`
// builds it, with one user and one confidential client.
type e2e struct {
	t        *testing.T
	issuer   string
	store    storage.Storage
	srv      *server
	client   oauth.Registered
	redirect string
	username string
	password string
}

func startE2E(t *testing.T, store storage.Storage, fc fileConfig) *e2e {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// WebAuthn needs a domain, so the issuer is localhost, as in DESIGN.md.
	issuer := "http://localhost:" + portOf(ln.Addr())
	var logOut io.Writer = io.Discard
	if os.Getenv("STEPWISE_TEST_LOG") != "" {
		logOut = os.Stderr // to debug a failing end-to-end test
	}
	logger := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, err := newServer(t.Context(), store, fc, issuer, logger)
	if err != nil {
		t.Fatalf("newServer: %v", err)
	}
	hs := httptest.NewUnstartedServer(srv.handler)
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	t.Cleanup(hs.Close)

	e := &e2e{t: t, issuer: issuer, store: store, srv: srv, redirect: "http://127.0.0.1:9/callback",
		username: "alice", password: "correct horse battery staple"}
	hash, err := password.Hash(e.password)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := store.CreateUser(t.Context(), storage.User{ID: "user-alice", Username: e.username,
		Email: "alice@example.com", PasswordHash: hash, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	e.client, err = srv.registry.Create(t.Context(), oauth.Metadata{
		ClientName:             "Example RP",
		RedirectURIs:           []string{e.redirect},
		GrantTypes:             []string{"authorization_code", "refresh_token", "client_credentials"},
		Scope:                  oauth.ScopeList{"openid", "offline_access", "profile", "email", "api.read"},
		PostLogoutRedirectURIs: []string{"http://127.0.0.1:9/bye"},
	})
	if err != nil {
		t.Fatalf("create client: %v", err)
	}
	return e
}

func portOf(a net.Addr) string {
	_, port, _ := net.SplitHostPort(a.String())
	return port
}

// browser is a cookie-keeping HTTP client that stops at the client's
// redirect URI, as a browser would hand the code to the RP.
func (e *e2e) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{
		Jar:     jar,
		Timeout: 10 * time.Second,
		CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), "http://127.0.0.1:9/") {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
}

func (e *e2e) oauth2Config(ctx context.Context) (*oauth2.Config, *oidc.IDTokenVerifier) {
	e.t.Helper()
	p, err := oidc.NewProvider(ctx, e.issuer)
	if err != nil {
		e.t.Fatalf("discovery: %v", err)
	}
	return &oauth2.Config{
		ClientID:     e.client.ClientID,
		ClientSecret: e.client.ClientSecret,
		Endpoint:     p.Endpoint(),
		RedirectURL:  e.redirect,
		Scopes:       []string{oidc.ScopeOpenID, oidc.ScopeOfflineAccess, "profile", "email"},
	}, p.Verifier(&oidc.Config{ClientID: e.client.ClientID})
}

// page is a fetched HTML page.
type page struct {
	url  *url.URL
	body string
	resp *http.Response
}

func get(t *testing.T, c *http.Client, u string) page {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return readPage(t, resp)
}

func readPage(t *testing.T, resp *http.Response) page {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return page{url: resp.Request.URL, body: string(b), resp: resp}
}

// submit posts the page's form whose action is action, with its hidden
// inputs plus fields, from the issuer's origin as a browser would.
func (e *e2e) submit(c *http.Client, p page, action string, fields url.Values) page {
	e.t.Helper()
	form := hiddenInputs(e.t, p.body, action)
	for k, v := range fields {
		form[k] = v
	}
	req, _ := http.NewRequest(http.MethodPost, e.issuer+action, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", e.issuer)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("POST %s: %v", action, err)
	}
	return readPage(e.t, resp)
}

// hiddenInputs returns the hidden inputs of the first form posting to action.
func hiddenInputs(t *testing.T, body, action string) url.Values {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	attr := func(n *html.Node, k string) string {
		for _, a := range n.Attr {
			if a.Key == k {
				return a.Val
			}
		}
		return ""
	}
	var form *html.Node
	for n := range doc.Descendants() {
		if n.Type == html.ElementNode && n.Data == "form" && attr(n, "action") == action {
			form = n
			break
		}
	}
	if form == nil {
		t.Fatalf("no form posting to %s in page:\n%s", action, body)
	}
	v := url.Values{}
	for n := range form.Descendants() {
		if n.Type == html.ElementNode && n.Data == "input" && attr(n, "type") == "hidden" {
			v.Set(attr(n, "name"), attr(n, "value"))
		}
	}
	return v
}

// codeFrom returns the code and checks state and iss on a redirect to the RP.
func (e *e2e) codeFrom(p page, state string) string {
	e.t.Helper()
	if p.resp.StatusCode/100 != 3 {
		e.t.Fatalf("expected a redirect to the client, got %d at %s:\n%s", p.resp.StatusCode, p.url, p.body)
	}
	loc, err := url.Parse(p.resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), e.redirect) {
		e.t.Fatalf("redirect to %q, want the client's redirect URI", p.resp.Header.Get("Location"))
	}
	q := loc.Query()
	if q.Get("error") != "" {
		e.t.Fatalf("authorization error %s: %s", q.Get("error"), q.Get("error_description"))
	}
	if q.Get("state") != state {
		e.t.Fatalf("state = %q, want %q", q.Get("state"), state)
	}
	if q.Get("iss") != e.issuer {
		e.t.Fatalf("iss = %q, want %q (RFC 9207)", q.Get("iss"), e.issuer)
	}
	return q.Get("code")
}

// login drives the sign-in and consent pages for an authorization URL and
// returns the page that redirects to the client.
func (e *e2e) login(c *http.Client, authURL string) page {
	e.t.Helper()
	p := get(e.t, c, authURL)
	if p.url.Path != "/login" {
		e.t.Fatalf("authorize sent the browser to %s, want /login", p.url)
	}
	p = e.submit(c, p, "/login", url.Values{"username": {e.username}, "password": {e.password}})
	if p.url.Path == "/consent" {
		p = e.submit(c, p, "/consent", url.Values{"decision": {"allow"}})
	}
	return p
}

func randomString(t *testing.T) string {
	t.Helper()
	return rand.Text()
}

func introspect(t *testing.T, e *e2e, token string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth2/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(e.client.ClientID), url.QueryEscape(e.client.ClientSecret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("introspect: %d %s", resp.StatusCode, b)
	}
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestEndToEndCodeFlow(t *testing.T) {
	storagetest.ForEach(t, func(t *testing.T, store storage.Storage) {
		// No refresh grace period, so reuse is detected at once.
		e := startE2E(t, store, fileConfig{Tokens: tokenConfig{RefreshGracePeriod: duration(-1)}})
		ctx := t.Context()
		cfg, verifier := e.oauth2Config(ctx)
		browser := e.browser()

		state, nonce, pkce := randomString(t), randomString(t), oauth2.GenerateVerifier()
		before := time.Now().Add(-time.Second).Truncate(time.Second)
		p := e.login(browser, cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(pkce), oidc.Nonce(nonce)))
		code := e.codeFrom(p, state)

		tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(pkce))
		if err != nil {
			t.Fatalf("exchange: %v", err)
		}
		rawID, _ := tok.Extra("id_token").(string)
		idt, err := verifier.Verify(ctx, rawID)
		if err != nil {
			t.Fatalf("verify ID token: %v", err)
		}
		var claims struct {
			ACR      string   `json:"acr"`
			AMR      []string `json:"amr"`
			AuthTime int64    `json:"auth_time"`
			Nonce    string   `json:"nonce"`
		}
		if err := idt.Claims(&claims); err != nil {
			t.Fatal(err)
		}
		if idt.Subject != "user-alice" || claims.ACR != oauth.ACRPassword || !slices.Equal(claims.AMR, []string{"pwd"}) || claims.Nonce != nonce {
			t.Fatalf("ID token sub=%q acr=%q amr=%v nonce ok=%t", idt.Subject, claims.ACR, claims.AMR, claims.Nonce == nonce)
		}
		if claims.AuthTime < before.Unix() || claims.AuthTime > time.Now().Unix() {
			t.Fatalf("auth_time %d is not the login time", claims.AuthTime)
		}

		t.Run("introspection carries the session's assurance", func(t *testing.T) {
			m := introspect(t, e, tok.AccessToken)
			if m["active"] != true || m["sub"] != "user-alice" || m["acr"] != oauth.ACRPassword || m["client_id"] != e.client.ClientID {
				t.Fatalf("introspection: %v", m)
			}
			if at, _ := m["auth_time"].(float64); int64(at) != claims.AuthTime {
				t.Fatalf("introspection auth_time %v, ID token %d", m["auth_time"], claims.AuthTime)
			}
			if m["iss"] != e.issuer || m["token_type"] == nil {
				t.Fatalf("introspection lacks iss/token_type: %v", m)
			}
		})

		t.Run("userinfo", func(t *testing.T) {
			p, _ := oidc.NewProvider(ctx, e.issuer)
			ui, err := p.UserInfo(ctx, oauth2.StaticTokenSource(tok))
			if err != nil {
				t.Fatalf("userinfo: %v", err)
			}
			if ui.Subject != "user-alice" || ui.Email != "alice@example.com" {
				t.Fatalf("userinfo sub=%q email=%q", ui.Subject, ui.Email)
			}
		})

		t.Run("refresh rotates and reuse revokes the family", func(t *testing.T) {
			old := &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}
			fresh, err := cfg.TokenSource(ctx, old).Token()
			if err != nil {
				t.Fatalf("refresh: %v", err)
			}
			if fresh.RefreshToken == "" || fresh.RefreshToken == tok.RefreshToken {
				t.Fatal("refresh token was not rotated")
			}
			if id, _ := fresh.Extra("id_token").(string); id != "" {
				if _, err := verifier.Verify(ctx, id); err != nil {
					t.Fatalf("refreshed ID token: %v", err)
				}
			}
			if _, err := cfg.TokenSource(ctx, old).Token(); err == nil {
				t.Fatal("reused refresh token was accepted")
			}
			if _, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: fresh.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token(); err == nil {
				t.Fatal("the family survived reuse of an old refresh token")
			}
			if m := introspect(t, e, fresh.AccessToken); m["active"] != false {
				t.Fatalf("access token of a revoked family is still active: %v", m)
			}
		})

		t.Run("acr_values above the session is never answered with a lower acr", func(t *testing.T) {
			state := randomString(t)
			u := cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(pkce), oauth2.SetAuthURLParam("acr_values", "phr"))
			p := get(t, browser, u)
			if p.url.Path != "/login" {
				t.Fatalf("acr_values=phr with a password session went to %s (status %d), want the sign-in page", p.url, p.resp.StatusCode)
			}
			if !strings.Contains(p.body, `data-test="error"`) && !strings.Contains(strings.ToLower(p.body), "passkey") {
				t.Fatalf("sign-in page does not say a passkey is needed:\n%s", p.body)
			}
			// Giving up sends the client unmet_authentication_requirements.
			p = e.submit(browser, p, "/login", url.Values{"action": {"cancel"}})
			loc, _ := url.Parse(p.resp.Header.Get("Location"))
			if got := loc.Query().Get("error"); got != "unmet_authentication_requirements" {
				t.Fatalf("after cancel: error=%q (location %s)", got, loc)
			}
		})

		t.Run("consent is remembered", func(t *testing.T) {
			state := randomString(t)
			p := get(t, browser, cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(pkce)))
			if code := e.codeFrom(p, state); code == "" {
				t.Fatal("no code")
			}
		})

		t.Run("client_credentials", func(t *testing.T) {
			cc := clientcredentials.Config{ClientID: e.client.ClientID, ClientSecret: e.client.ClientSecret,
				TokenURL: cfg.Endpoint.TokenURL, Scopes: []string{"api.read"}}
			ct, err := cc.Token(ctx)
			if err != nil {
				t.Fatalf("client_credentials: %v", err)
			}
			if m := introspect(t, e, ct.AccessToken); m["active"] != true || m["scope"] != "api.read" || m["sub"] != e.client.ClientID {
				t.Fatalf("introspection of a machine token: %v", m)
			}
			cc.Scopes = []string{"admin"}
			if _, err := cc.Token(ctx); err == nil {
				t.Fatal("a scope the client is not registered for was granted")
			}
		})
		t.Run("replayed code fails and revokes its tokens", func(t *testing.T) {
			state, pkce := randomString(t), oauth2.GenerateVerifier()
			code := e.codeFrom(get(t, browser, cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(pkce))), state)
			tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(pkce))
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			_, err = cfg.Exchange(ctx, code, oauth2.VerifierOption(pkce))
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
				t.Fatalf("second exchange: %v, want invalid_grant", err)
			}
			if m := introspect(t, e, tok.AccessToken); m["active"] != false {
				t.Fatalf("access token survived a replayed code: %v", m)
			}
		})
	})
}

func TestEndToEndPromptNoneWithoutSession(t *testing.T) {
	e := startE2E(t, storagetest.SQLite(t), fileConfig{})
	cfg, _ := e.oauth2Config(t.Context())
	state := randomString(t)
	p := get(t, e.browser(), cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
		oauth2.SetAuthURLParam("prompt", "none")))
	loc, err := url.Parse(p.resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("error") != "login_required" || loc.Query().Get("state") != state {
		t.Fatalf("prompt=none without a session: status %d location %q", p.resp.StatusCode, p.resp.Header.Get("Location"))
	}
}

// signIn runs the whole code flow for the test user and returns the tokens.
func (e *e2e) signIn(ctx context.Context, cfg *oauth2.Config, browser *http.Client, opts ...oauth2.AuthCodeOption) *oauth2.Token {
	e.t.Helper()
	state, pkce := randomString(e.t), oauth2.GenerateVerifier()
	code := e.codeFrom(e.login(browser, cfg.AuthCodeURL(state, append(opts, oauth2.S256ChallengeOption(pkce))...)), state)
	tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(pkce))
	if err != nil {
		e.t.Fatalf("exchange: %v", err)
	}
	return tok
}

func TestEndToEndGatewayCheck(t *testing.T) {
	fc := fileConfig{Routes: []resource.RouteConfig{
		{Match: "POST /payments/{rest...}", Scopes: []string{"payments:write"}, ACR: "phr", MaxAge: 300},
		{Match: "GET /reports/", Scopes: []string{"reports:read"}},
	}}
	storagetest.ForEach(t, func(t *testing.T, store storage.Storage) {
		e := startE2E(t, store, fc)
		ctx := t.Context()
		if _, err := e.srv.registry.Update(ctx, e.client.ClientID, withScopes(e.client.Metadata, "payments:write")); err != nil {
			t.Fatal(err)
		}
		cfg, _ := e.oauth2Config(ctx)
		cfg.Scopes = append(cfg.Scopes, "payments:write")
		tok := e.signIn(ctx, cfg, e.browser())

		check := func(method, uri, token string) *http.Response {
			req, _ := http.NewRequest(http.MethodGet, e.issuer+"/gateway/check", nil)
			req.Header.Set("X-Original-Method", method)
			req.Header.Set("X-Original-URI", uri)
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp
		}
		cases := []struct {
			name, method, uri, token string
			status                   int
			header, want             string
		}{
			{"unrouted path needs only a valid token", "GET", "/profile", tok.AccessToken, 200, "X-Stepwise-Acr", oauth.ACRPassword},
			{"identity is passed upstream", "GET", "/profile", tok.AccessToken, 200, "X-Stepwise-Subject", "user-alice"},
			{"password session is told to step up", "POST", "/payments/42", tok.AccessToken, 401, "WWW-Authenticate",
				`Bearer error="insufficient_user_authentication", error_description="A stronger authentication is required", acr_values="phr", max_age=300`},
			{"missing scope", "GET", "/reports/q3", tok.AccessToken, 403, "WWW-Authenticate", `scope="reports:read"`},
			{"no token", "GET", "/profile", "", 401, "WWW-Authenticate", "Bearer"},
			{"bad token", "GET", "/profile", "nope", 401, "WWW-Authenticate", `error="invalid_token"`},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				resp := check(tc.method, tc.uri, tc.token)
				if resp.StatusCode != tc.status || !strings.Contains(resp.Header.Get(tc.header), tc.want) {
					t.Fatalf("%s %s: %d %s=%q, want %d containing %q", tc.method, tc.uri, resp.StatusCode,
						tc.header, resp.Header.Get(tc.header), tc.status, tc.want)
				}
			})
		}
		t.Run("revocation applies to the next check", func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, e.issuer+"/oauth2/revoke", strings.NewReader(url.Values{"token": {tok.AccessToken}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(e.client.ClientID, e.client.ClientSecret)
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("revoke: %v %v", err, resp)
			}
			resp.Body.Close()
			if resp := check("GET", "/profile", tok.AccessToken); resp.StatusCode != 401 {
				t.Fatalf("revoked token passed the gateway: %d", resp.StatusCode)
			}
		})
	})
}

func withScopes(m oauth.Metadata, extra ...string) oauth.Metadata {
	m.Scope = append(slices.Clone(m.Scope), extra...)
	return m
}
