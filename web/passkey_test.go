package web

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stepwise-id/stepwise/oauth"
	"github.com/stepwise-id/stepwise/passkey"
	"github.com/stepwise-id/stepwise/passkey/softauth"
	"github.com/stepwise-id/stepwise/storage"
)

// withPasskeys rebuilds the env's server with passkeys on, sharing its store
// and clock.
func (e *env) withPasskeys() *passkey.Service {
	e.t.Helper()
	pk, err := passkey.New(passkey.Config{Issuer: e.cfg.Issuer, Now: e.clock.Now}, e.store, e.log)
	if err != nil {
		e.t.Fatalf("passkey.New: %v", err)
	}
	cfg := e.cfg
	cfg.Passkeys = pk
	if e.s, err = New(cfg, e.store, e.log); err != nil {
		e.t.Fatalf("New: %v", err)
	}
	return pk
}

// newAuthenticator is a software authenticator for the env's origin.
func newAuthenticator(t *testing.T) *softauth.Authenticator {
	t.Helper()
	a, err := softauth.New("localhost", "http://localhost:8080", uuid.MustParse("ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4"))
	if err != nil {
		t.Fatal(err)
	}
	a.CredProps = true
	return a
}

// enrol registers a passkey for alice directly through the service.
func (e *env) enrol(pk *passkey.Service, a *softauth.Authenticator, flags softauth.Flags) {
	e.t.Helper()
	ctx := context.Background()
	c, err := pk.BeginRegistration(ctx, e.user.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	body, err := a.Register(c.Options, flags)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := pk.FinishRegistration(ctx, e.user.ID, passkey.Response{State: c.State, Credential: body}, "Phone"); err != nil {
		e.t.Fatalf("FinishRegistration: %v", err)
	}
}

// api posts a JSON body to a /webauthn/ endpoint.
func (b *browserClient) api(path string, body any) (int, apiResponse) {
	b.e.t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		b.e.t.Fatal(err)
	}
	r := b.request(http.MethodPost, path, nil)
	r.Body = io.NopCloser(bytes.NewReader(raw))
	r.ContentLength = int64(len(raw))
	r.Header.Set("Content-Type", "application/json")
	res := b.send(r)
	var out apiResponse
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		b.e.t.Fatalf("%s: status %d, body is not JSON: %v", path, res.StatusCode, err)
	}
	return res.StatusCode, out
}

// ceremony runs begin, lets answer produce the credential from the
// options, and runs finish with fields merged in.
func (b *browserClient) ceremony(kind string, in apiRequest, answer func(options []byte) []byte) (int, apiResponse) {
	b.e.t.Helper()
	status, res := b.api("/webauthn/"+kind+"/begin", in)
	if status != http.StatusOK {
		return status, res
	}
	in.Credential = answer(res.Options)
	return b.api("/webauthn/"+kind+"/finish", in)
}

func assertWith(t *testing.T, a *softauth.Authenticator, flags softauth.Flags) func([]byte) []byte {
	return func(options []byte) []byte {
		body, err := a.Assert(options, flags)
		if err != nil {
			t.Fatal(err)
		}
		return body
	}
}

func registerWith(t *testing.T, a *softauth.Authenticator, flags softauth.Flags) func([]byte) []byte {
	return func(options []byte) []byte {
		body, err := a.Register(options, flags)
		if err != nil {
			t.Fatal(err)
		}
		return body
	}
}

