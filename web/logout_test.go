package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stepwise-id/stepwise/oauth"
	"github.com/stepwise-id/stepwise/storage"
)

// token stores a refresh token authorised by session id.
func (e *env) token(sig, sessionID string) {
	e.t.Helper()
	err := e.store.CreateRequest(context.Background(), storage.Request{
		Kind: storage.KindRefreshToken, Signature: sig, RequestID: "r-" + sig, ClientID: testClientID,
		Subject: e.user.ID, SessionID: sessionID, Active: true,
		RequestedAt: e.clock.Now(), ExpiresAt: e.clock.Now().Add(time.Hour), Data: []byte(`{}`),
	})
	if err != nil {
		e.t.Fatalf("CreateRequest: %v", err)
	}
}

func TestLogoutRequiresPost(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login()
	l := b.currentLogin()
	e.token("rt-1", l.SessionID)
	e.token("rt-other", "another-session")

	res := b.get("/logout")
	body := readBody(t, res)
	if res.StatusCode != http.StatusOK || !strings.Contains(body, `data-test="logout"`) || !strings.Contains(body, `method="post"`) {
		t.Fatalf("GET /logout: %d", res.StatusCode)
	}
	if b.currentLogin() == nil {
		t.Fatal("GET /logout signed the user out")
	}

	res = b.post("/logout", url.Values{})
	if res.StatusCode != http.StatusOK || !strings.Contains(readBody(t, res), "signed out") {
		t.Fatalf("POST /logout: %d", res.StatusCode)
	}
	if b.currentLogin() != nil {
		t.Error("still signed in after logout")
	}
	ctx := context.Background()
	if _, err := e.store.GetSession(ctx, l.SessionID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("session still stored: %v", err)
	}
	if _, err := e.store.GetRequest(ctx, storage.KindRefreshToken, "rt-1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("session's refresh token survived: %v", err)
	}
	if _, err := e.store.GetRequest(ctx, storage.KindRefreshToken, "rt-other"); err != nil {
		t.Errorf("another session's token was deleted: %v", err)
	}
	// The device cookie outlives sign-outs on purpose: it names the
	// browser for the risk engine, not the session.
	if _, ok := b.cookies[deviceCookieName]; len(b.cookies) != 0 && !(ok && len(b.cookies) == 1) {
		t.Errorf("cookie not cleared: %v", b.cookies)
	}
	if len(events(t, e.store, "logout")) != 1 {
		t.Error("no logout event")
	}
}

func TestRPInitiatedLogout(t *testing.T) {
	const rp = "https://billing.example.com/signed-out?state=xyz"
	tests := []struct {
		name         string
		tamper       bool
		wantLocation string
	}{
		{name: "signed redirect", wantLocation: rp},
		{name: "tampered state", tamper: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			b := e.browser()
			b.login()
			w := newRecorder()
			e.s.Logout(w, b.request(http.MethodGet, "/oauth2/logout", nil), oauth.LogoutRequest{ClientName: "Billing App", RedirectURI: rp})
			body := w.Body.String()
			if w.Code != http.StatusOK || !strings.Contains(body, "Billing App") {
				t.Fatalf("confirmation: %d", w.Code)
			}
			if b.currentLogin() == nil {
				t.Fatal("Logout signed out without confirmation")
			}
			if !strings.Contains(w.Header().Get("Content-Security-Policy"), "https://billing.example.com") {
				t.Errorf("CSP form-action lacks the RP: %q", w.Header().Get("Content-Security-Policy"))
			}
			m := regexp.MustCompile(`name="state" value="([^"]+)"`).FindStringSubmatch(body)
			if m == nil {
				t.Fatal("no signed state in the form")
			}
			state := m[1]
			if strings.Contains(state, "billing.example.com") {
				t.Error("state carries the redirect in clear")
			}
			if tt.tamper {
				state = "x" + state[1:]
			}
			res := b.post("/logout", url.Values{"state": {state}})
			if b.currentLogin() != nil {
				t.Error("still signed in")
			}
			if tt.wantLocation != "" {
				if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != tt.wantLocation {
					t.Errorf("POST: %d %q", res.StatusCode, res.Header.Get("Location"))
				}
				return
			}
			if res.StatusCode != http.StatusOK || res.Header.Get("Location") != "" {
				t.Errorf("tampered state redirected: %d %q", res.StatusCode, res.Header.Get("Location"))
			}
		})
	}
}

func TestLogoutWithoutSessionRedirects(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	w := newRecorder()
	e.s.Logout(w, b.request(http.MethodGet, "/oauth2/logout", nil), oauth.LogoutRequest{RedirectURI: "https://billing.example.com/bye"})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "https://billing.example.com/bye" {
		t.Fatalf("no-session logout: %d %q", w.Code, w.Header().Get("Location"))
	}
}

func TestSignOutEverywhere(t *testing.T) {
	e := newEnv(t)
	one, two := e.browser(), e.browser()
	one.login()
	two.login()
	e.token("rt-2", two.currentLogin().SessionID)
	res := one.get("/account")
	body := readBody(t, res)
	if res.StatusCode != http.StatusOK || strings.Count(body, "<li>") != 2 || !strings.Contains(body, "this browser") {
		t.Fatalf("/account: %d, body %s", res.StatusCode, body)
	}
	one.post("/account/sessions/revoke", url.Values{})
	if one.currentLogin() != nil || two.currentLogin() != nil {
		t.Error("a session survived sign out everywhere")
	}
	if _, err := e.store.GetRequest(context.Background(), storage.KindRefreshToken, "rt-2"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("token survived: %v", err)
	}
}
