package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/google/uuid"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/stepwise-id/stepwise/adaptive"
	"github.com/stepwise-id/stepwise/internal/geotest"
	"github.com/stepwise-id/stepwise/oauth"
	"github.com/stepwise-id/stepwise/passkey/softauth"
	"github.com/stepwise-id/stepwise/storage"
	"github.com/stepwise-id/stepwise/storage/sqlite"
	"github.com/stepwise-id/stepwise/storage/storagetest"
	"github.com/stepwise-id/stepwise/web"
)

const riskTestUA = "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0"

// forwarded stands in for a trusted reverse proxy in front of Stepwise: the
// test client connects from loopback (trusted by default) and says which
// address the browser has with X-Forwarded-For.
type forwarded struct {
	ip   string
	base http.RoundTripper
}

func (f *forwarded) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", f.ip)
	r.Header.Set("User-Agent", riskTestUA)
	return f.base.RoundTrip(r)
}

// browserAt is e.browser() whose requests come from ip through the proxy.
func (e *e2e) browserAt(ip string) (*http.Client, *forwarded) {
	c := e.browser()
	fw := &forwarded{ip: ip, base: http.DefaultTransport}
	c.Transport = fw
	return c, fw
}

// riskFileConfig is the DESIGN.md example policy with a test mmdb.
func riskFileConfig(t *testing.T, mode string) fileConfig {
	return fileConfig{
		Risk: riskConfig{Mode: mode},
		Scopes: map[string]scope{
			"payments:write": {MinACR: "urn:stepwise:acr:pwd", StepUp: &stepUp{RiskAtLeast: 40, ACR: "phr", MaxAge: 300},
				Deny: &threshold{RiskAtLeast: 90}},
		},
		GeoIP: []string{geotest.File(t, geotest.Home, geotest.Abroad, geotest.Hosting, geotest.Distant)},
	}
}

// paymentsClient registers an RP allowed to ask for payments:write.
func (e *e2e) paymentsClient() (*oauth2.Config, oauth.Registered) {
	e.t.Helper()
	reg, err := e.srv.registry.Create(e.t.Context(), oauth.Metadata{
		ClientName:   "Payments RP",
		RedirectURIs: []string{e.redirect},
		GrantTypes:   []string{"authorization_code"},
		Scope:        oauth.ScopeList{"openid", "payments:write"},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	base, _ := e.oauth2Config(e.t.Context())
	return &oauth2.Config{
		ClientID: reg.ClientID, ClientSecret: reg.ClientSecret, RedirectURL: e.redirect,
		Endpoint: base.Endpoint, Scopes: []string{"openid", "payments:write"},
	}, reg
}

// seedHistory gives alice n daily sign-ins from ip on device, as the live
// server records them, and reloads the gate's history from the log.
func (e *e2e) seedHistory(ip, device string, n int) {
	e.t.Helper()
	now := time.Now().UTC()
	for i := n; i >= 1; i-- {
		data, _ := json.Marshal(map[string]any{"user_agent": riskTestUA, "device": device, "method": "password",
			"acr": "urn:stepwise:acr:pwd"})
		err := e.store.CreateEvent(e.t.Context(), storage.Event{ID: "seed-" + randomString(e.t), Type: "login.success",
			UserID: "user-alice", SessionID: "old-session", IPAddress: ip, Time: now.AddDate(0, 0, -i).Add(-time.Hour), Data: data})
		if err != nil {
			e.t.Fatal(err)
		}
	}
	if err := e.srv.risk.Rebuild(e.t.Context()); err != nil {
		e.t.Fatal(err)
	}
}

// deviceOfLastLogin is the device id the last sign-in's event recorded.
func (e *e2e) deviceOfLastLogin() string {
	e.t.Helper()
	evs, err := e.store.ListEvents(e.t.Context(), storage.EventFilter{Type: "login.success", UserID: "user-alice", Limit: 1})
	if err != nil || len(evs) == 0 {
		e.t.Fatalf("no login event: %v", err)
	}
	var d struct {
		Device string `json:"device"`
	}
	_ = json.Unmarshal(evs[0].Data, &d)
	if d.Device == "" {
		e.t.Fatalf("login event without a device id: %s", evs[0].Data)
	}
	return d.Device
}

// authorize starts a code flow in browser and follows it to wherever it
// ends: the client's redirect URI or a page of ours.
func (e *e2e) authorize(c *http.Client, cfg *oauth2.Config) (page, string, string) {
	e.t.Helper()
	state, verifier := randomString(e.t), oauth2.GenerateVerifier()
	return get(e.t, c, cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))), state, verifier
}

