package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"

	"github.com/stepwise-id/stepwise/storage"
)

// consentForm serves GET /consent?req=ID.
func (s *Server) consentForm(w http.ResponseWriter, r *http.Request) {
	p, b, ok := s.consentContext(w, r, r.URL.Query().Get("req"))
	if !ok {
		return
	}
	s.withFormTargets(w, p.formTargets())
	s.render(w, r, http.StatusOK, consentPage(s.consentViewFor(p, b)))
}

// consentSubmit serves POST /consent: decision=allow stores the consent,
// decision=deny records "denied"; both resume the authorization.
func (s *Server) consentSubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.renderMessage(w, r, http.StatusBadRequest, messageView{Title: "Bad request", Message: "The form could not be read.", IsError: true})
		return
	}
	p, b, ok := s.consentContext(w, r, r.PostForm.Get("req"))
	if !ok {
		return
	}
	s.withFormTargets(w, p.formTargets())
	ev := storage.Event{UserID: b.user.ID, ClientID: p.req.ClientID, SessionID: b.session.ID, IPAddress: s.clientIP(r)}
	switch r.PostForm.Get("decision") {
	case "allow":
		if err := s.grant(r, b.user.ID, p.req.ClientID, p.h.Scopes); err != nil {
			s.internalError(w, r, "store consent", err)
			return
		}
		ev.Type = "consent.granted"
		s.audit(ctx, ev, map[string]any{"scopes": p.h.Scopes})
	case "deny":
		if err := s.recordOutcome(ctx, p.req.ID, outcomeDenied); err != nil {
			s.internalError(w, r, "deny consent", err)
			return
		}
		ev.Type = "consent.denied"
		s.audit(ctx, ev, map[string]any{"scopes": p.h.Scopes})
	default:
		v := s.consentViewFor(p, b)
		v.Error = "Choose Allow or Deny."
		s.render(w, r, http.StatusBadRequest, consentPage(v))
		return
	}
	seeOther(w, r, p.h.ResumeURL)
}

// consentContext loads the request and the signed-in user for a consent
// page, answering the browser itself when it cannot go on.
func (s *Server) consentContext(w http.ResponseWriter, r *http.Request, reqID string) (pending, *browser, bool) {
	p, err := s.loadPending(r.Context(), reqID)
	if errors.Is(err, errRequestUnknown) {
		s.requestGone(w, r)
		return pending{}, nil, false
	}
	if err != nil {
		s.internalError(w, r, "load authorization request", err)
		return pending{}, nil, false
	}
	if p.req.Outcome != "" {
		seeOther(w, r, p.h.ResumeURL)
		return pending{}, nil, false
	}
	b, err := s.currentBrowser(r)
	if err != nil {
		s.internalError(w, r, "load session", err)
		return pending{}, nil, false
	}
	if b == nil {
		// Signed out meanwhile: sign in again, then the resume asks again.
		seeOther(w, r, "/login?req="+url.QueryEscape(p.req.ID))
		return pending{}, nil, false
	}
	if p.req.SessionID != "" && p.req.SessionID != b.session.ID {
		s.renderMessage(w, r, http.StatusForbidden, messageView{
			Title:   "Request not yours",
			Message: "This request belongs to a different sign-in. Go back to the application and start again.",
			IsError: true,
		})
		return pending{}, nil, false
	}
	return p, b, true
}

func (s *Server) consentViewFor(p pending, b *browser) consentView {
	v := consentView{CSS: s.cssURL, ReqID: p.req.ID, ClientName: p.h.ClientName, Username: b.user.Username}
	for _, sc := range p.h.Scopes {
		v.Scopes = append(v.Scopes, scopeView{Name: sc, Description: s.describeScope(sc)})
	}
	return v
}

// grant merges scopes into the user's stored consent for the client, in
// one transaction so concurrent grants do not lose scopes.
func (s *Server) grant(r *http.Request, userID, clientID string, scopes []string) (err error) {
	ctx, err := s.store.BeginTx(r.Context())
	if err != nil {
		return fmt.Errorf("begin consent transaction: %w", err)
	}
	defer func() {
		if err != nil {
			_ = s.store.Rollback(ctx)
		}
	}()
	merged := slices.Clone(scopes)
	old, err := s.store.GetConsent(ctx, userID, clientID)
	switch {
	case err == nil:
		merged = append(slices.Clone(old.Scopes), scopes...)
	case !errors.Is(err, storage.ErrNotFound):
		return fmt.Errorf("load consent: %w", err)
	}
	slices.Sort(merged)
	merged = slices.Compact(merged)
	c := storage.Consent{UserID: userID, ClientID: clientID, Scopes: merged, GrantedAt: s.now()}
	if err = s.store.PutConsent(ctx, c); err != nil {
		return fmt.Errorf("put consent: %w", err)
	}
	if err = s.store.Commit(ctx); err != nil {
		return fmt.Errorf("commit consent: %w", err)
	}
	return nil
}

// describeScope returns the consent-page text for a scope.
func (s *Server) describeScope(scope string) string {
	if d, ok := s.scopes[scope]; ok {
		return d
	}
	switch scope {
	case "openid":
		return "Confirm who you are"
	case "profile":
		return "See your name and basic profile"
	case "email":
		return "See your email address"
	case "address":
		return "See your postal address"
	case "phone":
		return "See your phone number"
	case "offline_access":
		return "Stay connected while you are away (keep access until you revoke it)"
	}
	return "Use the permission “" + scope + "”"
}
