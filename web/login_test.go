package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stepwise-id/stepwise/oauth"
	"github.com/stepwise-id/stepwise/storage"
)

func TestPasswordLogin(t *testing.T) {
	tests := []struct {
		name       string
		username   string
		password   string
		disable    bool
		wantOK     bool
		wantReason string
	}{
		{name: "success", username: "alice", password: testPassword, wantOK: true},
		{name: "success with spaces and case", username: "  Alice ", password: testPassword, wantOK: true},
		{name: "wrong password", username: "alice", password: "nope", wantReason: "bad_password"},
		{name: "unknown user", username: "mallory", password: testPassword, wantReason: "unknown_user"},
		{name: "empty password", username: "alice", password: "", wantReason: "empty"},
		{name: "disabled user", username: "alice", password: testPassword, disable: true, wantReason: "disabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			if tt.disable {
				if err := e.store.UpdateUser(ctx, e.user.ID, func(u storage.User) (storage.User, error) {
					u.Disabled = true
					return u, nil
				}); err != nil {
					t.Fatal(err)
				}
			}
			b := e.browser()
			res := b.post("/login", url.Values{"username": {tt.username}, "password": {tt.password}})
			body := readBody(t, res)
			if !tt.wantOK {
				if res.StatusCode != http.StatusOK || !hasErrorMarker(body) {
					t.Fatalf("status %d, error marker %v; want 200 with error", res.StatusCode, hasErrorMarker(body))
				}
				if !strings.Contains(body, "Incorrect username or password.") {
					t.Error("failure message is not the generic one")
				}
				if strings.Contains(body, tt.password) && tt.password != "" {
					t.Error("page echoes the password")
				}
				if len(b.cookies) != 0 {
					t.Errorf("failed login set cookies %v", b.cookies)
				}
				if b.currentLogin() != nil {
					t.Error("failed login produced a session")
				}
				ev := events(t, e.store, "login.failure")
				if len(ev) != 1 {
					t.Fatalf("login.failure events = %d, want 1", len(ev))
				}
				var data map[string]any
				_ = json.Unmarshal(ev[0].Data, &data)
				if data["reason"] != tt.wantReason {
					t.Errorf("reason = %v, want %s", data["reason"], tt.wantReason)
				}
				if strings.Contains(string(ev[0].Data), testPassword) {
					t.Error("event data contains the password")
				}
				return
			}
			if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/account" {
				t.Fatalf("status %d location %q; want 303 /account", res.StatusCode, res.Header.Get("Location"))
			}
			l := b.currentLogin()
			if l == nil {
				t.Fatal("no login after success")
			}
			if l.Subject != e.user.ID || l.ACR != oauth.ACRPassword || len(l.AMR) != 1 || l.AMR[0] != "pwd" || !l.AuthTime.Equal(e.clock.Now()) {
				t.Errorf("login = %+v", l)
			}
			ev := events(t, e.store, "login.success")
			if len(ev) != 1 || ev[0].UserID != e.user.ID || ev[0].SessionID != l.SessionID || ev[0].IPAddress != "192.0.2.10" {
				t.Fatalf("login.success events = %+v", ev)
			}
			if !strings.Contains(string(ev[0].Data), "user_agent") {
				t.Error("login.success lacks the user agent")
			}
		})
	}
}

func TestLoginThrottle(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	for i := range pairBurst {
		res := b.post("/login", url.Values{"username": {"alice"}, "password": {"wrong"}})
		if res.StatusCode != http.StatusOK {
			t.Fatalf("attempt %d: status %d", i, res.StatusCode)
		}
	}
	res := b.post("/login", url.Values{"username": {"alice"}, "password": {testPassword}})
	if res.StatusCode != http.StatusTooManyRequests || !hasErrorMarker(readBody(t, res)) {
		t.Fatalf("after %d failures: status %d, want 429 with error", pairBurst, res.StatusCode)
	}
	// Another user from the same IP is unaffected.
	if !e.s.throttle.allowed("192.0.2.10", "bob", e.clock.Now()) {
		t.Error("throttle blocks another username")
	}
	e.clock.Advance(pairInterval + time.Second)
	b.login()
}