// redirectQuery returns the query of a redirect to the client.
func (e *e2e) redirectQuery(p page) url.Values {
	e.t.Helper()
	if p.resp.StatusCode/100 != 3 || !strings.HasPrefix(p.resp.Header.Get("Location"), e.redirect) {
		e.t.Fatalf("want a redirect to the client, got %d at %s:\n%.2000s", p.resp.StatusCode, p.url, p.body)
	}
	loc, _ := url.Parse(p.resp.Header.Get("Location"))
	return loc.Query()
}

// riskDecisions returns the recorded decisions, newest first.
func riskDecisions(t *testing.T, s storage.Storage) []adaptive.Decision {
	t.Helper()
	evs, err := s.ListEvents(t.Context(), storage.EventFilter{Type: riskEventType, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]adaptive.Decision, 0, len(evs))
	for _, ev := range evs {
		var d adaptive.Decision
		if err := json.Unmarshal(ev.Data, &d); err != nil {
			t.Fatalf("decision %s: %v", ev.ID, err)
		}
		if d.ID != ev.ID {
			t.Fatalf("decision id %q in event %q", d.ID, ev.ID)
		}
		out = append(out, d)
	}
	return out
}

func TestEndToEndRiskStepUpAndDeny(t *testing.T) {
	const home, abroad, sydney = "198.51.100.7", "203.0.113.9", "100.64.1.20"
	e := startE2E(t, openRiskStore(t), riskFileConfig(t, "enforce"))
	cfg, rp := e.paymentsClient()

	// The user's usual browser signs in from home (its first sign-in: the
	// device cookie is set), then gets history from that network and device.
	browser, _ := e.browserAt(home)
	p := e.login(browser, (&oauth2.Config{ClientID: cfg.ClientID, RedirectURL: e.redirect,
		Endpoint: cfg.Endpoint, Scopes: []string{"openid"}}).AuthCodeURL(randomString(t), oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	e.redirectQuery(p)
	e.seedHistory(home, e.deviceOfLastLogin(), 20)

	t.Run("usual network and device: a code without step-up", func(t *testing.T) {
		p, state, verifier := e.authorize(browser, cfg)
		if p.url.Path == "/consent" {
			p = e.submit(browser, p, "/consent", url.Values{"decision": {"allow"}})
		}
		code := e.codeFrom(p, state)
		tok, err := cfg.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		in := introspectAs(t, e, rp, tok.AccessToken)
		if in["acr"] != "urn:stepwise:acr:pwd" || !strings.Contains(in["scope"].(string), "payments:write") {
			t.Fatalf("introspection: %v", in)
		}
		id, _ := in["risk_decision"].(string)
		d := decisionByID(t, e.store, id)
		if d.Action != adaptive.ActionAllow || !d.Enforced {
			t.Fatalf("introspection's risk_decision %q: %+v", id, d)
		}
	})

	t.Run("impossible travel: access_denied", func(t *testing.T) {
		// The usual browser's session is used from Sydney minutes after a
		// sign-in in Oslo.
		thief, fw := e.browserAt(home)
		thief.Jar = browser.Jar
		fw.ip = sydney
		p, state, _ := e.authorize(thief, cfg)
		q := e.redirectQuery(p)
		if q.Get("error") != "access_denied" || q.Get("state") != state || q.Get("error_description") == "" {
			t.Fatalf("want access_denied with a description, got %v", q)
		}
		d := riskDecisions(t, e.store)[0]
		if d.Action != adaptive.ActionDeny || d.Factors[0].Name != "impossible_travel" {
			t.Fatalf("decision: %+v", d)
		}
	}) // Alice has a user-verifying passkey.
	auth := e.enrollPasskey()
	provider, err := oidc.NewProvider(t.Context(), e.issuer)
	if err != nil {
		t.Fatal(err)
	}
	idVerifier := provider.Verifier(&oidc.Config{ClientID: cfg.ClientID})

	t.Run("another country: sent to the passkey step-up", func(t *testing.T) {
		// Alice's password, typed in a browser abroad that never signed in.
		other, _ := e.browserAt(abroad)
		p, state, verifier := e.authorize(other, cfg)
		if p.url.Path != "/login" {
			t.Fatalf("want the sign-in page, got %s", p.url)
		}
		p = e.submit(other, p, "/login", url.Values{"username": {e.username}, "password": {e.password}})
		if p.url.Path != "/login" || p.url.Query().Get("req") == "" {
			t.Fatalf("after the password, want the step-up page, got %d %s:\n%.2000s", p.resp.StatusCode, p.url, p.body)
		}
		if !strings.Contains(p.body, "confirm it") {
			t.Fatalf("step-up page does not say why:\n%.3000s", p.body)
		}
		ar, err := e.store.GetAuthRequest(t.Context(), p.url.Query().Get("req"))
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			Requirement oauth.Requirement `json:"requirement"`
		}
		if err := json.Unmarshal(ar.Data, &st); err != nil {
			t.Fatal(err)
		}
		if st.Requirement.ACR != "phr" || time.Since(st.Requirement.AuthenticatedAfter) > 301*time.Second {
			t.Fatalf("paused request's requirement: %+v", st.Requirement)
		}
		d := riskDecisions(t, e.store)[0]
		if d.Action != adaptive.ActionStepUp || d.TopFactor() != "new_country" {
			t.Fatalf("decision: %+v", d)
		}
		// The risky sign-in did not become history.
		if d.HistoryLen != 21 {
			t.Fatalf("history %d logins, want 21 (20 seeded + the first sign-in)", d.HistoryLen)
		}

		// The user completes the step-up with a user-verified passkey (a
		// software authenticator driving the ceremony's JSON endpoints).
		if !strings.Contains(p.body, `data-test="stepup-start"`) {
			t.Fatalf("step-up page without the step-up button:\n%.3000s", p.body)
		}
		reqID := p.url.Query().Get("req")
		begin := e.webauthn(other, "/webauthn/stepup/begin", map[string]any{"req": reqID})
		cred, err := auth.Assert(begin.Options, softauth.UP|softauth.UV|softauth.BE|softauth.BS)
		if err != nil {
			t.Fatal(err)
		}
		fin := e.webauthn(other, "/webauthn/stepup/finish", map[string]any{"req": reqID, "credential": json.RawMessage(cred)})
		if fin.Redirect == "" {
			t.Fatalf("step-up finish: %+v", fin)
		}
		p = get(t, other, e.issuer+fin.Redirect)
		if p.url.Path == "/consent" {
			p = e.submit(other, p, "/consent", url.Values{"decision": {"allow"}})
		}
		q := e.redirectQuery(p)
		if q.Get("state") != state || q.Get("code") == "" {
			t.Fatalf("after step-up: %v", q)
		}
		tok, err := cfg.Exchange(t.Context(), q.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		idt, err := idVerifier.Verify(t.Context(), tok.Extra("id_token").(string))
		if err != nil {
			t.Fatal(err)
		}
		var claims struct {
			ACR string   `json:"acr"`
			AMR []string `json:"amr"`
		}
		if err := idt.Claims(&claims); err != nil || claims.ACR != "phr" {
			t.Fatalf("ID token acr %q amr %v (%v), want phr", claims.ACR, claims.AMR, err)
		}
		in := introspectAs(t, e, rp, tok.AccessToken)
		if in["acr"] != "phr" || in["risk_decision"] == nil {
			t.Fatalf("introspection after step-up: %v", in)
		}
	})

}

func TestEndToEndRiskMonitorMode(t *testing.T) {
	const home, abroad = "198.51.100.7", "203.0.113.9"
	dbPath := filepath.Join(t.TempDir(), "stepwise.db")
	store, err := sqlite.Open(t.Context(), dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if _, err := store.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	e := startE2E(t, store, riskFileConfig(t, "monitor"))
	cfg, _ := e.paymentsClient()
	e.seedHistory(home, "some-device", 20)

	// From abroad, a fresh browser: the policy would step up, but monitor
	// mode only records it.
	other, _ := e.browserAt(abroad)
	p, state, verifier := e.authorize(other, cfg)
	p = e.submit(other, p, "/login", url.Values{"username": {e.username}, "password": {e.password}})
	if p.url.Path == "/consent" {
		p = e.submit(other, p, "/consent", url.Values{"decision": {"allow"}})
	}
	if _, err := cfg.Exchange(t.Context(), e.codeFrom(p, state), oauth2.VerifierOption(verifier)); err != nil {
		t.Fatal(err)
	}
	d := riskDecisions(t, e.store)[0]
	if d.Action != adaptive.ActionStepUp || d.Enforced || d.Mode != adaptive.ModeMonitor {
		t.Fatalf("recorded decision: %+v", d)
	}

	// The operator sees it with the CLI, on the same database.
	c := &cli{t: t, db: dbPath}
	list := c.run("", "risk", "events", "--user", "alice")
	if !strings.Contains(list, d.ID) || !strings.Contains(list, "step_up (monitor)") {
		t.Fatalf("risk events:\n%s", list)
	}
	var views []eventView
	if err := json.Unmarshal([]byte(c.run("", "risk", "events", "--json")), &views); err != nil || len(views) == 0 {
		t.Fatalf("risk events --json: %v", err)
	}
	explained := c.run("", "risk", "explain", d.ID)
	for _, want := range []string{d.ID, "new_country", "alice", "step_up", "payments:write"} {
		if !strings.Contains(explained, want) && !(want == "alice" && strings.Contains(explained, "user-alice")) {
			t.Fatalf("risk explain lacks %q:\n%s", want, explained)
		}
	}
	for _, f := range d.Factors {
		if !strings.Contains(explained, f.Name) {
			t.Fatalf("risk explain lacks factor %s:\n%s", f.Name, explained)
		}
	}
}

func TestEndToEndRiskMachineClient(t *testing.T) {
	const home, hosting = "198.51.100.7", "192.0.2.80"
	store := openRiskStore(t)
	boot := startE2E(t, store, fileConfig{})
	mk := func(name string) oauth.Registered {
		reg, err := boot.srv.registry.Create(t.Context(), oauth.Metadata{ClientName: name,
			GrantTypes: []string{"client_credentials"}, Scope: oauth.ScopeList{"api.read"}})
		if err != nil {
			t.Fatal(err)
		}
		return reg
	}
	flagged, denied, keyed := mk("flagged batch"), mk("denied batch"), mk("keyed batch")
	fc := riskFileConfig(t, "enforce")
	fc.Clients = map[string]clientPolicy{
		flagged.ClientID: {MachineRisk: "allow_and_flag"},
		denied.ClientID:  {MachineRisk: "deny"},
		keyed.ClientID:   {MachineRisk: "require_private_key_jwt"},
	}
	e := newRiskServer(t, store, fc)
	base, _ := e.oauth2Config(t.Context())
	tokenURL := base.Endpoint.TokenURL

	token := func(reg oauth.Registered, ip string) (*oauth2.Token, error) {
		cc := clientcredentials.Config{ClientID: reg.ClientID, ClientSecret: reg.ClientSecret,
			TokenURL: tokenURL, Scopes: []string{"api.read"}, AuthStyle: oauth2.AuthStyleInHeader}
		ctx := t.Context()
		ctx = contextWithClient(ctx, &http.Client{Transport: &forwarded{ip: ip, base: http.DefaultTransport}})
		return cc.Token(ctx)
	}
	for _, reg := range []oauth.Registered{flagged, denied, keyed} {
		for i := range 5 {
			if _, err := token(reg, home); err != nil {
				t.Fatalf("%s: request %d from its usual network: %v", reg.ClientName, i, err)
			}
		}
	}
	// Suddenly from a new ASN.
	tok, err := token(flagged, hosting)
	if err != nil {
		t.Fatalf("allow_and_flag: %v", err)
	}
	in := introspectAs(t, e, flagged, tok.AccessToken)
	id, _ := in["risk_decision"].(string)
	if d := decisionByID(t, store, id); d.Action != adaptive.ActionAllow || !strings.HasPrefix(d.Explanation, "flagged") {
		t.Fatalf("allow_and_flag decision: %+v", d)
	}
	if _, err := token(denied, hosting); err == nil || !strings.Contains(err.Error(), "access_denied") {
		t.Fatalf("deny policy: want access_denied, got %v", err)
	}
	if _, err := token(denied, home); err != nil {
		t.Fatalf("deny policy refused the usual network: %v", err)
	}
	// require_private_key_jwt: from the new ASN a client secret is refused.
	if _, err := token(keyed, hosting); err == nil || !strings.Contains(err.Error(), "invalid_client") ||
		!strings.Contains(err.Error(), "private_key_jwt") {
		t.Fatalf("require_private_key_jwt with a secret: want invalid_client, got %v", err)
	}
	evs, err := store.ListEvents(t.Context(), storage.EventFilter{Type: riskEventType, Limit: 1})
	if err != nil || len(evs) != 1 || evs[0].ClientID != keyed.ClientID || evs[0].IPAddress != hosting {
		t.Fatalf("refusal not recorded: %v %v", evs, err)
	}
}

func openRiskStore(t *testing.T) storage.Storage { return storagetest.SQLite(t) }

// newRiskServer serves a second server over a store startE2E already
// populated (same user), with another config.
func newRiskServer(t *testing.T, store storage.Storage, fc fileConfig) *e2e {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://localhost:" + portOf(ln.Addr())
	srv, err := newServer(t.Context(), store, fc, issuer, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("newServer: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	hs := httptest.NewUnstartedServer(srv.handler)
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	t.Cleanup(hs.Close)
	return &e2e{t: t, issuer: issuer, store: store, srv: srv, redirect: "http://127.0.0.1:9/callback"}
}

func contextWithClient(ctx context.Context, c *http.Client) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, c)
}

// introspectAs introspects token, authenticating as reg.
func introspectAs(t *testing.T, e *e2e, reg oauth.Registered, token string) map[string]any {
	t.Helper()
	saved := e.client
	e.client = reg
	defer func() { e.client = saved }()
	return introspect(t, e, token)
}

// decisionByID loads one recorded decision.
func decisionByID(t *testing.T, s storage.Storage, id string) adaptive.Decision {
	t.Helper()
	if id == "" {
		t.Fatal("no risk_decision")
	}
	ev, err := s.GetEvent(t.Context(), id)
	if err != nil {
		t.Fatalf("risk decision %q: %v", id, err)
	}
	var d adaptive.Decision
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// webauthnResponse is the body of every /webauthn/ answer.
type webauthnResponse struct {
	Options  json.RawMessage `json:"options"`
	Redirect string          `json:"redirect"`
	Message  string          `json:"message"`
	Error    string          `json:"error"`
}

// webauthn posts a ceremony step as the page's script does.
func (e *e2e) webauthn(c *http.Client, path string, body any) webauthnResponse {
	e.t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, e.issuer+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", e.issuer)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out webauthnResponse
	if err := json.Unmarshal(raw, &out); err != nil || resp.StatusCode != http.StatusOK {
		e.t.Fatalf("POST %s: %d %s", path, resp.StatusCode, raw)
	}
	return out
}

// enrollPasskey enrols a synced, user-verifying passkey for alice through
// an enrolment link and returns the authenticator holding it.
func (e *e2e) enrollPasskey() *softauth.Authenticator {
	e.t.Helper()
	secret, err := oauth.LoadSystemSecret(e.t.Context(), e.store)
	if err != nil {
		e.t.Fatal(err)
	}
	key, err := deriveCookieKey(secret)
	if err != nil {
		e.t.Fatal(err)
	}
	link, err := web.NewEnrollLink(e.issuer, key, "user-alice", time.Now().Add(web.EnrollLinkLifetime))
	if err != nil {
		e.t.Fatal(err)
	}
	u, _ := url.Parse(link)
	tok := u.Query().Get("token")
	auth, err := softauth.New("localhost", e.issuer, uuid.New())
	if err != nil {
		e.t.Fatal(err)
	}
	c := e.browser()
	begin := e.webauthn(c, "/webauthn/register/begin", map[string]any{"token": tok})
	cred, err := auth.Register(begin.Options, softauth.UP|softauth.UV|softauth.BE|softauth.BS)
	if err != nil {
		e.t.Fatal(err)
	}
	e.webauthn(c, "/webauthn/register/finish", map[string]any{"token": tok, "credential": json.RawMessage(cred), "nickname": "laptop"})
	return auth
}
