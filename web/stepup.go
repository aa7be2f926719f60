package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/stepwise-id/stepwise/passkey"
	"github.com/stepwise-id/stepwise/storage"
)

// DefaultSteppedUpLifetime is how long a stepped-up level lasts on a session
// when Config.SteppedUpLifetime is zero (DESIGN.md: stepped_up_lifetime).
const DefaultSteppedUpLifetime = 15 * time.Minute

const (
	msgSignedOut      = "Your session has ended. Sign in again to continue."
	msgStepUpTooWeak  = "The passkey you used is not strong enough for this request: it asks for a passkey that is bound to one device, such as a security key. Use such a passkey, or cancel."
	msgStepUpWrongReq = "This step belongs to another sign-in request. Reload the page and try again."
)

// stepUpBinding returns what a step-up ceremony is bound to: the paused
// authorization request, or, for the account page's re-authentication, the
// browser session (so the ceremony cannot be spent elsewhere).
func stepUpBinding(in apiRequest, p *pending, b *browser) (string, bool) {
	switch {
	case p != nil:
		return p.req.ID, true
	case in.Purpose == purposeAccount:
		return "account:" + b.session.ID, true
	}
	return "", false
}

// stepUpBegin serves POST /webauthn/stepup/begin: a user-verified ceremony
// with the signed-in user's own passkeys, for a paused authorization
// request ({"req":ID}) or to confirm it's them on the account page
// ({"purpose":"account"}).
func (s *Server) stepUpBegin(w http.ResponseWriter, r *http.Request) {
	in, ok := s.readAPI(w, r)
	if !ok {
		return
	}
	b, p, ok := s.stepUpContext(w, r, in)
	if !ok {
		return
	}
	binding, ok := stepUpBinding(in, p, b)
	if !ok {
		writeAPI(w, http.StatusBadRequest, apiResponse{Error: "bad_request", Message: msgStepUpWrongReq})
		return
	}
	c, err := s.passkeys.BeginStepUp(r.Context(), b.user.ID, binding)
	if err != nil {
		s.passkeyFailed(w, r, "begin step-up", err)
		return
	}
	if err := s.saveCeremony(w, ceremonyStepUp, ceremonyCookie{State: c.State, UserID: b.user.ID, Binding: binding}, c.ExpiresAt); err != nil {
		s.apiInternal(w, r, "begin step-up", err)
		return
	}
	writeAPI(w, http.StatusOK, apiResponse{Options: c.Options})
}

// stepUpFinish serves POST /webauthn/stepup/finish: it verifies the
// ceremony and elevates the browser session (see elevate).
func (s *Server) stepUpFinish(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	in, ok := s.readAPI(w, r)
	if !ok {
		return
	}
	st, ok := s.takeCeremony(w, r, ceremonyStepUp)
	if !ok {
		ceremonyGone(w)
		return
	}
	b, p, ok := s.stepUpContext(w, r, in)
	if !ok {
		return
	}
	binding, ok := stepUpBinding(in, p, b)
	if !ok || st.UserID != b.user.ID || st.Binding != binding {
		// Signed in as someone else, or another request, since it began.
		writeAPI(w, http.StatusBadRequest, apiResponse{Error: "bad_state", Message: msgStepUpWrongReq})
		return
	}
	ip := s.clientIP(r)
	res, err := s.passkeys.FinishStepUp(ctx, b.user.ID, binding, passkey.Response{State: st.State, Credential: in.Credential, RequestInfo: s.requestInfo(r, b, clientOf(p))})
	if err != nil {
		s.audit(ctx, storage.Event{Type: "login.step_up_failure", UserID: b.user.ID, SessionID: b.session.ID, IPAddress: ip, ClientID: clientOf(p)},
			map[string]any{"reason": passkey.Reason(err), "user_agent": truncate(r.UserAgent(), 512)})
		s.passkeyFailed(w, r, "step-up rejected", err)
		return
	}
	se, err := s.elevate(ctx, b.session.ID, res)
	if errors.Is(err, storage.ErrNotFound) {
		writeAPI(w, http.StatusUnauthorized, apiResponse{Error: "signed_out", Message: msgSignedOut})
		return
	}
	if err != nil {
		s.apiInternal(w, r, "elevate session", err)
		return
	}
	s.audit(ctx, storage.Event{Type: "login.step_up", UserID: b.user.ID, SessionID: se.ID, IPAddress: ip, ClientID: clientOf(p)},
		map[string]any{"acr": se.ACR, "amr": se.AMR, "base_acr": se.BaseACR, "elevated_until": se.ElevatedUntil,
			"credential_id": passkey.EncodeID(res.CredentialID), "authenticator": res.Authenticator, "purpose": in.Purpose,
			"user_agent": truncate(r.UserAgent(), 512), "device": s.deviceCookie(w, r)})
	if p == nil {
		writeAPI(w, http.StatusOK, apiResponse{Redirect: "/account?notice=" + noticeConfirmed})
		return
	}
	if l := s.effectiveLogin(se); !s.satisfies(&l, p.h.requirement()) {
		writeAPI(w, http.StatusForbidden, apiResponse{Error: "insufficient", Message: msgStepUpTooWeak})
		return
	}
	writeAPI(w, http.StatusOK, apiResponse{Redirect: p.h.ResumeURL})
}

// stepUpContext loads the signed-in browser and the paused request of a
// step-up call, answering the client itself when either is missing.
func (s *Server) stepUpContext(w http.ResponseWriter, r *http.Request, in apiRequest) (*browser, *pending, bool) {
	p, ok := s.apiPending(w, r, in.Req)
	if !ok {
		return nil, nil, false
	}
	b, err := s.currentBrowser(r)
	if err != nil {
		s.apiInternal(w, r, "load session", err)
		return nil, nil, false
	}
	if b == nil {
		resp := apiResponse{Error: "signed_out", Message: msgSignedOut}
		if p != nil {
			resp.Redirect = "/login?req=" + url.QueryEscape(p.req.ID)
		}
		writeAPI(w, http.StatusUnauthorized, resp)
		return nil, nil, false
	}
	return b, p, true
}

// elevate records a step-up on a session. The level in force before it is
// kept as the base (BaseACR, BaseAMR, BaseAuthTime) unless the session is
// elevated already, in which case the original base stays; the step-up's
// acr, amr and auth_time are in force until ElevatedUntil, after which
// CurrentLogin reports the base again. Elevation does not extend the
// session's lifetime: that hangs on the primary sign-in.
func (s *Server) elevate(ctx context.Context, sessionID string, res passkey.Result) (storage.Session, error) {
	now := s.now()
	var out storage.Session
	err := s.store.UpdateSession(ctx, sessionID, func(se storage.Session) (storage.Session, error) {
		if se.UserID != res.UserID {
			return se, fmt.Errorf("step-up by user %q on a session of %q", res.UserID, se.UserID)
		}
		if se.ElevatedUntil.IsZero() {
			se.BaseACR, se.BaseAMR, se.BaseAuthTime = se.ACR, slices.Clone(se.AMR), se.AuthTime
		}
		se.ACR, se.AMR, se.AuthTime = res.ACR, slices.Clone(res.AMR), res.AuthTime
		se.ElevatedUntil = now.Add(s.steppedUp)
		se.LastSeenAt = now
		out = se
		return se, nil
	})
	if err != nil {
		return storage.Session{}, fmt.Errorf("elevate session: %w", err)
	}
	return out, nil
}
