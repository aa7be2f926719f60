package riskgate

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/stepwise-id/stepwise/adaptive"
	"github.com/stepwise-id/stepwise/oauth"
	"github.com/stepwise-id/stepwise/storage"
)

// evaluateMachine scores a client_credentials request against the client's
// own history (networks, ASNs, countries and agents of its earlier allowed
// requests) and applies the client's machine_risk policy once the client is
// long-lived: allow_and_flag records the flag and lets it through,
// require_private_key_jwt refuses a secret-authenticated request, deny
// refuses it. A client with too little history is learned, not judged.
func (g *Gate) evaluateMachine(ctx context.Context, req oauth.GateRequest) (oauth.GateDecision, error) {
	now := g.cfg.Now().UTC()
	s := g.signals(req.HTTP, now)
	s.DeviceID = "" // machines carry no device cookie
	key := machineSubjectPrefix + req.ClientID
	s.UserID = key
	s.ClientID = req.ClientID
	s.Scopes = slices.Clone(req.Scopes)

	g.mu.Lock()
	var p *adaptive.Profile
	if sub := g.subjects[key]; sub != nil {
		p = sub.profile
		g.touch(sub)
	}
	d := g.cfg.Engine.Evaluate(ctx, s, p, g.pop)
	g.mu.Unlock()
	d.UserID = ""

	action := g.cfg.Clients[req.ClientID].Machine
	if action == "" {
		action = defaultMachineAction
	}
	established := d.HistoryLen >= g.cfg.MachineEstablished
	if established && newNetwork(d, s.ASN != 0) && d.Score < g.cfg.MachineRiskAtLeast {
		// Machines do not travel: for a long-lived client a network it
		// never used is the signal itself, whatever the score says.
		f := adaptive.Factor{Name: "machine_new_network", Points: g.cfg.MachineRiskAtLeast, Rule: true,
			Detail: fmt.Sprintf("long-lived machine client (%d earlier requests) from a network it never used", d.HistoryLen)}
		d.Factors = append([]adaptive.Factor{f}, d.Factors...)
		d.Score = g.cfg.MachineRiskAtLeast
		d.Explanation = fmt.Sprintf("risk %.0f: %s; %s", d.Score, f.Detail, d.Explanation)
	}
	risky := established && d.Score >= g.cfg.MachineRiskAtLeast
	verdict := oauth.GateDecision{}
	d.Action = adaptive.ActionAllow
	d.Policy = fmt.Sprintf("client %s machine_risk %s (risky at %g)", req.ClientID, action, g.cfg.MachineRiskAtLeast)
	switch {
	case !established:
		d.Explanation = fmt.Sprintf("machine client with %d earlier requests: learning its networks; %s", d.HistoryLen, d.Explanation)
	case !risky:
	case action == MachineDeny:
		d.Action = adaptive.ActionDeny
		verdict.Deny = true
		verdict.Reason = "the client's request is unusual for it (new network)"
	case action == MachineRequirePrivateKeyJWT && req.ClientAuthMethod != "private_key_jwt":
		d.Action = adaptive.ActionDeny
		verdict.RequirePrivateKeyJWT = true
		verdict.Reason = "a client secret alone is not enough for this request"
	default:
		d.Explanation = "flagged: " + d.Explanation
	}
	if !d.Enforced {
		verdict = oauth.GateDecision{}
	}
	id, err := g.record(ctx, &d, storage.Event{ClientID: req.ClientID, IPAddress: ipKey(s.IP)})
	if err != nil {
		return oauth.GateDecision{}, err
	}
	verdict.DecisionID = id
	if verdict.Deny || verdict.RequirePrivateKeyJWT {
		return verdict, nil
	}

	// Allowed: the request joins the client's history.
	data, err := json.Marshal(map[string]any{"user_agent": s.UserAgent, "flagged": risky, "risk_decision": id,
		"auth_method": req.ClientAuthMethod})
	if err != nil {
		return oauth.GateDecision{}, fmt.Errorf("encode machine login: %w", err)
	}
	lid, err := newID("ml_")
	if err != nil {
		return oauth.GateDecision{}, err
	}
	if err := g.events.CreateEvent(ctx, storage.Event{ID: lid, Type: EventMachineLogin, ClientID: req.ClientID,
		IPAddress: ipKey(s.IP), Time: now, Data: data}); err != nil {
		g.log.WarnContext(ctx, "record machine login", "client_id", req.ClientID, "err", err)
	}
	g.mu.Lock()
	g.observe(s, g.subject(key))
	g.mu.Unlock()
	return verdict, nil
}

// newNetwork reports whether the decision found the address's ASN (or, with
// no ASN data, its /24 or /48) new for the subject. The engine reports only
// the most general new level, so a new country implies a new ASN.
func newNetwork(d adaptive.Decision, haveASN bool) bool {
	for _, f := range d.Factors {
		switch f.Name {
		case "new_country", "new_asn":
			return true
		case "new_network":
			if !haveASN {
				return true
			}
		}
	}
	return false
}
