package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stepwise-id/stepwise/oauth/resource"
)

// fakeProvider stands in for Stepwise: it "authorizes" at a requested acr and
// answers introspection in-process (the LocalVerifier's contract).
type fakeProvider struct {
	mu     sync.Mutex
	tokens map[string]map[string]any
}

// authorize issues a token as if the user had just authenticated at acr,
// authTime ago.
func (p *fakeProvider) authorize(acr string, authTime time.Time, scope string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	tok := hex.EncodeToString(b)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tokens[tok] = map[string]any{
		"active": true, "sub": "alice", "client_id": "web", "scope": scope, "acr": acr,
		"amr": []any{"pwd"}, "auth_time": float64(authTime.Unix()),
		"exp": float64(time.Now().Add(time.Hour).Unix()), "token_type": "Bearer",
	}
	return tok
}

func (p *fakeProvider) introspect(_ context.Context, tok string) (map[string]any, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m, ok := p.tokens[tok]; ok {
		return m, nil
	}
	return map[string]any{"active": false}, nil
}

// challengeParams reads the auth-params of a Bearer challenge.
func challengeParams(t *testing.T, h string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, p := range strings.Split(strings.TrimPrefix(h, "Bearer "), ", ") {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			t.Fatalf("bad challenge %q", h)
		}
		out[k] = strings.Trim(v, `"`)
	}
	return out
}

func TestStepUpFlow(t *testing.T) {
	p := &fakeProvider{tokens: map[string]map[string]any{}}
	v, err := resource.NewLocalVerifier(resource.LocalConfig{Introspect: p.introspect})
	if err != nil {
		t.Fatal(err)
	}
	api, err := newAPI(v, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	defer srv.Close()
	pay := func(tok string) *http.Response {
		req, _ := http.NewRequest("POST", srv.URL+"/payments/7", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	const scope = "payments:write payments:read"

	// A password session's token is challenged for phr.
	resp := pay(p.authorize("urn:stepwise:acr:pwd", time.Now(), scope))
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("password token: %d", resp.StatusCode)
	}
	ch := challengeParams(t, resp.Header.Get("WWW-Authenticate"))
	if ch["error"] != "insufficient_user_authentication" || ch["acr_values"] != "phr" || ch["max_age"] != "300" {
		t.Fatalf("challenge %v", ch)
	}
	// The client re-runs authorization with the challenge's acr_values; the
	// step-up ceremony yields phr and the new token passes.
	resp = pay(p.authorize(ch["acr_values"], time.Now(), scope))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stepped-up token: %d %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.HasPrefix(string(body), "payment 7 sent for alice (acr phr") {
		t.Fatalf("body %q", body)
	}

	// Same for max_age: phr, but ten minutes old.
	resp = pay(p.authorize("phr", time.Now().Add(-10*time.Minute), scope))
	ch = challengeParams(t, resp.Header.Get("WWW-Authenticate"))
	if resp.StatusCode != http.StatusUnauthorized || ch["error"] != "insufficient_user_authentication" || ch["max_age"] != "300" {
		t.Fatalf("stale token: %d %v", resp.StatusCode, ch)
	}
	maxAge, _ := strconv.Atoi(ch["max_age"])
	resp = pay(p.authorize("phr", time.Now().Add(-time.Duration(maxAge/2)*time.Second), scope))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("fresh token: %d", resp.StatusCode)
	}

	// routes_default: deny — a path no route names is refused.
	req, _ := http.NewRequest("GET", srv.URL+"/elsewhere", nil)
	req.Header.Set("Authorization", "Bearer "+p.authorize("phrh", time.Now(), scope))
	r2, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusForbidden {
		t.Fatalf("unrouted path: %d", r2.StatusCode)
	}
}
