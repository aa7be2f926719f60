// Package riskgate plugs the adaptive risk engine into the OAuth core as its
// oauth.Gate: it gathers the Signals of each authorization and
// client_credentials request, scores them against the user's (or machine
// client's) own history, applies the per-scope and per-client policies,
// records every decision as a "risk.decision" audit event, and turns the
// decision into a requirement (step up to an acr within a max age) or a
// refusal.
//
// History is kept in memory, rebuilt from the audit log at start-up and
// updated from the browser layer's events (OnEvent): successful sign-ins,
// step-ups and failures. A sign-in that already scores as risky is held
// back from the user's history until the same session proves itself with a
// passkey step-up, so an attacker holding only the password cannot teach the
// model that their network is normal.
package riskgate

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stepwise-id/stepwise/adaptive"
	"github.com/stepwise-id/stepwise/adaptive/geo"
	"github.com/stepwise-id/stepwise/internal/clientip"
	"github.com/stepwise-id/stepwise/oauth"
	"github.com/stepwise-id/stepwise/storage"
)

// Audit event types the gate reads and writes.
const (
	EventDecision     = "risk.decision"      // one per evaluation; Data is the adaptive.Decision
	EventMachineLogin = "client.credentials" // a machine client's allowed token request
	eventLoginSuccess = "login.success"
	eventLoginStepUp  = "login.step_up"
	eventLoginFailure = "login.failure"
)

// MachineAction is a client's policy for a risky client_credentials request.
type MachineAction string

// Machine actions (clients.<id>.machine_risk).
const (
	MachineAllowAndFlag         MachineAction = "allow_and_flag"
	MachineRequirePrivateKeyJWT MachineAction = "require_private_key_jwt"
	MachineDeny                 MachineAction = "deny"
	defaultMachineAction                      = MachineAllowAndFlag
	defaultHoldAtLeast                        = 40
	defaultMachineRiskAtLeast                 = 40
	defaultMachineEstablished                 = 3
	defaultMaxProfiles                        = 200_000
	defaultMaxFailureKeys                     = 100_000
	defaultFailureWindow                      = time.Hour
	defaultMaxRebuildEvents                   = 2_000_000
	machineSubjectPrefix                      = "client:"
	maxHeldPerSession                         = 16
	maxHeldSessions                           = 64
)

// ClientPolicy is the per-client part of the configuration.
type ClientPolicy struct {
	// MinACR is always required for the client's browser authorizations.
	MinACR string
	// Machine is what a risky client_credentials request gets; default
	// allow_and_flag.
	Machine MachineAction
}

