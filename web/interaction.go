package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/stepwise-id/stepwise/oauth"
	"github.com/stepwise-id/stepwise/storage"
)

// dataKey is the top-level key of storage.AuthRequest.Data under which this
// package keeps what its pages need. Other keys belong to the oauth package
// and are preserved.
const dataKey = "web"

// Outcomes recorded on an AuthRequest.
const (
	outcomeDenied = "denied"
	outcomeUnmet  = "unmet"
)

// handover is the part of an oauth.Pending the pages need, stored with the
// AuthRequest so that nothing is taken from the URL but its ID.
type handover struct {
	ClientName         string    `json:"client_name,omitempty"`
	Scopes             []string  `json:"scopes,omitempty"`
	ACR                string    `json:"acr,omitempty"`
	PreferredACR       string    `json:"preferred_acr,omitempty"`
	AuthenticatedAfter time.Time `json:"authenticated_after,omitzero"`
	Reason             string    `json:"reason,omitempty"`
	ResumeURL          string    `json:"resume_url"`
	LoginHint          string    `json:"login_hint,omitempty"`
}

func (h handover) requirement() oauth.Requirement {
	return oauth.Requirement{
		ACR:                h.ACR,
		PreferredACR:       h.PreferredACR,
		AuthenticatedAfter: h.AuthenticatedAfter,
		Reason:             h.Reason,
	}
}

// pending is a paused authorization request as the pages see it.
type pending struct {
	req    storage.AuthRequest
	h      handover
	client storage.Client // zero if the client is gone
}

// Errors that pages turn into messages.
var (
	errRequestUnknown = errors.New("authorization request unknown or expired")
)

// Authenticate implements oauth.Interaction: it stores what the sign-in page
// needs with the AuthRequest and sends the browser to /login?req=ID.
func (s *Server) Authenticate(w http.ResponseWriter, r *http.Request, p oauth.Pending) {
	s.handOver(w, r, p, "/login")
}

// Consent implements oauth.Interaction: it stores what the consent page
// needs with the AuthRequest and sends the browser to /consent?req=ID.
func (s *Server) Consent(w http.ResponseWriter, r *http.Request, p oauth.Pending) {
	s.handOver(w, r, p, "/consent")
}

func (s *Server) handOver(w http.ResponseWriter, r *http.Request, p oauth.Pending, page string) {
	resume, ok := s.localURL(p.ResumeURL)
	if !ok {
		s.internalError(w, r, "hand over to "+page, fmt.Errorf("resume URL %q is not same-origin", p.ResumeURL))
		return
	}
	h := handover{
		ClientName:         p.ClientName,
		Scopes:             p.Scopes,
		ACR:                p.Requirement.ACR,
		PreferredACR:       p.Requirement.PreferredACR,
		AuthenticatedAfter: p.Requirement.AuthenticatedAfter,
		Reason:             p.Requirement.Reason,
		ResumeURL:          resume,
		LoginHint:          p.LoginHint,
	}
	err := s.store.UpdateAuthRequest(r.Context(), p.ID, func(a storage.AuthRequest) (storage.AuthRequest, error) {
		data, err := setDataKey(a.Data, h)
		if err != nil {
			return a, err
		}
		a.Data = data
		return a, nil
	})
	if errors.Is(err, storage.ErrNotFound) {
		s.requestGone(w, r)
		return
	}
	if err != nil {
		s.internalError(w, r, "store hand-over state", err)
		return
	}
	seeOther(w, r, page+"?req="+url.QueryEscape(p.ID))
}

// setDataKey merges h into the JSON object data under dataKey, keeping the
// other keys.
func setDataKey(data []byte, h handover) ([]byte, error) {
	obj := map[string]json.RawMessage{}
	if len(data) > 0 && string(data) != "null" {
		if err := json.Unmarshal(data, &obj); err != nil {
			return nil, fmt.Errorf("auth request data is not a JSON object: %w", err)
		}
		if obj == nil {
			obj = map[string]json.RawMessage{}
		}
	}
	raw, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode hand-over state: %w", err)
	}
	obj[dataKey] = raw
	out, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encode auth request data: %w", err)
	}
	return out, nil
}

// loadPending looks a paused request up by ID. Unknown, expired and
// never-handed-over requests are errRequestUnknown.
func (s *Server) loadPending(ctx context.Context, id string) (pending, error) {
	if id == "" || len(id) > 256 {
		return pending{}, errRequestUnknown
	}
	a, err := s.store.GetAuthRequest(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return pending{}, errRequestUnknown
	}
	if err != nil {
		return pending{}, fmt.Errorf("load auth request: %w", err)
	}
	if !a.ExpiresAt.IsZero() && !s.now().Before(a.ExpiresAt) {
		return pending{}, errRequestUnknown
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(a.Data, &obj); err != nil || obj[dataKey] == nil {
		return pending{}, errRequestUnknown
	}
	var h handover
	if err := json.Unmarshal(obj[dataKey], &h); err != nil {
		return pending{}, errRequestUnknown
	}
	resume, ok := s.localURL(h.ResumeURL)
	if !ok {
		return pending{}, errRequestUnknown
	}
	h.ResumeURL = resume
	p := pending{req: a, h: h}
	if c, err := s.store.GetClient(ctx, a.ClientID); err == nil {
		p.client = c
	} else if !errors.Is(err, storage.ErrNotFound) {
		return pending{}, fmt.Errorf("load client %q: %w", a.ClientID, err)
	}
	if p.h.ClientName == "" {
		p.h.ClientName = p.client.Name
	}
	if p.h.ClientName == "" {
		p.h.ClientName = a.ClientID
	}
	return p, nil
}

// formTargets are the places a form answering p may end up after the
// resume redirect: the client's redirect URIs.
func (p pending) formTargets() []string {
	return p.client.RedirectURIs
}

// recordOutcome marks the request refused ("denied") or unreachable
// ("unmet"), unless an outcome is already recorded.
func (s *Server) recordOutcome(ctx context.Context, id, outcome string) error {
	err := s.store.UpdateAuthRequest(ctx, id, func(a storage.AuthRequest) (storage.AuthRequest, error) {
		if a.Outcome == "" {
			a.Outcome = outcome
		}
		return a, nil
	})
	if err != nil {
		return fmt.Errorf("record outcome %q: %w", outcome, err)
	}
	return nil
}

// requestGone tells the user the sign-in request cannot be continued.
func (s *Server) requestGone(w http.ResponseWriter, r *http.Request) {
	s.renderMessage(w, r, http.StatusBadRequest, messageView{
		Title:   "Request expired",
		Message: "This sign-in request has expired or is not valid. Go back to the application and start again.",
		IsError: true,
	})
}

// satisfies reports whether login meets req. auth_time is compared
// exactly: a login from earlier in the same second as a prompt=login request
// does not count as fresh.
func (s *Server) satisfies(l *oauth.Login, req oauth.Requirement) bool {
	if l == nil {
		return false
	}
	if req.ACR != "" && !s.ladder.Satisfies(l.ACR, req.ACR) {
		return false
	}
	if !req.AuthenticatedAfter.IsZero() && l.AuthTime.Before(req.AuthenticatedAfter) {
		return false
	}
	return true
}

// passwordSuffices reports whether a password sign-in can meet req.
func (s *Server) passwordSuffices(req oauth.Requirement) bool {
	return req.ACR == "" || s.ladder.Satisfies(s.ladder.Name(oauth.LevelPassword), req.ACR)
}
