package oauth

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/stepwise-id/stepwise/storage"
	"github.com/stepwise-id/stepwise/storage/storagetest"
)

// fakeUI is a test double for the browser-facing layer. It returns a
// configurable login, records every hand-over, and drives the resume path
// the way the web package will: sign in (or record an outcome), then send
// the browser to ResumeURL.
type fakeUI struct {
	store storage.Storage

	mu sync.Mutex
	// login is what CurrentLogin returns.
	login *Login
	// nextLogin becomes the login when Authenticate is called; nil means the
	// user cannot sign in and the outcome "unmet" is recorded instead.
	nextLogin func(Pending) *Login
	// authOutcome, when set, is recorded instead of signing in.
	authOutcome string
	// approve decides consent.
	approve bool

	authCalls    []Pending
	consentCalls []Pending
	logouts      []LogoutRequest
}

func (f *fakeUI) CurrentLogin(*http.Request) (*Login, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.login == nil {
		return nil, nil
	}
	l := *f.login
	return &l, nil
}

func (f *fakeUI) Authenticate(w http.ResponseWriter, r *http.Request, p Pending) {
	f.mu.Lock()
	f.authCalls = append(f.authCalls, p)
	outcome, next := f.authOutcome, f.nextLogin
	f.mu.Unlock()
	if outcome == "" && next == nil {
		outcome = "unmet"
	}
	if outcome != "" {
		f.setOutcome(r.Context(), p.ID, outcome)
	} else {
		l := next(p)
		f.mu.Lock()
		f.login = l
		f.mu.Unlock()
	}
	http.Redirect(w, r, p.ResumeURL, http.StatusSeeOther)
}

func (f *fakeUI) Consent(w http.ResponseWriter, r *http.Request, p Pending) {
	f.mu.Lock()
	f.consentCalls = append(f.consentCalls, p)
	approve, login := f.approve, f.login
	f.mu.Unlock()
	if approve {
		err := f.store.PutConsent(r.Context(), storage.Consent{UserID: login.Subject, ClientID: p.ClientID, Scopes: p.Scopes, GrantedAt: time.Now()})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
	} else {
		f.setOutcome(r.Context(), p.ID, "denied")
	}
	http.Redirect(w, r, p.ResumeURL, http.StatusSeeOther)
}

func (f *fakeUI) Logout(w http.ResponseWriter, r *http.Request, lr LogoutRequest) {
	f.mu.Lock()
	f.logouts = append(f.logouts, lr)
	f.mu.Unlock()
	if lr.RedirectURI != "" {
		http.Redirect(w, r, lr.RedirectURI, http.StatusSeeOther)
		return
	}
	_, _ = io.WriteString(w, "signed out")
}

func (f *fakeUI) setOutcome(ctx context.Context, id, outcome string) {
	_ = f.store.UpdateAuthRequest(ctx, id, func(a storage.AuthRequest) (storage.AuthRequest, error) {
		a.Outcome = outcome
		return a, nil
	})
}

func (f *fakeUI) calls() (auth, consent int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.authCalls), len(f.consentCalls)
}

func (f *fakeUI) lastAuth() Pending {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.authCalls[len(f.authCalls)-1]
}

// env is a running provider behind httptest with a user and clients.
type env struct {
	t       testing.TB
	store   storage.Storage
	p       *Provider
	srv     *httptest.Server
	ui      *fakeUI
	issuer  string
	cb      string // redirect URI of the web clients
	secrets map[string]string
}

const testUser = "user-1"

func newEnv(t testing.TB, mod func(*Config)) *env {
	t.Helper()
	return newEnvOn(t, storagetest.SQLite(t), mod)
}

