package web

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/stepwise-id/stepwise/storage"
)

func TestConsent(t *testing.T) {
	tests := []struct {
		name        string
		prior       []string
		decision    string
		wantScopes  []string
		wantOutcome string
	}{
		{name: "allow", decision: "allow", wantScopes: []string{"openid", "profile"}},
		{name: "allow merges", prior: []string{"email", "openid"}, decision: "allow", wantScopes: []string{"email", "openid", "profile"}},
		{name: "deny", decision: "deny", wantOutcome: outcomeDenied},
		{name: "deny keeps prior", prior: []string{"email"}, decision: "deny", wantScopes: []string{"email"}, wantOutcome: outcomeDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			if tt.prior != nil {
				if err := e.store.PutConsent(ctx, storage.Consent{UserID: e.user.ID, ClientID: testClientID, Scopes: tt.prior, GrantedAt: e.clock.Now()}); err != nil {
					t.Fatal(err)
				}
			}
			e.authRequest("req-1")
			b := e.browser()
			b.login()
			p := e.pending("req-1")
			w := newRecorder()
			e.s.Consent(w, b.request(http.MethodGet, "/oauth2/authorize", nil), p)
			if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/consent?req=req-1" {
				t.Fatalf("Consent: %d %q", w.Code, w.Header().Get("Location"))
			}
			res := b.get("/consent?req=req-1")
			body := readBody(t, res)
			for _, want := range []string{"Billing App", "See your name and basic profile", `data-test="consent-allow"`, `data-test="consent-deny"`} {
				if !strings.Contains(body, want) {
					t.Errorf("consent page lacks %q", want)
				}
			}
			res = b.post("/consent", url.Values{"req": {"req-1"}, "decision": {tt.decision}})
			if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != p.ResumeURL {
				t.Fatalf("POST: %d %q", res.StatusCode, res.Header.Get("Location"))
			}
			c, err := e.store.GetConsent(ctx, e.user.ID, testClientID)
			switch {
			case tt.wantScopes == nil && err == nil:
				t.Errorf("consent stored on deny: %v", c.Scopes)
			case tt.wantScopes != nil && err != nil:
				t.Fatalf("GetConsent: %v", err)
			case tt.wantScopes != nil:
				got := slices.Sorted(slices.Values(c.Scopes))
				if !slices.Equal(got, tt.wantScopes) {
					t.Errorf("scopes = %v, want %v", got, tt.wantScopes)
				}
			}
			a, err := e.store.GetAuthRequest(ctx, "req-1")
			if err != nil {
				t.Fatal(err)
			}
			if a.Outcome != tt.wantOutcome {
				t.Errorf("outcome = %q, want %q", a.Outcome, tt.wantOutcome)
			}
		})
	}
}

func TestConsentNeedsSession(t *testing.T) {
	e := newEnv(t)
	e.authRequest("req-1")
	b := e.browser()
	e.s.Consent(newRecorder(), b.request(http.MethodGet, "/oauth2/authorize", nil), e.pending("req-1"))
	res := b.post("/consent", url.Values{"req": {"req-1"}, "decision": {"allow"}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/login?req=req-1" {
		t.Fatalf("signed-out consent: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	if _, err := e.store.GetConsent(context.Background(), e.user.ID, testClientID); err == nil {
		t.Error("consent stored without a session")
	}
}
