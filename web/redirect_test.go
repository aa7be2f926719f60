package web

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/stepwise-id/stepwise/storage"
)

func TestLocalURL(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"/account", "/account", true},
		{"/oauth2/authorize/resume?id=a%20b", "/oauth2/authorize/resume?id=a%20b", true},
		{"http://localhost:8080/oauth2/authorize/resume?id=1", "/oauth2/authorize/resume?id=1", true},
		{"/account#frag", "/account", true},
		{"", "", false},
		{"account", "", false},
		{"//evil.example.com/x", "", false},
		{"/\\evil.example.com", "", false},
		{"\\\\evil.example.com", "", false},
		{"https://evil.example.com/", "", false},
		{"http://localhost:8081/x", "", false},
		{"http://localhost:8080@evil.example.com/", "", false},
		{"javascript:alert(1)", "", false},
		{"/ok\r\nSet-Cookie: x=y", "", false},
		{"/\t/evil.example.com", "", false},
		{"http:evil.example.com", "", false},
		{"///evil.example.com", "", false},
	}
	for _, tt := range tests {
		got, ok := e.s.localURL(tt.in)
		if ok != tt.ok || got != tt.want {
			t.Errorf("localURL(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestNoOpenRedirect(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	t.Run("return parameter", func(t *testing.T) {
		for _, ret := range []string{"https://evil.example.com/", "//evil.example.com", "/\\evil.example.com"} {
			b := e.browser()
			res := b.post("/login", url.Values{"username": {"alice"}, "password": {testPassword}, "return": {ret}})
			if loc := res.Header.Get("Location"); loc != "/account" {
				t.Errorf("return=%q: redirected to %q", ret, loc)
			}
		}
		b := e.browser()
		res := b.post("/login", url.Values{"username": {"alice"}, "password": {testPassword}, "return": {"/account?tab=sessions"}})
		if loc := res.Header.Get("Location"); loc != "/account?tab=sessions" {
			t.Errorf("local return: %q", loc)
		}
	})

	t.Run("foreign resume URL refused", func(t *testing.T) {
		e.authRequest("req-evil")
		p := e.pending("req-evil")
		p.ResumeURL = "https://evil.example.com/steal"
		b := e.browser()
		w := newRecorder()
		e.s.Authenticate(w, b.request(http.MethodGet, "/oauth2/authorize", nil), p)
		if w.Code != http.StatusInternalServerError || w.Header().Get("Location") != "" {
			t.Errorf("Authenticate with foreign resume: %d %q", w.Code, w.Header().Get("Location"))
		}
	})

	t.Run("tampered stored resume URL refused", func(t *testing.T) {
		e.authRequest("req-tamper")
		if err := e.store.UpdateAuthRequest(ctx, "req-tamper", func(a storage.AuthRequest) (storage.AuthRequest, error) {
			a.Data = []byte(`{"web":{"resume_url":"//evil.example.com/"}}`)
			return a, nil
		}); err != nil {
			t.Fatal(err)
		}
		b := e.browser()
		res := b.post("/login", url.Values{"req": {"req-tamper"}, "username": {"alice"}, "password": {testPassword}})
		if res.StatusCode != http.StatusBadRequest || res.Header.Get("Location") != "" {
			t.Errorf("tampered resume: %d %q", res.StatusCode, res.Header.Get("Location"))
		}
	})

	t.Run("unknown or unhanded request", func(t *testing.T) {
		e.authRequest("req-raw") // never handed over: no web state
		for _, id := range []string{"does-not-exist", "req-raw", "https://evil.example.com"} {
			b := e.browser()
			res := b.get("/login?req=" + url.QueryEscape(id))
			if res.StatusCode != http.StatusBadRequest || !hasErrorMarker(readBody(t, res)) {
				t.Errorf("req=%q: %d", id, res.StatusCode)
			}
		}
	})

	t.Run("expired request", func(t *testing.T) {
		e.authRequest("req-old")
		b := e.browser()
		e.s.Authenticate(newRecorder(), b.request(http.MethodGet, "/oauth2/authorize", nil), e.pending("req-old"))
		e.clock.Advance(11 * 60 * 1e9)
		res := b.get("/login?req=req-old")
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("expired request: %d", res.StatusCode)
		}
	})
}