func TestCookieFlags(t *testing.T) {
	tests := []struct {
		issuer     string
		wantName   string
		wantSecure bool
	}{
		{"http://localhost:8080", "stepwise_session", false},
		{"https://id.example.com", "__Host-stepwise_session", true},
	}
	for _, tt := range tests {
		t.Run(tt.issuer, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.Issuer = tt.issuer })
			b := e.browser()
			res := b.post("/login", url.Values{"username": {"alice"}, "password": {testPassword}})
			var c *http.Cookie
			for _, rc := range res.Cookies() {
				if rc.Name == tt.wantName {
					c = rc
				}
			}
			if c == nil {
				t.Fatalf("no %s cookie in %v", tt.wantName, res.Cookies())
			}
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" || c.Secure != tt.wantSecure || c.Domain != "" {
				t.Errorf("cookie flags: %+v", c)
			}
			if c.MaxAge != int(DefaultSessionLifetime/time.Second) {
				t.Errorf("MaxAge = %d", c.MaxAge)
			}
			// The cookie holds a signed, encrypted reference, not the ID.
			l := b.currentLogin()
			if l == nil || strings.Contains(c.Value, l.SessionID) {
				t.Errorf("cookie value exposes the session ID or no login")
			}
		})
	}
}

func TestSessionValidity(t *testing.T) {
	tests := []struct {
		name   string
		spoil  func(e *env, b *browserClient, id string)
		wantOK bool
	}{
		{name: "fresh", spoil: func(*env, *browserClient, string) {}, wantOK: true},
		{name: "revoked", spoil: func(e *env, _ *browserClient, id string) {
			if err := e.store.DeleteSession(context.Background(), id); err != nil {
				e.t.Fatal(err)
			}
		}},
		{name: "expired", spoil: func(e *env, _ *browserClient, _ string) { e.clock.Advance(DefaultSessionLifetime + time.Second) }},
		{name: "idle", spoil: func(e *env, _ *browserClient, _ string) { e.clock.Advance(DefaultSessionIdleTimeout + time.Minute) }},
		{name: "tampered cookie", spoil: func(_ *env, b *browserClient, _ string) {
			for _, c := range b.cookies {
				c.Value = c.Value[:len(c.Value)-4] + "AAAA"
			}
		}},
		{name: "user disabled", spoil: func(e *env, _ *browserClient, _ string) {
			_ = e.store.UpdateUser(context.Background(), e.user.ID, func(u storage.User) (storage.User, error) {
				u.Disabled = true
				return u, nil
			})
		}},
		{name: "active within idle window", spoil: func(e *env, b *browserClient, _ string) {
			for range 3 {
				e.clock.Advance(DefaultSessionIdleTimeout - time.Minute)
				if b.currentLogin() == nil {
					e.t.Fatal("session lost while in use")
				}
			}
		}, wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			b := e.browser()
			b.login()
			l := b.currentLogin()
			if l == nil {
				t.Fatal("no login")
			}
			tt.spoil(e, b, l.SessionID)
			got := b.currentLogin()
			if (got != nil) != tt.wantOK {
				t.Fatalf("login present = %v, want %v", got != nil, tt.wantOK)
			}
			if !tt.wantOK {
				// The account page treats it as signed out too.
				res := b.get("/account")
				if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/login") {
					t.Errorf("/account: status %d location %q", res.StatusCode, res.Header.Get("Location"))
				}
			}
		})
	}
}