// newEnvOn builds the environment on a given store.
func newEnvOn(t testing.TB, store storage.Storage, mod func(*Config)) *env {
	t.Helper()
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	// WebAuthn needs a domain: use localhost, as the real deployment does.
	issuer := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	ui := &fakeUI{store: store, approve: true}
	cfg := Config{Issuer: issuer}
	if mod != nil {
		mod(&cfg)
	}
	p, err := New(cfg, store, ui, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h = p.Handler()
	e := &env{t: t, store: store, p: p, srv: srv, ui: ui, issuer: issuer, cb: issuer + "/cb", secrets: map[string]string{}}
	ctx := context.Background()
	if err := store.CreateUser(ctx, storage.User{ID: testUser, Username: "alice", Email: "alice@example.com", DisplayName: "Alice", CreatedAt: time.Now(), UpdatedAt: time.Now()}); err != nil {
		t.Fatalf("create user: %v", err)
	}
	e.ui.login = e.loginAt(ACRPassword, time.Now().Add(-time.Minute))
	e.ui.nextLogin = func(p Pending) *Login {
		acr := p.Requirement.PreferredACR
		if acr == "" {
			acr = p.Requirement.ACR
		}
		if acr == "" {
			acr = ACRPassword
		}
		return e.loginAt(acr, time.Now())
	}
	e.addClient(storage.Client{ID: "web", GrantTypes: []string{"authorization_code", "refresh_token"},
		Scopes: []string{"openid", "profile", "email", "offline_access", "api"}, TokenEndpointAuthMethod: "client_secret_basic",
		PostLogoutRedirectURIs: []string{issuer + "/bye"}})
	e.addClient(storage.Client{ID: "spa", GrantTypes: []string{"authorization_code", "refresh_token"},
		Scopes: []string{"openid", "profile"}, TokenEndpointAuthMethod: "none"})
	e.addClient(storage.Client{ID: "jwtweb", GrantTypes: []string{"authorization_code", "refresh_token", "client_credentials"},
		Scopes: []string{"openid", "api"}, TokenEndpointAuthMethod: "client_secret_basic", AccessTokenFormat: "jwt", Audience: []string{"https://api.example"}})
	e.addClient(storage.Client{ID: "svc", GrantTypes: []string{"client_credentials"}, Scopes: []string{"api", "api.read"},
		TokenEndpointAuthMethod: "client_secret_basic"})
	e.addClient(storage.Client{ID: "rs", GrantTypes: []string{"client_credentials"}, Scopes: []string{"introspect"},
		TokenEndpointAuthMethod: "client_secret_post"})
	e.addClient(storage.Client{ID: "parweb", GrantTypes: []string{"authorization_code"}, Scopes: []string{"openid"},
		TokenEndpointAuthMethod: "client_secret_basic", RequirePAR: true})
	e.addClient(storage.Client{ID: "pkceweb", GrantTypes: []string{"authorization_code"}, Scopes: []string{"openid"},
		TokenEndpointAuthMethod: "client_secret_basic", RequirePKCE: true})
	return e
}

func (e *env) loginAt(acr string, at time.Time) *Login {
	amr := []string{"pwd"}
	if acr != ACRPassword {
		amr = []string{"swk", "user", "mfa"}
	}
	return &Login{SessionID: "sess-1", Subject: testUser, ACR: acr, AMR: amr, AuthTime: at.Truncate(time.Second)}
}

// addClient stores c, generating a secret for confidential clients.
func (e *env) addClient(c storage.Client) {
	e.t.Helper()
	if len(c.RedirectURIs) == 0 && slices.Contains(c.GrantTypes, "authorization_code") {
		c.RedirectURIs = []string{e.cb}
	}
	if c.TokenEndpointAuthMethod != "none" && c.TokenEndpointAuthMethod != "private_key_jwt" {
		secret, err := GenerateSecret()
		if err != nil {
			e.t.Fatal(err)
		}
		h, _ := e.p.SecretHasher().Hash(context.Background(), []byte(secret))
		c.SecretHash = h
		e.secrets[c.ID] = secret
	}
	c.CreatedAt, c.UpdatedAt = time.Now(), time.Now()
	if err := e.store.CreateClient(context.Background(), c); err != nil {
		e.t.Fatalf("create client %s: %v", c.ID, err)
	}
}

// oauth2Config returns an x/oauth2 config for a registered client.
func (e *env) oauth2Config(clientID string, scopes ...string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     clientID,
		ClientSecret: e.secrets[clientID],
		Endpoint: oauth2.Endpoint{
			AuthURL:   e.issuer + PathAuthorize,
			TokenURL:  e.issuer + PathToken,
			AuthStyle: oauth2.AuthStyleInHeader,
		},
		RedirectURL: e.cb,
		Scopes:      scopes,
	}
}

func (e *env) ctx() context.Context {
	return context.WithValue(context.Background(), oauth2.HTTPClient, e.srv.Client())
}

// browser returns a client that follows redirects inside the server and
// stops at the client's redirect URI.
func (e *env) browser() *http.Client {
	c := *e.srv.Client()
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), e.cb) || strings.HasPrefix(req.URL.String(), e.issuer+"/bye") || len(via) > 20 {
			return http.ErrUseLastResponse
		}
		return nil
	}
	return &c
}

// authorize drives the browser from authURL to the callback and returns its
// query (code, state, iss or error).
func (e *env) authorize(authURL string) url.Values {
	e.t.Helper()
	resp, err := e.browser().Get(authURL)
	if err != nil {
		e.t.Fatalf("authorize: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, e.cb) {
		e.t.Fatalf("authorize: status %d, location %q, body %s", resp.StatusCode, loc, body)
	}
	u, _ := url.Parse(loc)
	return u.Query()
}

// code runs a PKCE code flow for clientID and returns the token.
func (e *env) codeFlow(clientID string, scopes []string, extra ...oauth2.AuthCodeOption) *oauth2.Token {
	e.t.Helper()
	conf := e.oauth2Config(clientID, scopes...)
	verifier := oauth2.GenerateVerifier()
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}, extra...)
	q := e.authorize(conf.AuthCodeURL("state-123456", opts...))
	if q.Get("error") != "" {
		e.t.Fatalf("authorize error: %s %s", q.Get("error"), q.Get("error_description"))
	}
	if q.Get("iss") != e.issuer || q.Get("state") != "state-123456" {
		e.t.Fatalf("callback iss=%q state=%q", q.Get("iss"), q.Get("state"))
	}
	tok, err := conf.Exchange(e.ctx(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		e.t.Fatalf("exchange: %v", err)
	}
	return tok
}

// post sends a form POST and decodes the JSON answer.
func (e *env) post(path string, form url.Values, mod func(*http.Request)) (int, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.issuer+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if mod != nil {
		mod(req)
	}
	return e.do(req)
}

func (e *env) do(req *http.Request) (int, map[string]any) {
	e.t.Helper()
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &m)
	if m == nil {
		m = map[string]any{"_raw": string(b)}
	}
	return resp.StatusCode, m
}

// introspect asks as the "rs" resource server (client_secret_post).
func (e *env) introspect(token string) map[string]any {
	e.t.Helper()
	code, m := e.post(PathIntrospect, url.Values{"token": {token}, "client_id": {"rs"}, "client_secret": {e.secrets["rs"]}}, nil)
	if code != http.StatusOK {
		e.t.Fatalf("introspect: %d %v", code, m)
	}
	return m
}

func basic(id, secret string) func(*http.Request) {
	return func(r *http.Request) { r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret)) }
}
