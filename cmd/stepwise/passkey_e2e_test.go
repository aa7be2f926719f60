package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/stepwise-id/stepwise/internal/browsertest"
	"github.com/stepwise-id/stepwise/oauth"
	"github.com/stepwise-id/stepwise/storage"
)

// relyingParty is a client's redirect endpoint that a real browser can
// reach: it records each authorization response.
type relyingParty struct {
	url string
	got chan url.Values
}

func newRelyingParty(t *testing.T) *relyingParty {
	t.Helper()
	rp := &relyingParty{got: make(chan url.Values, 16)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r) // the browser's favicon request
			return
		}
		rp.got <- r.URL.Query()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><title>RP</title><p id="done">back at the application</p>`))
	}))
	t.Cleanup(srv.Close)
	rp.url = srv.URL + "/callback"
	return rp
}

// response waits for the browser to reach the relying party.
func (rp *relyingParty) response(t *testing.T, ctx context.Context) url.Values {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(wctx, chromedp.WaitVisible(chromedp.ID("done"))); err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		body, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
		t.Fatalf("browser did not return to the application: %v (at %s)\n%s", err, loc, body)
	}
	select {
	case q := <-rp.got:
		return q
	case <-time.After(5 * time.Second):
		t.Fatal("the relying party got no request")
		return nil
	}
}

func sel(dataTest string) chromedp.CSS { return chromedp.CSS(`[data-test="` + dataTest + `"]`) }

// step runs browser actions, failing with what the page shows. Each step
// gets 20 seconds, so a page that never shows an element fails fast.
func step(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		body, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
		t.Fatalf("%s: %v (at %s)\n%s", what, err, loc, body)
	}
}

// arrive waits until the tab is at a page whose path starts with path and
// the element is visible. Waiting for the URL first keeps the element query
// from starting on the page being navigated away from.
func arrive(t *testing.T, ctx context.Context, path string, element chromedp.CSS) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var loc string
	for time.Now().Before(deadline) {
		loc, _ = chromedp.Run(ctx, chromedp.Location())
		if u, err := url.Parse(loc); err == nil && strings.HasPrefix(u.Path, path) {
			step(t, ctx, "at "+path, chromedp.WaitVisible(element))
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	body, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
	t.Fatalf("the browser did not reach %s; it is at %s\n%s", path, loc, body)
}

func textOf(t *testing.T, ctx context.Context, s chromedp.CSS) string {
	t.Helper()
	txt, err := chromedp.Run(ctx, chromedp.Text(s))
	if err != nil {
		t.Fatalf("read %s: %v", s, err)
	}
	return txt
}

// virtualAuthenticator adds a platform authenticator to the tab as a phone
// or laptop has: CTAP 2.1, internal transport, resident keys, user
// verification that succeeds, and synced (backed-up) passkeys.
func virtualAuthenticator(t *testing.T, ctx context.Context) webauthn.AuthenticatorID {
	t.Helper()
	noUI := false
	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{EnableUI: &noUI}); err != nil {
		t.Fatalf("WebAuthn.enable: %v", err)
	}
	res, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol:                    webauthn.AuthenticatorProtocolCtap2,
			Ctap2version:                webauthn.Ctap2versionCtap21,
			Transport:                   webauthn.AuthenticatorTransportInternal,
			HasResidentKey:              true,
			HasUserVerification:         true,
			IsUserVerified:              true,
			AutomaticPresenceSimulation: true,
			DefaultBackupEligibility:    true,
			DefaultBackupState:          true,
		},
	})
	if err != nil {
		t.Fatalf("add virtual authenticator: %v", err)
	}
	return res.AuthenticatorID
}

func setUV(t *testing.T, ctx context.Context, id webauthn.AuthenticatorID, verified, forgeBadUV bool) {
	t.Helper()
	if _, err := chromedp.Call(ctx, webauthn.SetUserVerified, webauthn.SetUserVerifiedParams{AuthenticatorID: id, IsUserVerified: verified}); err != nil {
		t.Fatalf("set user verified: %v", err)
	}
	if _, err := chromedp.Call(ctx, webauthn.SetResponseOverrideBits, webauthn.SetResponseOverrideBitsParams{AuthenticatorID: id, IsBadUV: &forgeBadUV}); err != nil {
		t.Fatalf("set response override bits: %v", err)
	}
}

type idClaims struct {
	ACR      string   `json:"acr"`
	AMR      []string `json:"amr"`
	AuthTime int64    `json:"auth_time"`
	Nonce    string   `json:"nonce"`
}

// TestBrowserPasskeys drives the passkey pages in headless Chromium with a
// virtual authenticator, against the server as `stepwise serve` wires it:
// enrolment through a link printed by the CLI, usernameless sign-in in an
// OIDC code flow, step-up of a password session for acr_values=phr, an
// authenticator whose user verification fails, and deletion from /account.
func TestBrowserPasskeys(t *testing.T) {
	ctx := browsertest.New(t, 3*time.Minute)
	dbPath := filepath.Join(t.TempDir(), "stepwise.db")
	store, err := openStore(t.Context(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	e := startE2E(t, store, fileConfig{})
	rp := newRelyingParty(t)
	client, err := e.srv.registry.Create(t.Context(), oauth.Metadata{
		ClientName:   "Payments",
		RedirectURIs: []string{rp.url},
		GrantTypes:   []string{"authorization_code"},
		Scope:        oauth.ScopeList{"openid", "profile"},
	})
	if err != nil {
		t.Fatal(err)
	}
	provider, err := oidc.NewProvider(t.Context(), e.issuer)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &oauth2.Config{ClientID: client.ClientID, ClientSecret: client.ClientSecret, Endpoint: provider.Endpoint(),
		RedirectURL: rp.url, Scopes: []string{oidc.ScopeOpenID, "profile"}}
	verifier := provider.Verifier(&oidc.Config{ClientID: client.ClientID})

	// codeFlow sends the browser to authorize, lets drive() act on the
	// pages, and redeems the code; it returns the ID token's claims.
	codeFlow := func(t *testing.T, ctx context.Context, extra []oauth2.AuthCodeOption, drive func()) idClaims {
		t.Helper()
		state, nonce, pkce := randomString(t), randomString(t), oauth2.GenerateVerifier()
		opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(pkce), oidc.Nonce(nonce)}, extra...)
		step(t, ctx, "open authorize", chromedp.Navigate(cfg.AuthCodeURL(state, opts...)))
		drive()
		q := rp.response(t, ctx)
		if q.Get("error") != "" || q.Get("state") != state {
			t.Fatalf("authorization response %v", q)
		}
		tok, err := cfg.Exchange(t.Context(), q.Get("code"), oauth2.VerifierOption(pkce))
		if err != nil {
			t.Fatalf("exchange: %v", err)
		}
		raw, _ := tok.Extra("id_token").(string)
		idt, err := verifier.Verify(t.Context(), raw)
		if err != nil {
			t.Fatalf("verify ID token: %v", err)
		}
		var c idClaims
		if err := idt.Claims(&c); err != nil {
			t.Fatal(err)
		}
		if idt.Subject != "user-alice" || c.Nonce != nonce {
			t.Fatalf("ID token sub %q nonce ok %t", idt.Subject, c.Nonce == nonce)
		}
		return c
	}
	wantPhr := func(t *testing.T, c idClaims) {
		t.Helper()
		if c.ACR != oauth.ACRPhishingResist || !slices.Equal(c.AMR, []string{"swk", "user", "mfa"}) {
			t.Fatalf("ID token acr %q amr %v; want phr [swk user mfa]", c.ACR, c.AMR)
		}
	}

	authn := virtualAuthenticator(t, ctx)

	t.Run("enrol through the link printed by the CLI", func(t *testing.T) {
		var out, errOut bytes.Buffer
		cmd := newRootCommand(strings.NewReader(""), &out, &errOut)
		cmd.SetArgs([]string{"user", "enroll-link", "alice", "--db", dbPath, "--issuer", e.issuer})
		if err := cmd.ExecuteContext(t.Context()); err != nil {
			t.Fatalf("enroll-link: %v\n%s", err, errOut.String())
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		link := lines[len(lines)-1]
		if !strings.HasPrefix(link, e.issuer+"/enroll?token=") {
			t.Fatalf("last line %q is not an enrolment URL on the issuer", link)
		}
		step(t, ctx, "open enrolment link", chromedp.Navigate(link), chromedp.WaitVisible(sel("passkey-enroll")))
		browsertest.Screenshot(t, ctx, "enroll")
		step(t, ctx, "enrol",
			chromedp.SendKeys(chromedp.ID("nickname"), "Work laptop"),
			chromedp.Click(sel("passkey-enroll")),
			chromedp.WaitVisible(sel("passkey-enrolled")))
		browsertest.Screenshot(t, ctx, "enrolled")
		creds, err := store.ListUserCredentials(t.Context(), "user-alice")
		if err != nil || len(creds) != 1 || creds[0].Nickname != "Work laptop" || !creds[0].BackupEligible {
			t.Fatalf("stored passkeys %+v, %v", creds, err)
		}
		// The link works once.
		step(t, ctx, "reopen the spent link", chromedp.Navigate(link), chromedp.WaitVisible(sel("error")))
		if txt := textOf(t, ctx, sel("error")); !strings.Contains(txt, "already been used") {
			t.Errorf("spent link says %q", txt)
		}
	})

	// A second tab without the authenticator shares the cookies: there the
	// sign-in page's passkey autofill (conditional mediation, which a
	// virtual authenticator answers at once) cannot sign in before the
	// password form is used.
	plain, cancelPlain := chromedp.NewContext(ctx)
	t.Cleanup(cancelPlain)
	if err := chromedp.Do(plain); err != nil {
		t.Fatal(err)
	}
	signOut := func(t *testing.T) {
		t.Helper()
		step(t, ctx, "sign out", chromedp.Navigate(e.issuer+"/logout"), chromedp.WaitVisible(sel("logout")),
			chromedp.Click(sel("logout")))
		arrive(t, ctx, "/logout", chromedp.CSS(`a[href="/login"]`))
	}

	t.Run("usernameless sign-in yields phr", func(t *testing.T) {
		// acr_values=phr without a session: passkey only, no autofill.
		c := codeFlow(t, ctx, []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("acr_values", "phr")}, func() {
			arrive(t, ctx, "/login", sel("passkey-login"))
			browsertest.Screenshot(t, ctx, "login-passkey-only")
			step(t, ctx, "passkey sign-in", chromedp.Click(sel("passkey-login")))
			arrive(t, ctx, "/consent", sel("consent-allow"))
			browsertest.Screenshot(t, ctx, "consent")
			step(t, ctx, "consent", chromedp.Click(sel("consent-allow")))
		})
		wantPhr(t, c)
		ev, err := store.ListEvents(t.Context(), storage.EventFilter{Type: "login.success", UserID: "user-alice"})
		if err != nil || len(ev) == 0 || !strings.Contains(string(ev[0].Data), `"method":"passkey"`) {
			t.Fatalf("login.success events %v, %v", ev, err)
		}
	})

	t.Run("passkey autofill signs in", func(t *testing.T) {
		signOut(t)
		c := codeFlow(t, ctx, nil, func() {
			// The page starts a conditional request on load; the virtual
			// authenticator picks the passkey as a user would from the
			// username field's autofill.
		})
		wantPhr(t, c)
	})

	t.Run("a password session steps up to phr", func(t *testing.T) {
		signOut(t)
		step(t, plain, "sign-in page", chromedp.Navigate(e.issuer+"/login"), chromedp.WaitVisible(sel("password")))
		browsertest.Screenshot(t, plain, "login")
		c := codeFlow(t, plain, nil, func() {
			arrive(t, plain, "/login", sel("password"))
			step(t, plain, "password sign-in",
				chromedp.SendKeys(sel("username"), e.username),
				chromedp.SendKeys(sel("password"), e.password),
				chromedp.Click(sel("submit")))
		})
		if c.ACR != oauth.ACRPassword {
			t.Fatalf("password sign-in gave acr %q", c.ACR)
		}
		c = codeFlow(t, ctx, []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("acr_values", "phr")}, func() {
			arrive(t, ctx, "/login", sel("stepup-start"))
			browsertest.Screenshot(t, ctx, "stepup")
			step(t, ctx, "step up", chromedp.Click(sel("stepup-start")))
		})
		wantPhr(t, c)
		sessions, err := store.ListUserSessions(t.Context(), "user-alice")
		if err != nil {
			t.Fatal(err)
		}
		var elevated *storage.Session
		for i := range sessions {
			if !sessions[i].ElevatedUntil.IsZero() {
				elevated = &sessions[i]
			}
		}
		if elevated == nil || elevated.BaseACR != oauth.ACRPassword || elevated.ACR != oauth.ACRPhishingResist ||
			elevated.ElevatedUntil.Sub(elevated.AuthTime).Round(time.Minute) != 15*time.Minute {
			t.Fatalf("session after step-up: %+v", elevated)
		}
	})

	t.Run("failed user verification cannot satisfy step-up", func(t *testing.T) {
		reauth := []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("acr_values", "phr"), oauth2.SetAuthURLParam("prompt", "login")}
		state := randomString(t)
		step(t, ctx, "open authorize", chromedp.Navigate(cfg.AuthCodeURL(state, append(reauth, oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))...)))
		arrive(t, ctx, "/login", sel("stepup-start"))
		// The authenticator fails user verification: the browser refuses.
		setUV(t, ctx, authn, false, false)
		step(t, ctx, "step up without UV", chromedp.Click(sel("stepup-start")), chromedp.WaitVisible(sel("error")))
		// It claims success but leaves the UV flag clear: the server refuses.
		setUV(t, ctx, authn, true, true)
		step(t, ctx, "step up with the UV flag clear", chromedp.Click(sel("stepup-start")),
			chromedp.Poll[chromedp.Void](`((document.querySelector('[data-test="error"]') || {}).textContent || '').includes('fingerprint')`))
		browsertest.Screenshot(t, ctx, "stepup-failed")
		if txt := textOf(t, ctx, sel("error")); !strings.Contains(txt, "did not confirm") {
			t.Errorf("UV failure message %q", txt)
		}
		step(t, ctx, "cancel", chromedp.Click(sel("cancel")))
		q := rp.response(t, ctx)
		if q.Get("error") != "unmet_authentication_requirements" || q.Get("state") != state {
			t.Fatalf("after cancelling the step-up the client got %v", q)
		}
		setUV(t, ctx, authn, true, false)
	})

	t.Run("a deleted passkey no longer signs in", func(t *testing.T) {
		step(t, ctx, "account page", chromedp.Navigate(e.issuer+"/account"))
		arrive(t, ctx, "/account", sel("passkey-delete"))
		browsertest.Screenshot(t, ctx, "account")
		step(t, ctx, "delete", chromedp.Click(sel("passkey-delete")))
		arrive(t, ctx, "/account", chromedp.CSS(`.notice`))
		step(t, ctx, "deleted", chromedp.WaitNotPresent(sel("passkey-delete")))
		browsertest.Screenshot(t, ctx, "account-deleted")
		if creds, err := store.ListUserCredentials(t.Context(), "user-alice"); err != nil || len(creds) != 0 {
			t.Fatalf("passkeys after delete: %d, %v", len(creds), err)
		}
		signOut(t)
		// The authenticator still holds the passkey and offers it (the
		// autofill request answers at once): the server refuses it.
		step(t, ctx, "sign-in page", chromedp.Navigate(e.issuer+"/login"))
		arrive(t, ctx, "/login", sel("error"))
		browsertest.Screenshot(t, ctx, "login-deleted")
		if txt := textOf(t, ctx, sel("error")); !strings.Contains(txt, "not registered") {
			t.Errorf("deleted passkey message %q", txt)
		}
		if l, _ := chromedp.Run(ctx, chromedp.Location()); !strings.HasSuffix(l, "/login") {
			t.Errorf("a deleted passkey signed in: at %s", l)
		}
		ev, _ := store.ListEvents(t.Context(), storage.EventFilter{Type: "passkey.rejected"})
		if len(ev) == 0 || !strings.Contains(string(ev[0].Data), "unknown_credential") {
			t.Errorf("no passkey.rejected event for the deleted passkey: %v", ev)
		}
	})
}