func TestElevationDecays(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	b := e.browser()
	b.login()
	base := b.currentLogin()
	elevatedAt := e.clock.Now().Add(time.Minute)
	e.clock.Advance(time.Minute)
	// A passkey step-up (a later issue) elevates the session like this.
	if err := e.store.UpdateSession(ctx, base.SessionID, func(se storage.Session) (storage.Session, error) {
		se.ACR, se.AMR, se.AuthTime = oauth.ACRPhishingResist, []string{"swk", "user", "mfa"}, elevatedAt
		se.ElevatedUntil = elevatedAt.Add(15 * time.Minute)
		return se, nil
	}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		after    time.Duration
		wantACR  string
		wantTime time.Time
	}{
		{0, oauth.ACRPhishingResist, elevatedAt},
		{14 * time.Minute, oauth.ACRPhishingResist, elevatedAt},
		{time.Minute, oauth.ACRPassword, base.AuthTime},
		{time.Hour, oauth.ACRPassword, base.AuthTime},
	}
	for _, tt := range tests {
		e.clock.Advance(tt.after)
		l := b.currentLogin()
		if l == nil {
			t.Fatalf("+%v: no login", tt.after)
		}
		if l.ACR != tt.wantACR || !l.AuthTime.Equal(tt.wantTime) {
			t.Errorf("+%v: acr %q auth_time %v; want %q %v", tt.after, l.ACR, l.AuthTime, tt.wantACR, tt.wantTime)
		}
		if tt.wantACR == oauth.ACRPassword && (len(l.AMR) != 1 || l.AMR[0] != "pwd") {
			t.Errorf("+%v: amr %v after decay", tt.after, l.AMR)
		}
	}
}