// Config configures a Gate. Engine and Events are required.
type Config struct {
	Engine *adaptive.Engine
	// Geo enriches addresses with country, ASN and location; nil is fine.
	Geo *geo.DB
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// Scopes are the per-scope policies, keyed by scope name.
	Scopes map[string]adaptive.Policy
	// Clients are the per-client policies, keyed by client ID.
	Clients map[string]ClientPolicy
	// DeviceID reads the verified device id from a browser request (the
	// web layer's signed device cookie); nil means no device signal.
	DeviceID func(*http.Request) string
	// HoldAtLeast is the sign-in score from which a login is held out of
	// history until its session steps up; default the lowest step-up
	// threshold among Scopes, or 40.
	HoldAtLeast float64
	// MachineRiskAtLeast is the score from which a machine client's request
	// is risky (flagged, or refused per its policy); default 40.
	MachineRiskAtLeast float64
	// MachineEstablished is how many allowed requests make a machine client
	// long-lived; younger clients are learned, not judged. Default 3.
	MachineEstablished int
	// FailureWindow is how far back failed sign-ins count; default 1h.
	FailureWindow time.Duration
	// MaxProfiles bounds the number of users and clients kept in memory
	// (least recently used are dropped); default 200,000.
	MaxProfiles int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Events is the slice of storage the gate uses.
type Events interface {
	CreateEvent(ctx context.Context, e storage.Event) error
	ListEvents(ctx context.Context, f storage.EventFilter) ([]storage.Event, error)
}

// Gate implements oauth.Gate over the adaptive engine. It is safe for
// concurrent use.
type Gate struct {
	cfg    Config
	events Events
	log    *slog.Logger
	ua     *adaptive.UAParser
	ips    clientip.Resolver

	mu       sync.Mutex
	pop      *adaptive.Population
	subjects map[string]*subject // user ID, or "client:" + client ID
	tick     uint64              // LRU clock
	failUser failures
	failIP   failures
	recent   recentDecisions
}

var _ oauth.Gate = (*Gate)(nil)

// subject is one user's (or machine client's) history.
type subject struct {
	profile *adaptive.Profile
	// held are risky sign-ins per session, waiting for a step-up.
	held map[string][]adaptive.Signals
	used uint64
}

// New builds a gate. Call Rebuild before serving to load history.
func New(cfg Config, events Events, logger *slog.Logger) (*Gate, error) {
	if cfg.Engine == nil || events == nil {
		return nil, errors.New("riskgate: engine and events are required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HoldAtLeast <= 0 {
		cfg.HoldAtLeast = defaultHoldAtLeast
		first := true
		for _, p := range cfg.Scopes {
			if p.StepUp != nil && (first || p.StepUp.RiskAtLeast < cfg.HoldAtLeast) {
				cfg.HoldAtLeast, first = p.StepUp.RiskAtLeast, false
			}
		}
	}
	if cfg.MachineRiskAtLeast <= 0 {
		cfg.MachineRiskAtLeast = defaultMachineRiskAtLeast
	}
	if cfg.MachineEstablished <= 0 {
		cfg.MachineEstablished = defaultMachineEstablished
	}
	if cfg.FailureWindow <= 0 {
		cfg.FailureWindow = defaultFailureWindow
	}
	if cfg.MaxProfiles <= 0 {
		cfg.MaxProfiles = defaultMaxProfiles
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	for id, cp := range cfg.Clients {
		switch cp.Machine {
		case "", MachineAllowAndFlag, MachineRequirePrivateKeyJWT, MachineDeny:
		default:
			return nil, fmt.Errorf("riskgate: client %q: unknown machine_risk %q", id, cp.Machine)
		}
	}
	return &Gate{
		cfg: cfg, events: events, log: logger,
		ua:       adaptive.NewUAParser(),
		ips:      clientip.Resolver{Trusted: cfg.TrustedProxies},
		pop:      adaptive.NewPopulation(),
		subjects: map[string]*subject{},
		failUser: failures{max: defaultMaxFailureKeys},
		failIP:   failures{max: defaultMaxFailureKeys},
	}, nil
}

// SetDeviceID sets the device-cookie reader once the browser layer exists
// (it is built after the gate it feeds). Call it before serving.
func (g *Gate) SetDeviceID(f func(*http.Request) string) { g.cfg.DeviceID = f }

// Evaluate implements oauth.Gate.
func (g *Gate) Evaluate(ctx context.Context, req oauth.GateRequest) (oauth.GateDecision, error) {
	if req.GrantType == "client_credentials" {
		return g.evaluateMachine(ctx, req)
	}
	if req.Login == nil || req.Login.Subject == "" {
		// Nobody is signed in yet: the user signs in first and the request
		// is evaluated again when it resumes, with a user to score.
		return oauth.GateDecision{}, nil
	}
	now := g.cfg.Now().UTC()
	s := g.signals(req.HTTP, now)
	s.UserID = req.Login.Subject
	s.ClientID = req.ClientID
	s.Scopes = slices.Clone(req.Scopes)
	policies := g.policies(req.ClientID, req.Scopes)

	g.mu.Lock()
	s.AccountFailures = g.failUser.count(s.UserID, now, g.cfg.FailureWindow)
	s.IPFailures = g.failIP.count(ipKey(s.IP), now, g.cfg.FailureWindow)
	var p *adaptive.Profile
	if sub := g.subjects[s.UserID]; sub != nil {
		p = sub.profile
		g.touch(sub)
	}
	// One authorization passes the gate several times (after sign-in, after
	// consent); while nothing it looks at changed, the decision stands and
	// is recorded once.
	key := recentKey(req, s, p)
	if r, ok := g.recent.get(key, now); ok {
		g.mu.Unlock()
		if !r.Enforced {
			return oauth.GateDecision{DecisionID: r.ID}, nil
		}
		return Requirement(r, now, r.ID), nil
	}
	d := g.cfg.Engine.Evaluate(ctx, s, p, g.pop, policies...)
	g.mu.Unlock()

	id, err := g.record(ctx, &d, storage.Event{UserID: s.UserID, ClientID: req.ClientID,
		SessionID: req.Login.SessionID, IPAddress: ipKey(s.IP)})
	if err != nil {
		return oauth.GateDecision{}, err
	}
	g.mu.Lock()
	g.recent.put(key, d, now)
	g.mu.Unlock()
	if !d.Enforced {
		return oauth.GateDecision{DecisionID: id}, nil
	}
	return Requirement(d, now, id), nil
}

// stepUpReason is what the sign-in page says when risk asks for a step-up.
const stepUpReason = "confirm it's you: this sign-in looks different from your usual ones"

// Requirement turns an enforced decision into the core's verdict: the
// minimum acr always; on step up the stronger acr, authenticated within
// max_age of now; on deny a refusal. The core merges it with the protocol's
// own requirement (acr_values, max_age, prompt, the client's minimum),
// keeping the stricter of each part.
func Requirement(d adaptive.Decision, now time.Time, id string) oauth.GateDecision {
	out := oauth.GateDecision{DecisionID: id}
	switch d.Action {
	case adaptive.ActionDeny:
		out.Deny = true
		out.Reason = "the sign-in risk is too high for the requested access"
		return out
	case adaptive.ActionStepUp:
		out.Requirement.ACR = d.ACR
		out.Requirement.PreferredACR = d.ACR
		// The page says why in general terms only: the factors are for
		// operators (`stepwise risk explain`), not for whoever is signing in.
		out.Reason = stepUpReason
	default:
		out.Requirement.ACR = d.MinACR
	}
	if d.MaxAge > 0 {
		out.Requirement.AuthenticatedAfter = now.Add(-time.Duration(d.MaxAge) * time.Second)
	}
	if out.Reason != "" {
		out.Requirement.Reason = out.Reason
	}
	return out
}

// policies returns the policies that apply to a request: each requested
// scope's and the client's minimum.
func (g *Gate) policies(clientID string, scopes []string) []adaptive.Policy {
	var out []adaptive.Policy
	for _, sc := range scopes {
		if p, ok := g.cfg.Scopes[sc]; ok {
			if p.Name == "" {
				p.Name = "scope " + sc
			}
			out = append(out, p)
		}
	}
	if cp, ok := g.cfg.Clients[clientID]; ok && cp.MinACR != "" {
		out = append(out, adaptive.Policy{Name: "client " + clientID, MinACR: cp.MinACR})
	}
	return out
}

// signals extracts what the engine looks at from a request.
func (g *Gate) signals(r *http.Request, now time.Time) adaptive.Signals {
	s := adaptive.Signals{Time: now}
	if r == nil {
		return s
	}
	s.IP = g.ips.Addr(r)
	s.UserAgent = truncate(r.UserAgent(), 512)
	if g.cfg.DeviceID != nil {
		s.DeviceID = g.cfg.DeviceID(r)
	}
	g.enrich(r.Context(), &s)
	return s
}

// enrich completes geo and agent fields; geo failures only cost signals.
func (g *Gate) enrich(ctx context.Context, s *adaptive.Signals) {
	if g.cfg.Geo != nil && s.IP.IsValid() {
		if err := g.cfg.Geo.Apply(s); err != nil {
			g.log.DebugContext(ctx, "geo lookup", "err", err)
		}
	}
	if s.UserAgent != "" {
		g.ua.Apply(s)
	}
}

// record stores d as a risk.decision event and returns its id.
func (g *Gate) record(ctx context.Context, d *adaptive.Decision, e storage.Event) (string, error) {
	id, err := newID("rd_")
	if err != nil {
		return "", err
	}
	d.ID = id
	data, err := json.Marshal(d)
	if err != nil {
		return "", fmt.Errorf("encode risk decision: %w", err)
	}
	e.ID, e.Type, e.Time, e.Data = id, EventDecision, d.Time, data
	if e.Time.IsZero() {
		e.Time = g.cfg.Now().UTC()
	}
	if err := g.events.CreateEvent(ctx, e); err != nil {
		// Fail closed: an unrecorded decision is an unexplainable one.
		return "", fmt.Errorf("record risk decision: %w", err)
	}
	g.log.InfoContext(ctx, "risk decision", "risk_decision", id, "user_id", e.UserID, "client_id", e.ClientID,
		"score", d.Score, "decision", d.Action, "enforced", d.Enforced, "top_factor", d.TopFactor())
	return id, nil
}

// loginData is the part of a login event's Data the gate reads.
type loginData struct {
	UserAgent string `json:"user_agent"`
	Device    string `json:"device"`
	Method    string `json:"method"`
}

// OnEvent learns from the browser layer's audit events: successful sign-ins
// and step-ups grow history, failures feed the velocity signals. It is
// wired as web.Config.OnEvent and also replays the log in Rebuild.
func (g *Gate) OnEvent(ctx context.Context, e storage.Event) {
	switch e.Type {
	case eventLoginFailure:
		t := e.Time
		if t.IsZero() {
			t = g.cfg.Now()
		}
		g.mu.Lock()
		if e.UserID != "" {
			g.failUser.add(e.UserID, t, g.cfg.FailureWindow)
		}
		if a, err := netip.ParseAddr(e.IPAddress); err == nil {
			g.failIP.add(ipKey(a), t, g.cfg.FailureWindow)
		}
		g.mu.Unlock()
	case eventLoginSuccess, eventLoginStepUp:
		if e.UserID == "" {
			return
		}
		s, d := g.eventSignals(ctx, e)
		s.UserID = e.UserID
		g.observeLogin(ctx, s, e.SessionID, e.Type == eventLoginStepUp || d.Method == "passkey")
	}
}

// eventSignals rebuilds the Signals of a stored login event.
func (g *Gate) eventSignals(ctx context.Context, e storage.Event) (adaptive.Signals, loginData) {
	var d loginData
	if len(e.Data) > 0 {
		_ = json.Unmarshal(e.Data, &d) // a malformed row still teaches the time and address
	}
	s := adaptive.Signals{Time: e.Time.UTC(), UserAgent: d.UserAgent, DeviceID: d.Device, ClientID: e.ClientID}
	if s.Time.IsZero() {
		s.Time = g.cfg.Now().UTC()
	}
	if a, err := netip.ParseAddr(e.IPAddress); err == nil {
		s.IP = a.Unmap()
	}
	g.enrich(ctx, &s)
	return s, d
}

// observeLogin adds a successful sign-in to history. A strong one (a
// user-verified passkey, a step-up) goes in at once and releases what its
// session held back; a password sign-in that already scores as risky for a
// user with history is held until its session steps up.
func (g *Gate) observeLogin(ctx context.Context, s adaptive.Signals, sessionID string, strong bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	sub := g.subject(s.UserID)
	if strong {
		for _, h := range sub.held[sessionID] {
			g.observe(h, sub)
		}
		delete(sub.held, sessionID)
		g.observe(s, sub)
		return
	}
	if sub.profile.Len() > 0 {
		d := g.cfg.Engine.Evaluate(ctx, s, sub.profile, g.pop)
		if d.Score >= g.cfg.HoldAtLeast {
			if sub.held == nil {
				sub.held = map[string][]adaptive.Signals{}
			}
			if _, ok := sub.held[sessionID]; !ok && len(sub.held) >= maxHeldSessions {
				for k := range sub.held { // bounded: forget an arbitrary held session
					delete(sub.held, k)
					break
				}
			}
			if h := sub.held[sessionID]; len(h) < maxHeldPerSession {
				sub.held[sessionID] = append(h, s)
			}
			g.log.DebugContext(ctx, "risky sign-in held out of history until step-up", "user_id", s.UserID, "score", d.Score)
			return
		}
	}
	g.observe(s, sub)
}

// observe adds s to sub's profile (oldest first: an out-of-order event,
// which only a clock step can cause, is dropped).
func (g *Gate) observe(s adaptive.Signals, sub *subject) {
	if ls := sub.profile.Logins(); len(ls) > 0 && ls[len(ls)-1].Unix > s.Time.Unix() {
		return
	}
	g.cfg.Engine.Observe(s, sub.profile, g.pop)
}

// subject returns (creating) the history of key, evicting the least
// recently used when the bound is reached. g.mu must be held.
func (g *Gate) subject(key string) *subject {
	sub := g.subjects[key]
	if sub == nil {
		if len(g.subjects) >= g.cfg.MaxProfiles {
			g.evict()
		}
		sub = &subject{profile: adaptive.NewProfile()}
		g.subjects[key] = sub
	}
	g.touch(sub)
	return sub
}

func (g *Gate) touch(sub *subject) {
	g.tick++
	sub.used = g.tick
}

// evict drops the least recently used tenth of the subjects. The
// population keeps their contribution; they are scored as new until the
// next restart rebuilds them.
func (g *Gate) evict() {
	type kv struct {
		k string
		u uint64
	}
	all := make([]kv, 0, len(g.subjects))
	for k, s := range g.subjects {
		all = append(all, kv{k, s.used})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].u < all[j].u })
	for _, x := range all[:max(1, len(all)/10)] {
		delete(g.subjects, x.k)
	}
}

// Rebuild reloads history from the audit log: successful sign-ins and
// step-ups within the engine's window, machine clients' allowed requests,
// and the failures of the last FailureWindow. It replaces what the gate
// knew.
func (g *Gate) Rebuild(ctx context.Context) error {
	now := g.cfg.Now().UTC()
	since := now.Add(-g.cfg.Engine.Window())
	var all []storage.Event
	for _, typ := range []string{eventLoginSuccess, eventLoginStepUp, EventMachineLogin} {
		evs, err := g.events.ListEvents(ctx, storage.EventFilter{Type: typ, Since: since, Limit: defaultMaxRebuildEvents})
		if err != nil {
			return fmt.Errorf("riskgate: load %s events: %w", typ, err)
		}
		all = append(all, evs...)
	}
	fails, err := g.events.ListEvents(ctx, storage.EventFilter{Type: eventLoginFailure, Since: now.Add(-g.cfg.FailureWindow), Limit: 100_000})
	if err != nil {
		return fmt.Errorf("riskgate: load failures: %w", err)
	}
	all = append(all, fails...)
	sort.SliceStable(all, func(i, j int) bool { return all[i].Time.Before(all[j].Time) })

	g.mu.Lock()
	g.pop = adaptive.NewPopulation()
	g.subjects = map[string]*subject{}
	g.failUser = failures{max: defaultMaxFailureKeys}
	g.failIP = failures{max: defaultMaxFailureKeys}
	g.mu.Unlock()
	for _, e := range all {
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.Type == EventMachineLogin {
			s, _ := g.eventSignals(ctx, e)
			s.UserID = machineSubjectPrefix + e.ClientID
			g.mu.Lock()
			g.observe(s, g.subject(s.UserID))
			g.mu.Unlock()
			continue
		}
		g.OnEvent(ctx, e)
	}
	g.log.InfoContext(ctx, "risk history loaded", "events", len(all), "subjects", len(g.subjects))
	return nil
}

// failures counts recent events per key in bounded memory.
type failures struct {
	m   map[string][]time.Time
	max int
}

func (f *failures) add(key string, t time.Time, window time.Duration) {
	if f.m == nil {
		f.m = map[string][]time.Time{}
	}
	if len(f.m) >= f.max {
		f.sweep(t, window)
		if len(f.m) >= f.max {
			for k := range f.m { // still full of live keys: drop an arbitrary one
				delete(f.m, k)
				break
			}
		}
	}
	ts := prune(f.m[key], t.Add(-window))
	if len(ts) < 1000 {
		ts = append(ts, t)
	}
	f.m[key] = ts
}

func (f *failures) count(key string, now time.Time, window time.Duration) int {
	if key == "" {
		return 0
	}
	n := 0
	for _, t := range f.m[key] {
		if t.After(now.Add(-window)) {
			n++
		}
	}
	return n
}

func (f *failures) sweep(now time.Time, window time.Duration) {
	for k, ts := range f.m {
		if ts = prune(ts, now.Add(-window)); len(ts) == 0 {
			delete(f.m, k)
		} else {
			f.m[k] = ts
		}
	}
}

func prune(ts []time.Time, cutoff time.Time) []time.Time {
	i := 0
	for i < len(ts) && !ts[i].After(cutoff) {
		i++
	}
	return ts[i:]
}

func ipKey(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// newID returns a random event id with a readable prefix ("rd_" for risk
// decisions).
func newID(prefix string) (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("event id: %w", err)
	}
	return prefix + base64.RawURLEncoding.EncodeToString(b), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// recentTTL is how long a decision is reused for an unchanged request.
const recentTTL = 2 * time.Minute

// recentDecisions remembers the last decisions by what they looked at, in
// bounded memory.
type recentDecisions struct {
	m map[string]recentDecision
}

type recentDecision struct {
	d  adaptive.Decision
	at time.Time
}

// recentKey names everything a decision depends on that can change within
// one authorization: session and its auth time, client, scopes, address,
// agent, device, and the size of the history and failure counts.
func recentKey(req oauth.GateRequest, s adaptive.Signals, p *adaptive.Profile) string {
	n := 0
	if p != nil {
		n = p.Len()
	}
	return strings.Join([]string{req.Login.SessionID, req.Login.AuthTime.UTC().Format(time.RFC3339Nano), req.Login.ACR,
		req.ClientID, strings.Join(req.Scopes, " "), ipKey(s.IP), s.UserAgent, s.DeviceID,
		strconv.Itoa(n), strconv.Itoa(s.AccountFailures), strconv.Itoa(s.IPFailures)}, "\x00")
}

func (r *recentDecisions) get(key string, now time.Time) (adaptive.Decision, bool) {
	e, ok := r.m[key]
	if !ok || now.Sub(e.at) > recentTTL || now.Before(e.at) {
		return adaptive.Decision{}, false
	}
	return e.d, true
}

func (r *recentDecisions) put(key string, d adaptive.Decision, now time.Time) {
	if r.m == nil {
		r.m = map[string]recentDecision{}
	}
	if len(r.m) >= 10_000 {
		for k, e := range r.m {
			if now.Sub(e.at) > recentTTL {
				delete(r.m, k)
			}
		}
		if len(r.m) >= 10_000 {
			clear(r.m)
		}
	}
	r.m[key] = recentDecision{d: d, at: now}
}