func TestPasskeyLogin(t *testing.T) {
	e := newEnv(t)
	pk := e.withPasskeys()
	a := newAuthenticator(t)
	e.enrol(pk, a, softauth.Synced)
	a.UserHandle = []byte(e.user.ID)

	b := e.browser()
	res := b.get("/login")
	body := readBody(t, res)
	for _, want := range []string{`data-test="passkey-login"`, `autocomplete="username webauthn"`, `src="/static/js/webauthn.js?v=`} {
		if !strings.Contains(body, want) {
			t.Errorf("login page lacks %s", want)
		}
	}
	if strings.Index(body, `data-test="passkey-login"`) > strings.Index(body, `data-test="password"`) {
		t.Error("passkey sign-in is not offered before the password")
	}

	status, out := b.ceremony("login", apiRequest{Return: "/account?tab=1"}, assertWith(t, a, softauth.Synced))
	if status != http.StatusOK || out.Redirect != "/account?tab=1" {
		t.Fatalf("login: %d %+v", status, out)
	}
	l := b.currentLogin()
	if l == nil || l.Subject != e.user.ID || l.ACR != oauth.ACRPhishingResist || !slices.Equal(l.AMR, []string{"swk", "user", "mfa"}) || !l.AuthTime.Equal(e.clock.Now()) {
		t.Fatalf("login after passkey: %+v", l)
	}
	ev := events(t, e.store, "login.success")
	if len(ev) != 1 || !strings.Contains(string(ev[0].Data), `"method":"passkey"`) {
		t.Fatalf("login.success events %+v", ev)
	}
	if _, ok := b.cookies["stepwise_webauthn_login"]; ok {
		t.Error("the ceremony cookie outlived its ceremony")
	}

	// Presence only: signed in at the passkey rung.
	b2 := e.browser()
	if status, out := b2.ceremony("login", apiRequest{}, assertWith(t, a, softauth.UP|softauth.BE|softauth.BS)); status != http.StatusOK || out.Redirect != "/account" {
		t.Fatalf("UP-only login: %d %+v", status, out)
	}
	if l := b2.currentLogin(); l.ACR != oauth.ACRPasskey || !slices.Equal(l.AMR, []string{"swk"}) {
		t.Errorf("UP-only login: %+v", l)
	}
}

