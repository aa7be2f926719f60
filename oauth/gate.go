package oauth

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"
)

// GateRequest is what a Gate sees of an authorization or client_credentials
// request.
type GateRequest struct {
	// HTTP is the browser's (or machine client's) request, for signals such
	// as IP address, user agent and device cookie. Read-only.
	HTTP *http.Request
	// GrantType is "authorization_code" for browser authorizations and
	// "client_credentials" for machine clients.
	GrantType string
	ClientID  string
	Scopes    []string
	// Login is the current browser login, nil when there is none or for
	// machine clients.
	Login *Login
	// ClientAuthMethod is how a machine client authenticated
	// (client_secret_basic, client_secret_post, private_key_jwt).
	ClientAuthMethod string
	// Requirement is what the protocol inputs (client minimum, acr_values,
	// max_age, prompt) already demand.
	Requirement Requirement
}

// GateDecision is a Gate's verdict.
type GateDecision struct {
	// Requirement replaces the protocol requirement. A gate should only
	// tighten it; the core keeps the stricter of the two anyway.
	Requirement Requirement
	// Deny refuses the request (access_denied to the client).
	Deny bool
	// Reason explains a denial or step-up, for logs and the sign-in page.
	Reason string
	// DecisionID identifies the recorded risk decision. It is kept on the
	// grant, so introspection shows it as risk_decision and the audit trail
	// links tokens to the decision that let them through.
	DecisionID string
	// RequirePrivateKeyJWT refuses a machine client that authenticated with
	// a shared secret (client_secret_basic / client_secret_post): a secret
	// alone is no longer enough. A machine client cannot step up, so this
	// and Deny are the only verdicts that apply to client_credentials.
	RequirePrivateKeyJWT bool
}

// verdict is the outcome of the shared phase.
type verdict struct {
	Requirement Requirement
	DecisionID  string
}

// Gate is the hook where a risk engine tightens or denies a request. It runs
// inside the one shared "compute requirement" phase, so no grant can skip it.
type Gate interface {
	Evaluate(ctx context.Context, req GateRequest) (GateDecision, error)
}

// protocolRequirement folds the client's minimum acr, acr_values, max_age and
// prompt=login into one Requirement. requestedAt is when the authorization
// request was first received.
func (p *Provider) protocolRequirement(clientID string, form map[string][]string, requestedAt time.Time) (Requirement, error) {
	get := func(k string) string {
		if v := form[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	var req Requirement
	if m := p.cfg.ClientMinACR[clientID]; m != "" {
		req.ACR = m
		req.Reason = "client requires " + m
	}
	if av := strings.Fields(get("acr_values")); len(av) > 0 {
		// Values are in order of preference: any listed level is acceptable,
		// so the requirement is the weakest known one; aim for the first.
		if w, ok := p.cfg.Ladder.Weakest(av); ok {
			if req.ACR == "" {
				req.ACR = w
			} else {
				req.ACR = p.cfg.Ladder.Max(req.ACR, w)
			}
			for _, a := range av {
				if _, known := p.cfg.Ladder.Level(a); known {
					req.PreferredACR = a
					break
				}
			}
			if req.Reason == "" {
				req.Reason = "requested " + w
			}
		}
	}
	if req.PreferredACR != "" && !p.cfg.Ladder.Satisfies(req.PreferredACR, req.ACR) {
		req.PreferredACR = req.ACR
	}
	if ma := get("max_age"); ma != "" {
		n, err := strconv.ParseInt(ma, 10, 64)
		if err != nil || n < 0 {
			return req, fosite.ErrInvalidRequest.WithHint("Parameter 'max_age' must be a non-negative integer.")
		}
		if n > 10*365*24*3600 {
			n = 10 * 365 * 24 * 3600
		}
		req.AuthenticatedAfter = requestedAt.Add(-time.Duration(n) * time.Second)
	}
	if hasPrompt(get("prompt"), "login") {
		req.AuthenticatedAfter = requestedAt
		req.Reason = "the application asked you to sign in again"
	}
	return req, nil
}

// stricter merges two requirements, keeping the stronger of each part.
func (p *Provider) stricter(a, b Requirement) Requirement {
	out := a
	switch {
	case out.ACR == "":
		out.ACR = b.ACR
	case b.ACR != "":
		out.ACR = p.cfg.Ladder.Max(a.ACR, b.ACR)
	}
	if b.PreferredACR != "" && (out.PreferredACR == "" || p.cfg.Ladder.Satisfies(b.PreferredACR, out.PreferredACR)) {
		out.PreferredACR = b.PreferredACR
	}
	if out.PreferredACR != "" && out.ACR != "" && !p.cfg.Ladder.Satisfies(out.PreferredACR, out.ACR) {
		out.PreferredACR = out.ACR
	}
	if b.AuthenticatedAfter.After(out.AuthenticatedAfter) {
		out.AuthenticatedAfter = b.AuthenticatedAfter
	}
	if b.Reason != "" {
		out.Reason = b.Reason
	}
	return out
}

// evaluate is the shared "compute requirement + gate" phase.
func (p *Provider) evaluate(ctx context.Context, gr GateRequest) (verdict, *fosite.RFC6749Error) {
	if p.cfg.Gate == nil {
		return verdict{Requirement: gr.Requirement}, nil
	}
	d, err := p.cfg.Gate.Evaluate(ctx, gr)
	if err != nil {
		// Fail closed: a broken risk engine must not wave requests through.
		p.log.ErrorContext(ctx, "gate evaluation failed", "client_id", gr.ClientID, "err", err)
		return verdict{Requirement: gr.Requirement}, fosite.ErrTemporarilyUnavailable.WithHint("The request could not be evaluated; try again later.")
	}
	v := verdict{Requirement: gr.Requirement, DecisionID: d.DecisionID}
	if d.Deny {
		p.log.InfoContext(ctx, "gate denied request", "client_id", gr.ClientID, "reason", d.Reason, "risk_decision", d.DecisionID)
		hint := "The request was refused by policy."
		if d.Reason != "" {
			hint = "The request was refused by policy: " + d.Reason
		}
		return v, fosite.ErrAccessDenied.WithHint(hint)
	}
	if gr.GrantType == "client_credentials" && d.RequirePrivateKeyJWT && gr.ClientAuthMethod != "private_key_jwt" {
		p.log.InfoContext(ctx, "gate requires private_key_jwt", "client_id", gr.ClientID, "method", gr.ClientAuthMethod, "risk_decision", d.DecisionID)
		return v, fosite.ErrInvalidClient.WithHint("This client must authenticate with private_key_jwt; a client secret alone is not accepted for this request.")
	}
	v.Requirement = p.stricter(gr.Requirement, d.Requirement)
	if d.Reason != "" {
		v.Requirement.Reason = d.Reason
	}
	return v, nil
}

// satisfies reports whether a login meets a requirement.
func (p *Provider) satisfies(l *Login, r Requirement) bool {
	if l == nil || l.Subject == "" || l.AuthTime.IsZero() {
		return false
	}
	if r.ACR != "" && !p.cfg.Ladder.Satisfies(l.ACR, r.ACR) {
		return false
	}
	if !r.AuthenticatedAfter.IsZero() && l.AuthTime.Before(r.AuthenticatedAfter) {
		return false
	}
	return true
}

func hasPrompt(prompt, v string) bool {
	for _, p := range strings.Fields(prompt) {
		if p == v {
			return true
		}
	}
	return false
}
