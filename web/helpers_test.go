package web

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stepwise-id/stepwise/oauth"
	"github.com/stepwise-id/stepwise/storage"
	"github.com/stepwise-id/stepwise/storage/storagetest"
	"github.com/stepwise-id/stepwise/web/password"
)

const (
	testPassword = "correct horse battery staple"
	testClientID = "client-1"
	testResume   = "/oauth2/authorize/resume?id=req-1"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type env struct {
	t     *testing.T
	s     *Server
	store storage.Storage
	clock *clock
	user  storage.User
	cfg   Config
	log   *slog.Logger
}

// newEnv builds a server on a fresh SQLite store with one user (alice) and
// one client.
func newEnv(t *testing.T, mutate ...func(*Config)) *env {
	t.Helper()
	store := storagetest.SQLite(t)
	clk := &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	cfg := Config{
		Issuer:     "http://localhost:8080",
		CookieKeys: []CookieKey{{HashKey: []byte(strings.Repeat("h", 32)), BlockKey: []byte(strings.Repeat("b", 32))}},
		Now:        clk.Now,
	}
	for _, m := range mutate {
		m(&cfg)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := New(cfg, store, logger)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e := &env{t: t, s: s, store: store, clock: clk, cfg: cfg, log: logger}
	hash, err := password.Hash(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	e.user = storage.User{ID: "user-1", Username: "alice", Email: "alice@example.com", PasswordHash: hash, CreatedAt: clk.Now(), UpdatedAt: clk.Now()}
	if err := store.CreateUser(context.Background(), e.user); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if err := store.CreateClient(context.Background(), storage.Client{
		ID:           testClientID,
		Name:         "Billing App",
		RedirectURIs: []string{"https://billing.example.com/callback"},
		GrantTypes:   []string{"authorization_code"},
		Scopes:       []string{"openid", "profile", "payments:write"},
		CreatedAt:    clk.Now(),
		UpdatedAt:    clk.Now(),
	}); err != nil {
		t.Fatalf("CreateClient: %v", err)
	}
	return e
}

// authRequest stores a paused request as the oauth package would.
func (e *env) authRequest(id string) {
	e.t.Helper()
	err := e.store.CreateAuthRequest(context.Background(), storage.AuthRequest{
		ID:        id,
		ClientID:  testClientID,
		Form:      "client_id=" + testClientID + "&scope=openid",
		Data:      []byte(`{"oauth":{"keep":"me"}}`),
		CreatedAt: e.clock.Now(),
		ExpiresAt: e.clock.Now().Add(10 * time.Minute),
	})
	if err != nil {
		e.t.Fatalf("CreateAuthRequest: %v", err)
	}
}

func (e *env) pending(id string) oauth.Pending {
	return oauth.Pending{
		ID:         id,
		ClientID:   testClientID,
		ClientName: "Billing App",
		Scopes:     []string{"openid", "profile"},
		ResumeURL:  "/oauth2/authorize/resume?id=" + id,
	}
}

// browserClient is a minimal cookie-keeping client that drives the handler
// in-process.
func (e *env) browser() *browserClient {
	return &browserClient{e: e, h: e.s.Handler(), cookies: map[string]*http.Cookie{}}
}

type browserClient struct {
	e       *env
	h       http.Handler
	cookies map[string]*http.Cookie
}

func (b *browserClient) request(method, target string, form url.Values) *http.Request {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequest(method, "http://localhost:8080"+target, body)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	r.RemoteAddr = "192.0.2.10:4242"
	r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/140.0 Safari/537.36")
	for _, c := range b.cookies {
		r.AddCookie(c)
	}
	return r
}

// send serves r and keeps the cookies the response sets.
func (b *browserClient) send(r *http.Request) *http.Response {
	rec := httptest.NewRecorder()
	b.h.ServeHTTP(rec, r)
	res := rec.Result()
	for _, c := range res.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(b.cookies, c.Name)
			continue
		}
		b.cookies[c.Name] = c
	}
	return res
}

func (b *browserClient) get(target string) *http.Response {
	return b.send(b.request(http.MethodGet, target, nil))
}

func (b *browserClient) post(target string, form url.Values) *http.Response {
	return b.send(b.request(http.MethodPost, target, form))
}

// login signs in as alice without an authorization request.
func (b *browserClient) login() {
	b.e.t.Helper()
	res := b.post("/login", url.Values{"username": {"alice"}, "password": {testPassword}})
	if res.StatusCode != http.StatusSeeOther {
		b.e.t.Fatalf("login: status %d, body %s", res.StatusCode, readBody(b.e.t, res))
	}
}

// currentLogin asks the server for the browser's login.
func (b *browserClient) currentLogin() *oauth.Login {
	b.e.t.Helper()
	l, err := b.e.s.CurrentLogin(b.request(http.MethodGet, "/oauth2/authorize", nil))
	if err != nil {
		b.e.t.Fatalf("CurrentLogin: %v", err)
	}
	return l
}

func readBody(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func hasErrorMarker(body string) bool {
	return strings.Contains(body, `data-test="error"`)
}

func events(t *testing.T, store storage.Storage, typ string) []storage.Event {
	t.Helper()
	ev, err := store.ListEvents(context.Background(), storage.EventFilter{Type: typ})
	if err != nil {
		t.Fatalf("ListEvents: %v", err)
	}
	return ev
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }
