package oauth

import (
	"net/http"
	"time"
)

// Login is how and when the browser's user last authenticated, as the
// browser-facing layer knows it.
type Login struct {
	SessionID string
	Subject   string
	ACR       string
	AMR       []string
	AuthTime  time.Time
}

// Requirement is what a paused authorization request demands of the login
// before a code may be issued. The strictest of the client's minimum, the
// request's acr_values, max_age and prompt (and later the risk decision) is
// folded into one Requirement.
type Requirement struct {
	// ACR is the weakest acceptable acr value; empty means any login.
	ACR string
	// PreferredACR is the level to aim for when the user must authenticate
	// anyway (the first of acr_values); empty means ACR.
	PreferredACR string
	// AuthenticatedAfter, when non-zero, demands an authentication at or
	// after this instant (max_age, prompt=login, a fresh step-up).
	AuthenticatedAfter time.Time
	// Reason is a short human explanation shown on the sign-in page.
	Reason string
}

// Pending describes a paused authorization request to the browser-facing
// layer: what to show and where to send the browser when done.
type Pending struct {
	// ID identifies the paused request (storage.AuthRequest.ID).
	ID          string
	ClientID    string
	ClientName  string
	Scopes      []string
	Requirement Requirement
	// ResumeURL continues the authorization once the browser has signed in
	// or answered the consent page.
	ResumeURL string
	// LoginHint is the request's login_hint, if any.
	LoginHint string
}

// Interaction is the browser-facing half of the authorization endpoint. The
// web package implements it; the oauth package owns the protocol decisions
// and calls it only to read the login and to hand the browser over.
type Interaction interface {
	// CurrentLogin returns the browser's login session, or nil when the
	// browser has none (or it expired or was revoked).
	CurrentLogin(r *http.Request) (*Login, error)
	// Authenticate sends the browser to sign in, re-authenticate or step up
	// until p.Requirement is met, then to p.ResumeURL. If the user gives up
	// or cannot reach the level, the layer records the outcome on the
	// stored AuthRequest ("denied" or "unmet") and still resumes.
	Authenticate(w http.ResponseWriter, r *http.Request, p Pending)
	// Consent asks the signed-in user to approve p.Scopes for p.ClientID.
	// On approval it stores the consent; on refusal it records "denied" on
	// the AuthRequest; either way it sends the browser to p.ResumeURL.
	Consent(w http.ResponseWriter, r *http.Request, p Pending)
}

// LogoutRequest is a validated RP-initiated logout (OpenID Connect
// RP-Initiated Logout 1.0) handed to the browser-facing layer.
type LogoutRequest struct {
	// ClientName names the relying party that asked, if known.
	ClientName string
	// RedirectURI is the validated post_logout_redirect_uri with state
	// appended, or empty to show the layer's own signed-out page.
	RedirectURI string
}

// Logouter is the optional part of Interaction that ends browser sessions.
type Logouter interface {
	// Logout asks the user to confirm signing out (so a cross-site link
	// cannot sign them out), ends the session and its tokens, and sends the
	// browser to lr.RedirectURI or a signed-out page.
	Logout(w http.ResponseWriter, r *http.Request, lr LogoutRequest)
}
