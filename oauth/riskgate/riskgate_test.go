package riskgate

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stepwise-id/stepwise/adaptive"
	"github.com/stepwise-id/stepwise/adaptive/geo"
	"github.com/stepwise-id/stepwise/internal/geotest"
	"github.com/stepwise-id/stepwise/oauth"
	"github.com/stepwise-id/stepwise/storage"
)

// memEvents is an in-memory audit log.
type memEvents struct {
	mu sync.Mutex
	ev []storage.Event
}

func (m *memEvents) CreateEvent(_ context.Context, e storage.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ev = append(m.ev, e)
	return nil
}

func (m *memEvents) ListEvents(_ context.Context, f storage.EventFilter) ([]storage.Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []storage.Event
	for i := len(m.ev) - 1; i >= 0; i-- {
		e := m.ev[i]
		if (f.Type == "" || e.Type == f.Type) && (f.UserID == "" || e.UserID == f.UserID) && !e.Time.Before(f.Since) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (m *memEvents) ofType(typ string) []storage.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []storage.Event
	for _, e := range m.ev {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

var payments = adaptive.Policy{
	MinACR: "urn:stepwise:acr:pwd",
	StepUp: &adaptive.StepUpRule{RiskAtLeast: 40, ACR: "phr", MaxAge: 300},
	Deny:   &adaptive.DenyRule{RiskAtLeast: 90},
}

const firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:131.0) Gecko/20100101 Firefox/131.0"

type fixture struct {
	t      *testing.T
	gate   *Gate
	events *memEvents
	now    time.Time
}

func newFixture(t *testing.T, mode adaptive.Mode, clients map[string]ClientPolicy) *fixture {
	t.Helper()
	db, err := geo.OpenBytes(geotest.MMDB(t, geotest.Home, geotest.Abroad, geotest.Hosting, geotest.Distant))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	f := &fixture{t: t, events: &memEvents{}, now: time.Date(2026, 11, 1, 18, 0, 0, 0, time.UTC)}
	g, err := New(Config{
		Engine:         adaptive.New(adaptive.Config{Mode: mode}),
		Geo:            db,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		Scopes: map[string]adaptive.Policy{
			"payments:write": payments,
			"profile":        {MinACR: "urn:stepwise:acr:pwd"},
			"admin":          {StepUp: &adaptive.StepUpRule{RiskAtLeast: 10, ACR: "phrh", MaxAge: 60}},
		},
		Clients:  clients,
		DeviceID: deviceFromHeader,
		Now:      func() time.Time { return f.now },
	}, f.events, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.gate = g
	return f
}

// seedHistory records n daily password sign-ins from ip on device dev,
// ending a day before f.now.
func (f *fixture) seedHistory(user, ip, dev string, n int) {
	for i := n; i >= 1; i-- {
		data, _ := json.Marshal(map[string]any{"user_agent": firefox, "device": dev, "method": "password"})
		f.gate.OnEvent(f.t.Context(), storage.Event{Type: "login.success", UserID: user, SessionID: "old", IPAddress: ip,
			Time: f.now.AddDate(0, 0, -i), Data: data})
	}
}

func (f *fixture) authorize(user, sid, ip, dev string, scopes ...string) oauth.GateDecision {
	f.t.Helper()
	r := httptest.NewRequest("GET", "/oauth2/auth", nil)
	r.RemoteAddr = "127.0.0.1:5555"
	r.Header.Set("X-Forwarded-For", ip)
	r.Header.Set("User-Agent", firefox)
	r.Header.Set("X-Test-Device", dev)
	d, err := f.gate.Evaluate(f.t.Context(), oauth.GateRequest{
		HTTP: r, GrantType: "authorization_code", ClientID: "rp", Scopes: scopes,
		Login: &oauth.Login{Subject: user, SessionID: sid, ACR: "urn:stepwise:acr:pwd", AuthTime: f.now.Add(-time.Minute)},
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

func (f *fixture) decision(id string) adaptive.Decision {
	f.t.Helper()
	for _, e := range f.events.ofType(EventDecision) {
		if e.ID == id {
			var d adaptive.Decision
			if err := json.Unmarshal(e.Data, &d); err != nil {
				f.t.Fatal(err)
			}
			return d
		}
	}
	f.t.Fatalf("decision %s not recorded", id)
	return adaptive.Decision{}
}

// deviceFromHeader stands in for the web layer's signed device cookie.
func deviceFromHeader(r *http.Request) string { return r.Header.Get("X-Test-Device") }

func TestRequirementFromDecision(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		d    adaptive.Decision
		want oauth.GateDecision
	}{
		{"allow keeps the minimum", adaptive.Decision{Action: adaptive.ActionAllow, MinACR: "urn:stepwise:acr:pwd"},
			oauth.GateDecision{Requirement: oauth.Requirement{ACR: "urn:stepwise:acr:pwd"}}},
		{"allow with a policy max age", adaptive.Decision{Action: adaptive.ActionAllow, MaxAge: 600},
			oauth.GateDecision{Requirement: oauth.Requirement{AuthenticatedAfter: now.Add(-10 * time.Minute)}}},
		{"step up", adaptive.Decision{Action: adaptive.ActionStepUp, ACR: "phr", MinACR: "urn:stepwise:acr:pwd", MaxAge: 300, Explanation: "new country"},
			oauth.GateDecision{Requirement: oauth.Requirement{ACR: "phr", PreferredACR: "phr", AuthenticatedAfter: now.Add(-5 * time.Minute),
				Reason: stepUpReason}, Reason: stepUpReason}},
		{"deny", adaptive.Decision{Action: adaptive.ActionDeny, MinACR: "phr"},
			oauth.GateDecision{Deny: true, Reason: "the sign-in risk is too high for the requested access"}},
	}
	for _, c := range cases {
		got := Requirement(c.d, now, "rd_x")
		c.want.DecisionID = "rd_x"
		if got != c.want {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, c.want)
		}
	}
}

func TestKnownNetworkAllowedNewCountrySteppedUp(t *testing.T) {
	f := newFixture(t, adaptive.ModeEnforce, nil)
	f.seedHistory("alice", "198.51.100.7", "dev-1", 20)

	home := f.authorize("alice", "s1", "198.51.100.7", "dev-1", "openid", "payments:write")
	if home.Deny || home.Requirement.ACR != "urn:stepwise:acr:pwd" || !home.Requirement.AuthenticatedAfter.IsZero() {
		t.Fatalf("home: want only the scope minimum, got %+v (%s)", home, f.decision(home.DecisionID).Explanation)
	}
	if d := f.decision(home.DecisionID); d.Action != adaptive.ActionAllow || d.UserID != "alice" || !d.Enforced {
		t.Fatalf("home decision: %+v", d)
	}

	// From another country, in a browser without the device cookie (a
	// password sign-in on another machine, or a stolen password).
	away := f.authorize("alice", "s2", "203.0.113.9", "", "openid", "payments:write")
	d := f.decision(away.DecisionID)
	if away.Deny || away.Requirement.ACR != "phr" || !away.Requirement.AuthenticatedAfter.Equal(f.now.Add(-300*time.Second)) {
		t.Fatalf("abroad: want step-up to phr within 300s, got %+v (score %.1f: %s)", away, d.Score, d.Explanation)
	}
	if d.TopFactor() != "new_country" || len(d.Factors) == 0 {
		t.Fatalf("decision without its factors: %+v", d)
	}

	// The same request for a scope without a step-up rule is not challenged.
	plain := f.authorize("alice", "s2", "203.0.113.9", "", "openid", "profile")
	if plain.Deny || plain.Requirement.ACR != "urn:stepwise:acr:pwd" {
		t.Fatalf("profile scope: %+v", plain)
	}
}

func TestStrictestPolicyWins(t *testing.T) {
	f := newFixture(t, adaptive.ModeEnforce, map[string]ClientPolicy{"rp": {MinACR: "urn:stepwise:acr:passkey"}})
	f.seedHistory("alice", "198.51.100.7", "dev-1", 20)
	// At home: the client's minimum is stronger than the scope's.
	d := f.authorize("alice", "s1", "198.51.100.7", "dev-1", "payments:write")
	if d.Requirement.ACR != "urn:stepwise:acr:passkey" {
		t.Fatalf("want the client minimum, got %+v", d)
	}
	// Abroad with two step-up scopes: the strongest acr and the shortest
	// max age win.
	d = f.authorize("alice", "s2", "203.0.113.9", "", "payments:write", "admin")
	if d.Requirement.ACR != "phrh" || !d.Requirement.AuthenticatedAfter.Equal(f.now.Add(-60*time.Second)) {
		t.Fatalf("want phrh within 60s, got %+v", d)
	}
}

func TestImpossibleTravelDenied(t *testing.T) {
	f := newFixture(t, adaptive.ModeEnforce, nil)
	f.seedHistory("alice", "198.51.100.7", "dev-1", 20)
	// A sign-in from home an hour ago, then a request from Sydney.
	data, _ := json.Marshal(map[string]any{"user_agent": firefox, "device": "dev-1", "method": "password"})
	f.gate.OnEvent(t.Context(), storage.Event{Type: "login.success", UserID: "alice", SessionID: "s0",
		IPAddress: "198.51.100.7", Time: f.now.Add(-time.Hour), Data: data})
	d := f.authorize("alice", "s3", "100.64.1.20", "dev-1", "payments:write")
	if !d.Deny {
		t.Fatalf("want deny, got %+v (%s)", d, f.decision(d.DecisionID).Explanation)
	}
	if f.decision(d.DecisionID).Action != adaptive.ActionDeny {
		t.Fatal("decision not recorded as deny")
	}
}

func TestMonitorRecordsButNeverEnforces(t *testing.T) {
	f := newFixture(t, adaptive.ModeMonitor, nil)
	f.seedHistory("alice", "198.51.100.7", "dev-1", 20)
	d := f.authorize("alice", "s2", "203.0.113.9", "", "payments:write")
	if d.Deny || d.Requirement != (oauth.Requirement{}) || d.DecisionID == "" {
		t.Fatalf("monitor mode enforced something: %+v", d)
	}
	rec := f.decision(d.DecisionID)
	if rec.Action != adaptive.ActionStepUp || rec.Enforced || rec.Mode != adaptive.ModeMonitor {
		t.Fatalf("recorded decision: %+v", rec)
	}
}

func TestNoLoginIsNotScored(t *testing.T) {
	f := newFixture(t, adaptive.ModeEnforce, nil)
	d, err := f.gate.Evaluate(t.Context(), oauth.GateRequest{HTTP: httptest.NewRequest("GET", "/", nil), GrantType: "authorization_code", ClientID: "rp"})
	if err != nil || d != (oauth.GateDecision{}) || len(f.events.ofType(EventDecision)) != 0 {
		t.Fatalf("got %+v, %v", d, err)
	}
}

func TestRiskySignInHeldUntilStepUp(t *testing.T) {
	f := newFixture(t, adaptive.ModeEnforce, nil)
	f.seedHistory("alice", "198.51.100.7", "dev-1", 20)
	before := f.gate.subjects["alice"].profile.Len()
	// An attacker with the password signs in from a hosting network.
	data, _ := json.Marshal(map[string]any{"user_agent": firefox, "device": "dev-evil", "method": "password"})
	f.gate.OnEvent(t.Context(), storage.Event{Type: "login.success", UserID: "alice", SessionID: "evil",
		IPAddress: "192.0.2.50", Time: f.now, Data: data})
	if got := f.gate.subjects["alice"].profile.Len(); got != before {
		t.Fatalf("risky sign-in entered history: %d -> %d", before, got)
	}
	// Had it been the user, the passkey step-up releases it.
	f.gate.OnEvent(t.Context(), storage.Event{Type: "login.step_up", UserID: "alice", SessionID: "evil",
		IPAddress: "192.0.2.50", Time: f.now.Add(time.Minute), Data: data})
	if got := f.gate.subjects["alice"].profile.Len(); got != before+2 {
		t.Fatalf("step-up should add the held sign-in and itself: %d -> %d", before, got)
	}
}

func TestFailuresCount(t *testing.T) {
	f := newFixture(t, adaptive.ModeEnforce, nil)
	f.seedHistory("alice", "198.51.100.7", "dev-1", 20)
	for i := range 12 {
		f.gate.OnEvent(t.Context(), storage.Event{Type: "login.failure", UserID: "alice", IPAddress: "198.51.100.7",
			Time: f.now.Add(-time.Duration(i) * time.Minute)})
	}
	d := f.authorize("alice", "s1", "198.51.100.7", "dev-1", "payments:write")
	rec := f.decision(d.DecisionID)
	if !slices.ContainsFunc(rec.Factors, func(x adaptive.Factor) bool { return x.Name == "account_failure_velocity" }) || d.Requirement.ACR != "phr" {
		t.Fatalf("failure velocity not applied: %+v %+v", d, rec)
	}
}

func TestRebuildFromEvents(t *testing.T) {
	f := newFixture(t, adaptive.ModeEnforce, nil)
	for i := 20; i >= 1; i-- {
		data, _ := json.Marshal(map[string]any{"user_agent": firefox, "device": "dev-1", "method": "password"})
		_ = f.events.CreateEvent(t.Context(), storage.Event{ID: "e" + string(rune('a'+i)), Type: "login.success", UserID: "alice",
			SessionID: "old", IPAddress: "198.51.100.7", Time: f.now.AddDate(0, 0, -i), Data: data})
	}
	if err := f.gate.Rebuild(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := f.gate.subjects["alice"].profile.Len(); n != 20 {
		t.Fatalf("rebuilt %d logins, want 20", n)
	}
	if d := f.authorize("alice", "s1", "198.51.100.7", "dev-1", "payments:write"); d.Requirement.ACR != "urn:stepwise:acr:pwd" {
		t.Fatalf("after rebuild: %+v", d)
	}
}

func (f *fixture) machine(client, ip, method string) oauth.GateDecision {
	f.t.Helper()
	r := httptest.NewRequest("POST", "/oauth2/token", nil)
	r.RemoteAddr = "127.0.0.1:5555"
	r.Header.Set("X-Forwarded-For", ip)
	r.Header.Set("User-Agent", "billing-batch/2.1 Go-http-client/1.1")
	d, err := f.gate.Evaluate(f.t.Context(), oauth.GateRequest{HTTP: r, GrantType: "client_credentials", ClientID: client,
		Scopes: []string{"api.read"}, ClientAuthMethod: method})
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

func TestMachineClientPolicies(t *testing.T) {
	f := newFixture(t, adaptive.ModeEnforce, map[string]ClientPolicy{
		"flag": {Machine: MachineAllowAndFlag}, "pkj": {Machine: MachineRequirePrivateKeyJWT}, "deny": {Machine: MachineDeny},
	})
	for _, c := range []string{"flag", "pkj", "deny"} {
		for i := range 10 {
			f.now = f.now.Add(time.Hour)
			if d := f.machine(c, "198.51.100."+string(rune('1'+i%3)), "client_secret_basic"); d.Deny || d.RequirePrivateKeyJWT {
				t.Fatalf("%s: learning request %d refused: %+v", c, i, d)
			}
		}
	}
	f.now = f.now.Add(time.Hour)
	if d := f.machine("flag", "192.0.2.80", "client_secret_basic"); d.Deny || d.RequirePrivateKeyJWT {
		t.Fatalf("allow_and_flag refused: %+v", d)
	} else if rec := f.decision(d.DecisionID); rec.Score < 40 || rec.Action != adaptive.ActionAllow {
		t.Fatalf("allow_and_flag not flagged: %+v", rec)
	}
	if d := f.machine("pkj", "192.0.2.80", "client_secret_basic"); !d.RequirePrivateKeyJWT || d.Deny {
		t.Fatalf("require_private_key_jwt with a secret: %+v", d)
	}
	if d := f.machine("pkj", "192.0.2.80", "private_key_jwt"); d.RequirePrivateKeyJWT || d.Deny {
		t.Fatalf("require_private_key_jwt with a signed assertion: %+v", d)
	}
	if d := f.machine("deny", "192.0.2.80", "private_key_jwt"); !d.Deny {
		t.Fatalf("deny: %+v %+v", d, f.decision(d.DecisionID))
	}
	if d := f.machine("deny", "198.51.100.1", "client_secret_basic"); d.Deny {
		t.Fatalf("deny policy refused the usual network: %+v (%s)", d, f.decision(d.DecisionID).Explanation)
	}
	if n := len(f.events.ofType(EventMachineLogin)); n != 30+1+1+1 {
		t.Fatalf("%d machine logins recorded", n)
	}
}

func TestUnchangedRequestRecordedOnce(t *testing.T) {
	f := newFixture(t, adaptive.ModeEnforce, nil)
	f.seedHistory("alice", "198.51.100.7", "dev-1", 20)
	a := f.authorize("alice", "s1", "203.0.113.9", "", "payments:write")
	b := f.authorize("alice", "s1", "203.0.113.9", "", "payments:write")
	if a.DecisionID != b.DecisionID || a.Requirement.ACR != b.Requirement.ACR {
		t.Fatalf("same request, two decisions: %+v %+v", a, b)
	}
	c := f.authorize("alice", "s1", "198.51.100.7", "", "payments:write")
	f.now = f.now.Add(3 * time.Minute)
	d := f.authorize("alice", "s1", "203.0.113.9", "", "payments:write")
	if c.DecisionID == a.DecisionID || d.DecisionID == a.DecisionID {
		t.Fatal("a changed address or an expired decision was reused")
	}
	if n := len(f.events.ofType(EventDecision)); n != 3 {
		t.Fatalf("%d decisions recorded, want 3", n)
	}
}
