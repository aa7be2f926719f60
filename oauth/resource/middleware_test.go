package resource

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// sampleAPI is a tiny payments API: its handlers read the verified claims.
func sampleAPI() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /payments/{id}", func(w http.ResponseWriter, r *http.Request) {
		c, ok := ClaimsFrom(r.Context())
		if !ok {
			http.Error(w, "no claims", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "paid "+r.PathValue("id")+" for "+c.Subject+" at "+c.ACR)
	})
	mux.HandleFunc("GET /payments/{id}", func(w http.ResponseWriter, r *http.Request) {
		c, _ := ClaimsFrom(r.Context())
		_, _ = io.WriteString(w, "payment "+r.PathValue("id")+" of "+c.Subject)
	})
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		c, _ := ClaimsFrom(r.Context())
		_, _ = io.WriteString(w, "hello "+c.Subject)
	})
	return mux
}

func TestMiddleware(t *testing.T) {
	clock := newFakeClock()
	ti := newTestIssuer(t, clock)
	v := ti.verifier(nil)
	tbl, err := ParseRoutes([]RouteConfig{
		{Match: "POST /payments/{rest...}", Scopes: []string{"payments:write"}, ACR: "phr", MaxAge: 300},
		{Match: "GET /payments/{id}", Scopes: []string{"payments:read"}},
	}, RoutesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mw, err := NewMiddleware(Options{Verifier: v, Routes: tbl, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mw.Wrap(sampleAPI()))
	defer srv.Close()
	now := clock.Now()

	pwdToken := ti.mint(ti.with(map[string]any{"acr": "urn:stepwise:acr:pwd", "amr": []string{"pwd"}}))
	stepped := ti.mint(ti.baseClaims())
	stale := ti.mint(ti.with(map[string]any{"auth_time": now.Add(-10 * time.Minute).Unix()}))
	opaque := ti.issueOpaque(ti.baseClaims())
	readOnly := ti.mint(ti.with(map[string]any{"scope": "payments:read"}))

	cases := []struct {
		name, method, path, auth string
		status                   int
		challenge, body          string
	}{
		{"no token", "GET", "/hello", "", 401, `Bearer`, ""},
		{"basic auth", "GET", "/hello", "Basic dXNlcjpwYXNz", 401, `Bearer`, ""},
		{"malformed", "GET", "/hello", "Bearer a b", 400, `Bearer error="invalid_request", error_description="Malformed bearer token"`, ""},
		{"garbage token", "GET", "/hello", "Bearer garbage", 401, `Bearer error="invalid_token", error_description="The access token is invalid"`, ""},
		{"expired", "GET", "/hello", "Bearer " + ti.mint(ti.with(map[string]any{"exp": now.Add(-time.Hour).Unix()})), 401,
			`Bearer error="invalid_token", error_description="The access token expired"`, ""},
		{"no route: valid token", "GET", "/hello", "Bearer " + pwdToken, 200, "", "hello alice"},
		{"password token on phr route", "POST", "/payments/9", "Bearer " + pwdToken, 401,
			`Bearer error="insufficient_user_authentication", error_description="A stronger authentication is required", acr_values="phr", max_age=300`, ""},
		{"after step-up", "POST", "/payments/9", "Bearer " + stepped, 200, "", "paid 9 for alice at phr"},
		{"stale authentication", "POST", "/payments/9", "Bearer " + stale, 401,
			`Bearer error="insufficient_user_authentication", error_description="A more recent authentication is required", acr_values="phr", max_age=300`, ""},
		{"opaque token after step-up", "POST", "/payments/9", "Bearer " + opaque, 200, "", "paid 9 for alice at phr"},
		{"scope missing", "GET", "/payments/9", "Bearer " + stepped, 403,
			`Bearer error="insufficient_scope", error_description="The access token lacks a required scope", scope="payments:read"`, ""},
		{"scope present", "GET", "/payments/9", "Bearer " + readOnly, 200, "", "payment 9 of alice"},
		{"scope present, wrong method route", "POST", "/payments/9", "Bearer " + readOnly, 403,
			`Bearer error="insufficient_scope", error_description="The access token lacks a required scope", scope="payments:write"`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.status, body)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != tc.challenge {
				t.Fatalf("WWW-Authenticate\n got  %s\n want %s", got, tc.challenge)
			}
			if tc.body != "" && string(body) != tc.body {
				t.Fatalf("body %q, want %q", body, tc.body)
			}
		})
	}
}

// failingVerifier reports an outage.
type failingVerifier struct{}

func (failingVerifier) Verify(context.Context, string) (*Claims, error) {
	return nil, fmt.Errorf("%w: db down", ErrUnavailable)
}

func TestMiddlewareUnavailable(t *testing.T) {
	var logs strings.Builder
	mw, err := NewMiddleware(Options{Verifier: failingVerifier{}, Logger: newTextLogger(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/x", nil)
	req.Header.Set("Authorization", "Bearer secret-token-value")
	mw.Wrap(http.NotFoundHandler()).ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("status %d", rec.Code)
	}
	if strings.Contains(logs.String(), "secret-token-value") {
		t.Fatal("the token was logged")
	}
	if !strings.Contains(logs.String(), "verification unavailable") {
		t.Fatalf("outage not logged: %q", logs.String())
	}
}

func TestNewMiddlewareValidation(t *testing.T) {
	if _, err := NewMiddleware(Options{}); err == nil {
		t.Fatal("want an error without a verifier")
	}
	if _, err := NewMiddleware(Options{Verifier: failingVerifier{}, Realm: "a\nb"}); err == nil {
		t.Fatal("want an error for a realm with a newline")
	}
}

func TestClaimsFromEmpty(t *testing.T) {
	if _, ok := ClaimsFrom(context.Background()); ok {
		t.Fatal("claims from an empty context")
	}
	if _, ok := ClaimsFrom(WithClaims(context.Background(), nil)); ok {
		t.Fatal("nil claims reported present")
	}
}