func TestPasskeyAPIErrors(t *testing.T) {
	e := newEnv(t)
	pk := e.withPasskeys()
	a := newAuthenticator(t)
	e.enrol(pk, a, softauth.Synced)
	a.UserHandle = []byte(e.user.ID)

	t.Run("not JSON", func(t *testing.T) {
		b := e.browser()
		r := b.request(http.MethodPost, "/webauthn/login/begin", url.Values{"x": {"1"}})
		res := b.send(r)
		if res.StatusCode != http.StatusUnsupportedMediaType {
			t.Errorf("form body: %d", res.StatusCode)
		}
		r = b.request(http.MethodPost, "/webauthn/login/finish", nil)
		r.Header.Set("Content-Type", "application/json")
		r.Body = io.NopCloser(strings.NewReader(`{"credential":`))
		if res := b.send(r); res.StatusCode != http.StatusBadRequest {
			t.Errorf("truncated JSON: %d", res.StatusCode)
		}
		r = b.request(http.MethodPost, "/webauthn/login/finish", nil)
		r.Header.Set("Content-Type", "application/json")
		r.Body = io.NopCloser(strings.NewReader(`{} {}`))
		if res := b.send(r); res.StatusCode != http.StatusBadRequest {
			t.Errorf("two JSON values: %d", res.StatusCode)
		}
	})

	t.Run("finish without begin", func(t *testing.T) {
		b := e.browser()
		status, out := b.api("/webauthn/login/finish", apiRequest{Credential: json.RawMessage(`{}`)})
		if status != http.StatusBadRequest || out.Error != "expired" || out.Message == "" {
			t.Errorf("%d %+v", status, out)
		}
	})

	t.Run("tampered state cookie", func(t *testing.T) {
		b := e.browser()
		status, opts := b.api("/webauthn/login/begin", apiRequest{})
		if status != http.StatusOK {
			t.Fatal(status)
		}
		c := b.cookies["stepwise_webauthn_login"]
		c.Value = c.Value[:len(c.Value)-4] + "AAAA"
		status, out := b.api("/webauthn/login/finish", apiRequest{Credential: assertWith(t, a, softauth.Synced)(opts.Options)})
		if status != http.StatusBadRequest || out.Error != "expired" || b.currentLogin() != nil {
			t.Errorf("%d %+v", status, out)
		}
	})

	t.Run("state of another ceremony", func(t *testing.T) {
		b := e.browser()
		b.login()
		_, opts := b.api("/webauthn/stepup/begin", apiRequest{Purpose: purposeAccount})
		// Move the step-up state into the login cookie's place.
		c := *b.cookies["stepwise_webauthn_stepup"]
		c.Name = "stepwise_webauthn_login"
		b.cookies[c.Name] = &c
		status, out := b.api("/webauthn/login/finish", apiRequest{Credential: assertWith(t, a, softauth.Synced)(opts.Options)})
		if status != http.StatusBadRequest || out.Error != "expired" {
			t.Errorf("%d %+v", status, out)
		}
	})

	t.Run("replayed assertion", func(t *testing.T) {
		b := e.browser()
		_, opts := b.api("/webauthn/login/begin", apiRequest{})
		cred := assertWith(t, a, softauth.Synced)(opts.Options)
		saved := *b.cookies["stepwise_webauthn_login"]
		if status, _ := b.api("/webauthn/login/finish", apiRequest{Credential: cred}); status != http.StatusOK {
			t.Fatalf("first finish: %d", status)
		}
		b.cookies[saved.Name] = &saved // an attacker who kept the cookie
		status, out := b.api("/webauthn/login/finish", apiRequest{Credential: cred})
		if status != http.StatusBadRequest || out.Error != "challenge_used" {
			t.Errorf("replay: %d %+v", status, out)
		}
	})

	t.Run("expired ceremony", func(t *testing.T) {
		b := e.browser()
		_, opts := b.api("/webauthn/login/begin", apiRequest{})
		e.clock.Advance(passkey.DefaultChallengeTTL + time.Second)
		status, out := b.api("/webauthn/login/finish", apiRequest{Credential: assertWith(t, a, softauth.Synced)(opts.Options)})
		if status != http.StatusBadRequest || out.Error != "challenge_expired" {
			t.Errorf("%d %+v", status, out)
		}
	})

	t.Run("cross-origin", func(t *testing.T) {
		b := e.browser()
		for _, path := range []string{"/webauthn/login/begin", "/webauthn/register/begin", "/webauthn/stepup/finish"} {
			r := b.request(http.MethodPost, path, nil)
			r.Header.Set("Sec-Fetch-Site", "cross-site")
			r.Header.Set("Origin", "https://evil.example")
			r.Header.Set("Content-Type", "application/json")
			r.Body = io.NopCloser(strings.NewReader(`{}`))
			res := b.send(r)
			var out apiResponse
			_ = json.NewDecoder(res.Body).Decode(&out)
			if res.StatusCode != http.StatusForbidden || out.Error != "cross_origin" {
				t.Errorf("%s: %d %+v", path, res.StatusCode, out)
			}
		}
		r := b.request(http.MethodPost, "/account/passkeys/delete", url.Values{"id": {"x"}})
		r.Header.Set("Sec-Fetch-Site", "cross-site")
		if res := b.send(r); res.StatusCode != http.StatusForbidden {
			t.Errorf("cross-site delete form: %d", res.StatusCode)
		}
	})

	t.Run("no open redirect", func(t *testing.T) {
		for _, ret := range []string{"https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"} {
			b := e.browser()
			status, out := b.ceremony("login", apiRequest{Return: ret}, assertWith(t, a, softauth.Synced))
			if status != http.StatusOK || out.Redirect != "/account" {
				t.Errorf("return=%q: %d redirect %q", ret, status, out.Redirect)
			}
		}
	})

	t.Run("unknown credential", func(t *testing.T) {
		stranger := newAuthenticator(t)
		stranger.UserHandle = []byte(e.user.ID)
		b := e.browser()
		status, out := b.ceremony("login", apiRequest{}, assertWith(t, stranger, softauth.Synced))
		if status != http.StatusBadRequest || out.Error != "unknown_credential" || !strings.Contains(out.Message, "not registered") {
			t.Errorf("%d %+v", status, out)
		}
		if b.currentLogin() != nil {
			t.Error("signed in with an unknown passkey")
		}
	})

	t.Run("passkeys off", func(t *testing.T) {
		plain := newEnv(t)
		res := plain.browser().post("/webauthn/login/begin", nil)
		if res.StatusCode != http.StatusNotFound && res.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("passkey endpoint without passkeys: %d", res.StatusCode)
		}
	})
}

