package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gorilla/securecookie"

	"github.com/stepwise-id/stepwise/oauth"
	"github.com/stepwise-id/stepwise/storage"
)

// stateLifetime bounds how long a signed form state (the logout
// confirmation) stays valid.
const stateLifetime = 10 * time.Minute

// logoutStateName names the signed logout state, so it cannot be confused
// with another value signed by the same keys.
const logoutStateName = "stepwise_logout"

// logoutState is what the confirmation form carries, signed: the validated
// post-logout redirect never comes from an unsigned form field.
type logoutState struct {
	RedirectURI string `json:"r,omitempty"`
	ClientName  string `json:"c,omitempty"`
}

// Logout implements oauth.Logouter for RP-initiated logout. A browser with
// a session gets a confirmation page (so a cross-site link cannot sign the
// user out); one without goes straight to lr.RedirectURI or the signed-out
// page.
func (s *Server) Logout(w http.ResponseWriter, r *http.Request, lr oauth.LogoutRequest) {
	b, err := s.currentBrowser(r)
	if err != nil {
		s.internalError(w, r, "load session", err)
		return
	}
	if b == nil {
		s.clearSessionCookie(w)
		s.signedOut(w, r, lr.RedirectURI)
		return
	}
	v := logoutView{CSS: s.cssURL, ClientName: lr.ClientName, Username: b.user.Username}
	if lr.RedirectURI != "" || lr.ClientName != "" {
		st, err := securecookie.EncodeMulti(logoutStateName, logoutState{RedirectURI: lr.RedirectURI, ClientName: lr.ClientName}, s.stateCodecs...)
		if err != nil {
			s.internalError(w, r, "sign logout state", err)
			return
		}
		v.State = st
		if lr.RedirectURI != "" {
			s.withFormTargets(w, []string{lr.RedirectURI})
		}
	}
	s.render(w, r, http.StatusOK, logoutPage(v))
}

// logoutForm serves GET /logout: a confirmation page, never a sign-out.
func (s *Server) logoutForm(w http.ResponseWriter, r *http.Request) {
	s.Logout(w, r, oauth.LogoutRequest{})
}

// logoutSubmit serves POST /logout: it ends the session and every token it
// authorised, clears the cookie, and goes to the signed post-logout
// redirect, if any.
func (s *Server) logoutSubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.renderMessage(w, r, http.StatusBadRequest, messageView{Title: "Bad request", Message: "The form could not be read.", IsError: true})
		return
	}
	var st logoutState
	if raw := r.PostForm.Get("state"); raw != "" {
		if err := securecookie.DecodeMulti(logoutStateName, raw, &st, s.stateCodecs...); err != nil {
			s.log.InfoContext(ctx, "logout state rejected", "err", err)
			st = logoutState{}
		}
	}
	b, err := s.currentBrowser(r)
	if err != nil {
		s.internalError(w, r, "load session", err)
		return
	}
	if b != nil {
		if err := s.endSession(ctx, b.session.ID); err != nil {
			s.internalError(w, r, "end session", err)
			return
		}
		s.audit(ctx, storage.Event{Type: "logout", UserID: b.user.ID, SessionID: b.session.ID, IPAddress: s.clientIP(r)},
			map[string]any{"client": st.ClientName})
	}
	s.clearSessionCookie(w)
	if st.RedirectURI != "" {
		s.withFormTargets(w, []string{st.RedirectURI})
	}
	s.signedOut(w, r, st.RedirectURI)
}

// endSession deletes a session and the tokens it authorised.
func (s *Server) endSession(ctx context.Context, id string) error {
	if _, err := s.store.DeleteRequestsBySession(ctx, id); err != nil {
		return fmt.Errorf("delete session tokens: %w", err)
	}
	if err := s.store.DeleteSession(ctx, id); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// signedOut sends the browser to redirect (a validated post-logout URI) or
// shows the signed-out page.
func (s *Server) signedOut(w http.ResponseWriter, r *http.Request, redirect string) {
	if redirect != "" {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, redirect, http.StatusSeeOther)
		return
	}
	s.renderMessage(w, r, http.StatusOK, messageView{
		Title:    "Signed out",
		Message:  "You have been signed out.",
		LinkURL:  "/login",
		LinkText: "Sign in again",
	})
}