func TestLastSeenThrottled(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login()
	id := b.currentLogin().SessionID
	start := e.clock.Now()
	lastSeen := func() time.Time {
		se, err := e.store.GetSession(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		return se.LastSeenAt
	}
	e.clock.Advance(30 * time.Second)
	b.currentLogin()
	if got := lastSeen(); !got.Equal(start) {
		t.Errorf("LastSeenAt written after 30s: %v", got)
	}
	e.clock.Advance(31 * time.Second)
	b.currentLogin()
	if got := lastSeen(); !got.Equal(e.clock.Now()) {
		t.Errorf("LastSeenAt = %v, want %v", got, e.clock.Now())
	}
}

func TestAuthenticateHandOver(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.authRequest("req-1")
	b := e.browser()

	p := e.pending("req-1")
	p.Requirement.Reason = "Billing App needs you to sign in."
	p.LoginHint = "alice"
	w := newRecorder()
	e.s.Authenticate(w, b.request(http.MethodGet, "/oauth2/authorize", nil), p)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/login?req=req-1" {
		t.Fatalf("Authenticate: %d %q", w.Code, w.Header().Get("Location"))
	}
	a, err := e.store.GetAuthRequest(ctx, "req-1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(a.Data), `"keep":"me"`) {
		t.Errorf("oauth's data lost: %s", a.Data)
	}

	res := b.get("/login?req=req-1")
	body := readBody(t, res)
	for _, want := range []string{"Billing App", "needs you to sign in", `value="alice"`, `data-test="username"`, `data-test="password"`, `data-test="submit"`} {
		if !strings.Contains(body, want) {
			t.Errorf("login page lacks %q", want)
		}
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self' https://billing.example.com") {
		t.Errorf("CSP does not allow the client's redirect origin: %q", csp)
	}

	res = b.post("/login", url.Values{"req": {"req-1"}, "username": {"alice"}, "password": {testPassword}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != p.ResumeURL {
		t.Fatalf("login POST: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	ev := events(t, e.store, "login.success")
	if len(ev) != 1 || ev[0].ClientID != testClientID {
		t.Errorf("login.success = %+v", ev)
	}
	// Sent here again with a session that already meets the request (as
	// for prompt=select_account), the page offers "continue as".
	res = b.get("/login?req=req-1")
	if body := readBody(t, res); res.StatusCode != http.StatusOK || !strings.Contains(body, `data-test="continue"`) || !strings.Contains(body, "Continue as alice") {
		t.Errorf("second visit: %d, no continue button", res.StatusCode)
	}
	res = b.post("/login", url.Values{"req": {"req-1"}, "action": {"continue"}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != p.ResumeURL {
		t.Errorf("continue: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	// Without a session, "continue" asks to sign in and does not resume.
	fresh := e.browser()
	res = fresh.post("/login", url.Values{"req": {"req-1"}, "action": {"continue"}})
	if res.StatusCode != http.StatusOK || res.Header.Get("Location") != "" || !hasErrorMarker(readBody(t, res)) {
		t.Errorf("continue without session: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
}

func TestLoginRequiresPasskey(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.authRequest("req-1")
	b := e.browser()
	p := e.pending("req-1")
	p.Requirement.ACR = oauth.ACRPhishingResist
	w := newRecorder()
	e.s.Authenticate(w, b.request(http.MethodGet, "/oauth2/authorize", nil), p)

	res := b.get("/login?req=req-1")
	body := readBody(t, res)
	if !hasErrorMarker(body) || !strings.Contains(body, "passkey") {
		t.Error("no passkey-required error shown")
	}
	if strings.Contains(body, `data-test="password"`) {
		t.Error("password form shown although it cannot satisfy the request")
	}
	res = b.post("/login", url.Values{"req": {"req-1"}, "username": {"alice"}, "password": {testPassword}})
	if res.StatusCode != http.StatusForbidden || b.currentLogin() != nil {
		t.Fatalf("password accepted for a passkey requirement: %d", res.StatusCode)
	}
	res = b.post("/login", url.Values{"req": {"req-1"}, "action": {"cancel"}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != p.ResumeURL {
		t.Fatalf("cancel: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	a, err := e.store.GetAuthRequest(ctx, "req-1")
	if err != nil {
		t.Fatal(err)
	}
	if a.Outcome != outcomeUnmet {
		t.Errorf("outcome = %q, want unmet", a.Outcome)
	}
}

func TestLoginCancelDenies(t *testing.T) {
	e := newEnv(t)
	e.authRequest("req-1")
	b := e.browser()
	e.s.Authenticate(newRecorder(), b.request(http.MethodGet, "/oauth2/authorize", nil), e.pending("req-1"))
	b.post("/login", url.Values{"req": {"req-1"}, "action": {"cancel"}})
	a, err := e.store.GetAuthRequest(context.Background(), "req-1")
	if err != nil {
		t.Fatal(err)
	}
	if a.Outcome != outcomeDenied {
		t.Errorf("outcome = %q, want denied", a.Outcome)
	}
}

func TestReauthentication(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	b := e.browser()
	b.login()
	before := b.currentLogin()

	e.clock.Advance(10 * time.Minute)
	e.authRequest("req-1")
	p := e.pending("req-1")
	p.Requirement.AuthenticatedAfter = e.clock.Now() // prompt=login
	e.s.Authenticate(newRecorder(), b.request(http.MethodGet, "/oauth2/authorize", nil), p)

	res := b.get("/login?req=req-1")
	body := readBody(t, res)
	if res.StatusCode != http.StatusOK || !strings.Contains(body, `value="alice"`) || !strings.Contains(body, msgReauth) {
		t.Fatalf("re-auth page: status %d", res.StatusCode)
	}
	if strings.Contains(body, `data-test="continue"`) {
		t.Error("re-auth page offers to continue without a password")
	}
	res = b.post("/login", url.Values{"req": {"req-1"}, "action": {"continue"}})
	if res.StatusCode == http.StatusSeeOther {
		t.Fatal("continue accepted a session older than AuthenticatedAfter")
	}
	e.clock.Advance(5 * time.Second)
	res = b.post("/login", url.Values{"req": {"req-1"}, "username": {"alice"}, "password": {testPassword}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != p.ResumeURL {
		t.Fatalf("re-auth POST: %d %q", res.StatusCode, res.Header.Get("Location"))
	}
	after := b.currentLogin()
	if after.SessionID != before.SessionID {
		t.Error("re-authentication replaced the session instead of upgrading it")
	}
	if !after.AuthTime.Equal(e.clock.Now()) {
		t.Errorf("auth_time = %v, want now %v", after.AuthTime, e.clock.Now())
	}
	if !e.s.satisfies(after, p.Requirement) {
		t.Error("upgraded login does not satisfy the requirement")
	}
	se, err := e.store.GetSession(ctx, after.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	if !se.CreatedAt.Equal(before.AuthTime) || !se.ExpiresAt.Equal(e.clock.Now().Add(DefaultSessionLifetime)) {
		t.Errorf("session times: created %v expires %v", se.CreatedAt, se.ExpiresAt)
	}
}