// stepUpEnv is alice with a passkey, signed in by password, and a paused
// request for acr phr.
func stepUpEnv(t *testing.T, enrolled bool) (*env, *softauth.Authenticator, *browserClient, oauth.Pending) {
	e := newEnv(t)
	pk := e.withPasskeys()
	a := newAuthenticator(t)
	if enrolled {
		e.enrol(pk, a, softauth.Synced)
	}
	a.UserHandle = []byte(e.user.ID)
	b := e.browser()
	b.login()
	e.authRequest("req-1")
	p := e.pending("req-1")
	p.Requirement.ACR = oauth.ACRPhishingResist
	e.s.Authenticate(newRecorder(), b.request(http.MethodGet, "/oauth2/authorize", nil), p)
	return e, a, b, p
}

func TestStepUp(t *testing.T) {
	e, a, b, p := stepUpEnv(t, true)
	ctx := context.Background()
	base := b.currentLogin()
	body := readBody(t, b.get("/login?req=req-1"))
	if !strings.Contains(body, `data-test="stepup-start"`) || strings.Contains(body, `data-test="password"`) || hasErrorMarker(body) {
		t.Fatalf("step-up page:\n%s", body)
	}

	e.clock.Advance(time.Minute)
	status, out := b.ceremony("stepup", apiRequest{Req: "req-1"}, assertWith(t, a, softauth.Synced))
	if status != http.StatusOK || out.Redirect != p.ResumeURL {
		t.Fatalf("step-up: %d %+v", status, out)
	}
	l := b.currentLogin()
	if l.SessionID != base.SessionID || l.ACR != oauth.ACRPhishingResist || !slices.Equal(l.AMR, []string{"swk", "user", "mfa"}) || !l.AuthTime.Equal(e.clock.Now()) {
		t.Fatalf("after step-up: %+v", l)
	}
	se, err := e.store.GetSession(ctx, l.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	if se.BaseACR != oauth.ACRPassword || !slices.Equal(se.BaseAMR, []string{"pwd"}) || !se.BaseAuthTime.Equal(base.AuthTime) ||
		!se.ElevatedUntil.Equal(e.clock.Now().Add(DefaultSteppedUpLifetime)) {
		t.Fatalf("session after step-up: %+v", se)
	}
	if len(events(t, e.store, "login.step_up")) != 1 {
		t.Error("no login.step_up event")
	}
	// The elevation decays back to the password level.
	e.clock.Advance(DefaultSteppedUpLifetime)
	if l := b.currentLogin(); l.ACR != oauth.ACRPassword || !l.AuthTime.Equal(base.AuthTime) {
		t.Errorf("after the stepped-up lifetime: %+v", l)
	}
	// A second step-up keeps the original base.
	e.authRequest("req-2")
	p2 := e.pending("req-2")
	p2.Requirement.ACR = oauth.ACRPhishingResist
	e.s.Authenticate(newRecorder(), b.request(http.MethodGet, "/oauth2/authorize", nil), p2)
	if status, _ := b.ceremony("stepup", apiRequest{Req: "req-2"}, assertWith(t, a, softauth.Synced)); status != http.StatusOK {
		t.Fatalf("second step-up: %d", status)
	}
	if se, _ := e.store.GetSession(ctx, l.SessionID); se.BaseACR != oauth.ACRPassword || !se.BaseAuthTime.Equal(base.AuthTime) {
		t.Errorf("second step-up lost the base: %+v", se)
	}
}

func TestStepUpFailures(t *testing.T) {
	t.Run("no user verification", func(t *testing.T) {
		e, a, b, _ := stepUpEnv(t, true)
		status, out := b.ceremony("stepup", apiRequest{Req: "req-1"}, assertWith(t, a, softauth.UP|softauth.BE|softauth.BS))
		if status != http.StatusForbidden || out.Error != "user_verification_required" || !strings.Contains(out.Message, "fingerprint") {
			t.Fatalf("%d %+v", status, out)
		}
		if l := b.currentLogin(); l.ACR != oauth.ACRPassword {
			t.Errorf("session elevated by a failed step-up: %+v", l)
		}
		if len(events(t, e.store, "login.step_up_failure")) != 1 {
			t.Error("no login.step_up_failure event")
		}
		// Giving up sends "unmet" to the client.
		b.post("/login", url.Values{"req": {"req-1"}, "action": {"cancel"}})
		if a, _ := e.store.GetAuthRequest(context.Background(), "req-1"); a.Outcome != outcomeUnmet {
			t.Errorf("outcome %q", a.Outcome)
		}
	})
	t.Run("no passkey", func(t *testing.T) {
		_, _, b, _ := stepUpEnv(t, false)
		body := readBody(t, b.get("/login?req=req-1"))
		if !hasErrorMarker(body) || !strings.Contains(body, "no passkey yet") || strings.Contains(body, `data-test="stepup-start"`) {
			t.Errorf("step-up page without passkeys:\n%s", body)
		}
		status, out := b.api("/webauthn/stepup/begin", apiRequest{Req: "req-1"})
		if status != http.StatusConflict || out.Error != "no_passkeys" {
			t.Errorf("begin: %d %+v", status, out)
		}
	})
	t.Run("bound to another request", func(t *testing.T) {
		e, a, b, _ := stepUpEnv(t, true)
		e.authRequest("req-2")
		p2 := e.pending("req-2")
		p2.Requirement.ACR = oauth.ACRPhishingResist
		e.s.Authenticate(newRecorder(), b.request(http.MethodGet, "/oauth2/authorize", nil), p2)
		_, opts := b.api("/webauthn/stepup/begin", apiRequest{Req: "req-1"})
		status, out := b.api("/webauthn/stepup/finish", apiRequest{Req: "req-2", Credential: assertWith(t, a, softauth.Synced)(opts.Options)})
		if status != http.StatusBadRequest || b.currentLogin().ACR != oauth.ACRPassword {
			t.Errorf("%d %+v", status, out)
		}
	})
	t.Run("signed out", func(t *testing.T) {
		e, _, _, _ := stepUpEnv(t, true)
		status, out := e.browser().api("/webauthn/stepup/begin", apiRequest{Req: "req-1"})
		if status != http.StatusUnauthorized || out.Redirect != "/login?req=req-1" {
			t.Errorf("%d %+v", status, out)
		}
	})
	t.Run("unknown request", func(t *testing.T) {
		_, _, b, _ := stepUpEnv(t, true)
		status, out := b.api("/webauthn/stepup/begin", apiRequest{Req: "nope"})
		if status != http.StatusBadRequest || out.Error != "request_expired" {
			t.Errorf("%d %+v", status, out)
		}
	})
}

func TestEnrollLink(t *testing.T) {
	e := newEnv(t)
	pk := e.withPasskeys()
	link, err := NewEnrollLink("http://localhost:8080/", e.cfg.CookieKeys[0], e.user.ID, e.clock.Now().Add(EnrollLinkLifetime))
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(link)
	tok := u.Query().Get("token")
	if u.Scheme+"://"+u.Host != "http://localhost:8080" || u.Path != "/enroll" || tok == "" {
		t.Fatalf("link %q", link)
	}
	b := e.browser()
	body := readBody(t, b.get(u.RequestURI()))
	if !strings.Contains(body, `data-test="passkey-enroll"`) || !strings.Contains(body, "alice") || hasErrorMarker(body) {
		t.Fatalf("enrolment page:\n%s", body)
	}

	for name, bad := range map[string]string{
		"tampered":  tok[:len(tok)-2] + "xx",
		"garbage":   "e1.not-a-token",
		"empty":     "",
		"other key": mustLink(t, CookieKey{HashKey: []byte(strings.Repeat("z", 32))}, e.user.ID, e.clock.Now().Add(time.Minute)),
	} {
		res := b.get("/enroll?token=" + url.QueryEscape(bad))
		if body := readBody(t, res); res.StatusCode != http.StatusBadRequest || !strings.Contains(body, "not valid") {
			t.Errorf("%s token: %d", name, res.StatusCode)
		}
		if status, out := b.api("/webauthn/register/begin", apiRequest{Token: bad}); name != "empty" && (status != http.StatusBadRequest || out.Error != "link_invalid") {
			t.Errorf("%s token, begin: %d %+v", name, status, out)
		}
	}

	a := newAuthenticator(t)
	status, out := b.ceremony("register", apiRequest{Token: tok, Nickname: "Laptop"}, registerWith(t, a, softauth.Synced))
	if status != http.StatusOK || out.Message != msgEnrolled {
		t.Fatalf("enrol: %d %+v", status, out)
	}
	list, _ := pk.List(context.Background(), e.user.ID)
	if len(list) != 1 || list[0].Nickname != "Laptop" {
		t.Fatalf("passkeys %+v", list)
	}
	if b.currentLogin() != nil {
		t.Error("enrolling through a link signed the browser in")
	}
	// Single use: the page says so, and a second ceremony is refused.
	if body := readBody(t, b.get(u.RequestURI())); !strings.Contains(body, "already been used") {
		t.Error("spent link not reported as used")
	}
	if status, out := b.api("/webauthn/register/begin", apiRequest{Token: tok}); status != http.StatusBadRequest || out.Message != msgLinkUsed {
		t.Errorf("begin with a spent link: %d %+v", status, out)
	}

	// Expiry.
	tok2 := mustLink(t, e.cfg.CookieKeys[0], e.user.ID, e.clock.Now().Add(EnrollLinkLifetime))
	e.clock.Advance(EnrollLinkLifetime + time.Second)
	if body := readBody(t, b.get("/enroll?token="+url.QueryEscape(tok2))); !strings.Contains(body, "expired") || !hasErrorMarker(body) {
		t.Error("expired link not reported")
	}
}

func mustLink(t *testing.T, key CookieKey, userID string, exp time.Time) string {
	t.Helper()
	link, err := NewEnrollLink("http://localhost:8080", key, userID, exp)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(link)
	return u.Query().Get("token")
}

func TestAccountPasskeys(t *testing.T) {
	e := newEnv(t)
	pk := e.withPasskeys()
	ctx := context.Background()
	b := e.browser()
	b.login()

	// A fresh password sign-in may add the first passkey.
	body := readBody(t, b.get("/account"))
	if !strings.Contains(body, `data-test="passkey-list"`) || !strings.Contains(body, `data-test="passkey-enroll"`) || !strings.Contains(body, `data-test="logout"`) {
		t.Fatalf("account page:\n%s", body)
	}
	a := newAuthenticator(t)
	status, out := b.ceremony("register", apiRequest{}, registerWith(t, a, softauth.Synced))
	if status != http.StatusOK || !strings.HasPrefix(out.Redirect, "/account?notice=passkey-added") {
		t.Fatalf("add first passkey: %d %+v", status, out)
	}
	if body := readBody(t, b.get(out.Redirect)); !strings.Contains(body, `data-test="passkey-enrolled"`) || !strings.Contains(body, "Google Password Manager") {
		t.Error("account page does not show the new passkey")
	}
	// Now that there is a passkey, a password sign-in is not enough.
	second := newAuthenticator(t)
	if status, out := b.ceremony("register", apiRequest{}, registerWith(t, second, softauth.Synced)); status != http.StatusForbidden || out.Error != "reauth" {
		t.Fatalf("add with a password session: %d %+v", status, out)
	}
	list, _ := pk.List(ctx, e.user.ID)
	id := passkey.EncodeID(list[0].ID)
	res := b.post("/account/passkeys/delete", url.Values{"id": {id}})
	if loc := res.Header.Get("Location"); res.StatusCode != http.StatusSeeOther || !strings.Contains(loc, "notice=reauth") {
		t.Fatalf("delete without a fresh ceremony: %d %q", res.StatusCode, loc)
	}
	if body := readBody(t, b.get("/account")); !strings.Contains(body, `data-test="passkey-reauth"`) {
		t.Error("no way to confirm with a passkey offered")
	}

	// Confirm with the passkey, then add and delete.
	a.UserHandle = []byte(e.user.ID)
	if status, out := b.ceremony("stepup", apiRequest{Purpose: purposeAccount}, assertWith(t, a, softauth.Synced)); status != http.StatusOK || !strings.HasPrefix(out.Redirect, "/account") {
		t.Fatalf("confirm: %d %+v", status, out)
	}
	if status, _ := b.ceremony("register", apiRequest{}, registerWith(t, second, softauth.Synced)); status != http.StatusOK {
		t.Fatalf("add after confirming: %d", status)
	}
	res = b.post("/account/passkeys/rename", url.Values{"id": {id}, "nickname": {"  Old phone "}})
	if loc := res.Header.Get("Location"); !strings.Contains(loc, "notice=passkey-renamed") {
		t.Errorf("rename: %q", loc)
	}
	res = b.post("/account/passkeys/rename", url.Values{"id": {id}, "nickname": {""}})
	if loc := res.Header.Get("Location"); !strings.Contains(loc, "notice=bad-name") {
		t.Errorf("empty rename: %q", loc)
	}
	res = b.post("/account/passkeys/delete", url.Values{"id": {id}})
	if loc := res.Header.Get("Location"); !strings.Contains(loc, "notice=passkey-deleted") {
		t.Fatalf("delete: %q", loc)
	}
	if list, _ := pk.List(ctx, e.user.ID); len(list) != 1 {
		t.Fatalf("%d passkeys after delete", len(list))
	}
	// Someone else's passkey, or garbage, is "not found".
	res = b.post("/account/passkeys/delete", url.Values{"id": {"!!"}})
	if loc := res.Header.Get("Location"); !strings.Contains(loc, "notice=passkey-missing") {
		t.Errorf("bad id: %q", loc)
	}
	// The deleted passkey no longer signs in.
	if status, out := e.browser().ceremony("login", apiRequest{}, assertWith(t, a, softauth.Synced)); status != http.StatusBadRequest || out.Error != "unknown_credential" {
		t.Errorf("login with a deleted passkey: %d %+v", status, out)
	}

	// Without a password, the last passkey stays.
	if err := e.store.UpdateUser(ctx, e.user.ID, func(u storage.User) (storage.User, error) {
		u.PasswordHash = ""
		return u, nil
	}); err != nil {
		t.Fatal(err)
	}
	list, _ = pk.List(ctx, e.user.ID)
	res = b.post("/account/passkeys/delete", url.Values{"id": {passkey.EncodeID(list[0].ID)}})
	if loc := res.Header.Get("Location"); !strings.Contains(loc, "notice=last-passkey") {
		t.Errorf("delete the last passkey of a passwordless user: %q", loc)
	}

	// The window closes.
	e.clock.Advance(ReauthWindow + time.Second)
	if status, out := b.ceremony("register", apiRequest{}, registerWith(t, newAuthenticator(t), softauth.Synced)); status != http.StatusForbidden || out.Error != "reauth" {
		t.Errorf("add after the window: %d %+v", status, out)
	}
}

func TestLoginReauthForm(t *testing.T) {
	e := newEnv(t)
	e.withPasskeys()
	b := e.browser()
	b.login()
	res := b.get("/login?reauth=1&return=%2Faccount")
	body := readBody(t, res)
	if res.StatusCode != http.StatusOK || !strings.Contains(body, `value="alice"`) || !strings.Contains(body, msgReauth) {
		t.Fatalf("reauth form: %d", res.StatusCode)
	}
	if res := b.get("/login?return=%2Faccount"); res.StatusCode != http.StatusSeeOther {
		t.Errorf("signed-in /login without reauth: %d", res.StatusCode)
	}
}
