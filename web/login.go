package web

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/stepwise-id/stepwise/oauth"
	"github.com/stepwise-id/stepwise/storage"
	"github.com/stepwise-id/stepwise/web/password"
)

// maxFormBytes caps a browser form body.
const maxFormBytes = 64 << 10

const (
	msgBadCredentials = "Incorrect username or password."
	msgThrottled      = "Too many failed sign-in attempts. Wait a few minutes and try again."
	msgPasskeyNeeded  = "This application requires a passkey for this sign-in; a password is not enough. Passkey sign-in is not enabled on this server, so you can cancel and return to the application."
	msgPasskeyAsked   = "This application asks you to sign in with a passkey; a password is not enough."
	msgReauth         = "Enter your password again to continue."
	msgSignInAgain    = "Enter your password to continue."
)

// loginForm serves GET /login. With ?req=ID it signs in for a paused
// authorization request; without, it signs in to the account page (or the
// same-origin ?return= path).
func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	b, err := s.currentBrowser(r)
	if err != nil {
		s.internalError(w, r, "load session", err)
		return
	}
	q := r.URL.Query()
	reqID := q.Get("req")
	if reqID == "" {
		ret, _ := s.localURL(q.Get("return"))
		v := s.plainLoginView(ret, "")
		if b != nil {
			if q.Get("reauth") == "" {
				if ret == "" {
					ret = "/account"
				}
				seeOther(w, r, ret)
				return
			}
			// Asked to confirm it's them (the account page before a
			// passkey change): the form, filled in, even though signed in.
			v.Username, v.Reason = b.user.Username, msgReauth
		}
		s.render(w, r, http.StatusOK, loginPage(v))
		return
	}

	p, err := s.loadPending(ctx, reqID)
	if errors.Is(err, errRequestUnknown) {
		s.requestGone(w, r)
		return
	}
	if err != nil {
		s.internalError(w, r, "load authorization request", err)
		return
	}
	if p.req.Outcome != "" {
		seeOther(w, r, p.h.ResumeURL)
		return
	}
	// The oauth package decided the browser must come here (prompt=login
	// or select_account may ask even when the session would do), so the
	// page is always shown; a session that already meets the requirement
	// is offered as "continue as".
	s.withFormTargets(w, p.formTargets())
	s.render(w, r, http.StatusOK, loginPage(s.loginViewFor(ctx, p, b, "")))
}

// plainLoginView fills the sign-in page without an authorization request.
func (s *Server) plainLoginView(ret, errMsg string) loginView {
	return loginView{CSS: s.cssURL, JS: s.jsURL, Return: ret, Error: errMsg, Passkeys: s.passkeys != nil}
}

// loginViewFor fills the sign-in page for a paused request: passkey first
// and password second; passkey only when a password cannot meet the
// request; and, for a signed-in user below the required level, the
// step-up ceremony.
func (s *Server) loginViewFor(ctx context.Context, p pending, b *browser, errMsg string) loginView {
	req := p.h.requirement()
	v := loginView{
		CSS:        s.cssURL,
		JS:         s.jsURL,
		ReqID:      p.req.ID,
		ClientName: p.h.ClientName,
		Reason:     s.humanReason(req),
		Username:   p.h.LoginHint,
		Error:      errMsg,
		Passkeys:   s.passkeys != nil,
	}
	if !s.passwordSuffices(req) {
		v.PasskeyRequired = true
		if s.passkeys == nil {
			if v.Error == "" {
				v.Error = msgPasskeyNeeded
			}
			return v
		}
		if b == nil {
			if v.Reason == "" {
				v.Reason = msgPasskeyAsked
			}
			return v
		}
		if l := s.effectiveLogin(b.session); s.satisfies(&l, req) {
			v.ContinueAs = b.user.Username
			return v
		}
		v.StepUp, v.Username = true, b.user.Username
		if isLadderReason(req.Reason) {
			v.Reason = "" // the step-up block says the same in context
		}
		has, err := s.hasPasskeys(ctx, b.user.ID)
		if err != nil {
			// The ceremony's own begin call reports it properly.
			s.log.WarnContext(ctx, "list passkeys for step-up", "err", err)
			has = true
		}
		if !has {
			v.NoPasskey = true
			if v.Error == "" {
				v.Error = msgNoPasskeys
			}
		}
		return v
	}
	if b != nil {
		v.Username = b.user.Username
		l := s.effectiveLogin(b.session)
		if s.satisfies(&l, req) {
			v.ContinueAs = b.user.Username
		} else if v.Reason == "" {
			// Signed in, but not recently enough (prompt=login, max_age).
			v.Reason = msgReauth
		}
	}
	return v
}

// loginSubmit serves POST /login: a password sign-in, or "cancel".
func (s *Server) loginSubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.renderMessage(w, r, http.StatusBadRequest, messageView{Title: "Bad request", Message: "The form could not be read.", IsError: true})
		return
	}
	b, err := s.currentBrowser(r)
	if err != nil {
		s.internalError(w, r, "load session", err)
		return
	}

	var p *pending
	if reqID := r.PostForm.Get("req"); reqID != "" {
		pp, err := s.loadPending(ctx, reqID)
		if errors.Is(err, errRequestUnknown) {
			s.requestGone(w, r)
			return
		}
		if err != nil {
			s.internalError(w, r, "load authorization request", err)
			return
		}
		p = &pp
		if p.req.Outcome != "" {
			seeOther(w, r, p.h.ResumeURL)
			return
		}
		s.withFormTargets(w, p.formTargets())
		req := p.h.requirement()
		if r.PostForm.Get("action") == "cancel" {
			outcome := outcomeDenied
			if !s.passwordSuffices(req) {
				outcome = outcomeUnmet
			}
			if err := s.recordOutcome(ctx, p.req.ID, outcome); err != nil {
				s.internalError(w, r, "cancel sign-in", err)
				return
			}
			s.audit(ctx, storage.Event{Type: "login.cancel", ClientID: p.req.ClientID, IPAddress: s.clientIP(r)},
				map[string]any{"outcome": outcome})
			seeOther(w, r, p.h.ResumeURL)
			return
		}
		if r.PostForm.Get("action") == "continue" {
			if b != nil {
				if l := s.effectiveLogin(b.session); s.satisfies(&l, req) {
					seeOther(w, r, p.h.ResumeURL)
					return
				}
			}
			s.render(w, r, http.StatusOK, loginPage(s.loginViewFor(ctx, *p, b, msgSignInAgain)))
			return
		}
		if !s.passwordSuffices(req) {
			msg := msgPasskeyNeeded
			if s.passkeys != nil {
				msg = msgPasskeyAsked
			}
			s.render(w, r, http.StatusForbidden, loginPage(s.loginViewFor(ctx, *p, b, msg)))
			return
		}
	}

	ret, _ := s.localURL(r.PostForm.Get("return"))
	username := strings.TrimSpace(r.PostForm.Get("username"))
	pw := r.PostForm.Get("password")
	ip := s.clientIP(r)

	fail := func(status int, msg string) {
		var v loginView
		if p != nil {
			v = s.loginViewFor(ctx, *p, b, msg)
		} else {
			v = s.plainLoginView(ret, msg)
		}
		v.Username = username
		s.render(w, r, status, loginPage(v))
	}

	now := s.now()
	if !s.throttle.allowed(ip, username, now) {
		s.audit(ctx, storage.Event{Type: "login.failure", IPAddress: ip, ClientID: clientOf(p)},
			map[string]any{"username": truncate(username, 128), "reason": "throttled", "user_agent": truncate(r.UserAgent(), 512)})
		fail(http.StatusTooManyRequests, msgThrottled)
		return
	}

	user, reason, err := s.checkPassword(r, username, pw)
	if err != nil {
		s.internalError(w, r, "check password", err)
		return
	}
	if reason != "" {
		s.throttle.failed(ip, username, now)
		s.audit(ctx, storage.Event{Type: "login.failure", UserID: user.ID, IPAddress: ip, ClientID: clientOf(p)},
			map[string]any{"username": truncate(username, 128), "reason": reason, "user_agent": truncate(r.UserAgent(), 512)})
		fail(http.StatusOK, msgBadCredentials)
		return
	}
	s.throttle.succeeded(ip, username)

	se, err := s.passwordLogin(w, r, b, user, ip)
	if err != nil {
		s.internalError(w, r, "start session", err)
		return
	}
	s.audit(ctx, storage.Event{Type: "login.success", UserID: user.ID, SessionID: se.ID, IPAddress: ip, ClientID: clientOf(p)},
		map[string]any{"user_agent": se.UserAgent, "acr": se.ACR, "amr": se.AMR, "method": "password",
			"device": s.deviceCookie(w, r)})

	switch {
	case p != nil:
		seeOther(w, r, p.h.ResumeURL)
	case ret != "":
		seeOther(w, r, ret)
	default:
		seeOther(w, r, "/account")
	}
}

// humanReason words the reason a request gives for its requirement for the
// sign-in page. The OAuth core states it tersely ("requested phr"); people
// are told what to do instead.
func (s *Server) humanReason(req oauth.Requirement) string {
	r := strings.TrimSpace(req.Reason)
	for _, prefix := range ladderReasonPrefixes() {
		acr, ok := strings.CutPrefix(r, prefix)
		if !ok {
			continue
		}
		level, known := s.ladder.Level(acr)
		if !known {
			break
		}
		switch level {
		case oauth.LevelPassword:
			return ""
		case oauth.LevelPasskey:
			return "This application asks you to sign in with a passkey."
		case oauth.LevelVerifiedPasskey:
			return "This application asks you to confirm it's you with a passkey and your fingerprint, face or device PIN."
		default:
			return "This application asks for a passkey kept on a security key or on this device, with your fingerprint, face or device PIN."
		}
	}
	if r == "" {
		return ""
	}
	// Sentence case and a full stop, whatever the source.
	r = strings.ToUpper(r[:1]) + r[1:]
	if !strings.HasSuffix(r, ".") {
		r += "."
	}
	return r
}

// ladderReasonPrefixes are how the OAuth core words "this level was asked
// for".
func ladderReasonPrefixes() []string { return []string{"requested ", "client requires "} }

func isLadderReason(r string) bool {
	for _, p := range ladderReasonPrefixes() {
		if strings.HasPrefix(strings.TrimSpace(r), p) {
			return true
		}
	}
	return false
}

// checkPassword authenticates username with pw. A non-empty reason means
// the attempt failed (for the audit log only; the user sees one generic
// message). Unknown users cost the same argon2id work as known ones.
func (s *Server) checkPassword(r *http.Request, username, pw string) (storage.User, string, error) {
	ctx := r.Context()
	if username == "" || pw == "" {
		password.Dummy(pw)
		return storage.User{}, "empty", nil
	}
	user, err := s.lookupUser(r, username)
	if errors.Is(err, storage.ErrNotFound) {
		password.Dummy(pw)
		return storage.User{}, "unknown_user", nil
	}
	if err != nil {
		return storage.User{}, "", err
	}
	if user.PasswordHash == "" {
		password.Dummy(pw)
		return user, "no_password", nil
	}
	ok, err := password.Verify(user.PasswordHash, pw)
	if err != nil {
		s.log.ErrorContext(ctx, "stored password hash unreadable", "user_id", user.ID, "err", err)
		return user, "bad_hash", nil
	}
	if !ok {
		return user, "bad_password", nil
	}
	if user.Disabled {
		return user, "disabled", nil
	}
	if password.NeedsRehash(user.PasswordHash) {
		s.rehash(r, user.ID, pw)
	}
	return user, "", nil
}

// lookupUser finds a user by username as typed, then lower-cased.
func (s *Server) lookupUser(r *http.Request, username string) (storage.User, error) {
	u, err := s.store.GetUserByUsername(r.Context(), username)
	if errors.Is(err, storage.ErrNotFound) {
		if lower := strings.ToLower(username); lower != username {
			return s.store.GetUserByUsername(r.Context(), lower)
		}
	}
	return u, err
}

// rehash upgrades a stored hash to the current parameters after a
// successful sign-in; failure is logged only.
func (s *Server) rehash(r *http.Request, userID, pw string) {
	h, err := password.Hash(pw)
	if err != nil {
		s.log.WarnContext(r.Context(), "rehash password", "user_id", userID, "err", err)
		return
	}
	err = s.store.UpdateUser(r.Context(), userID, func(u storage.User) (storage.User, error) {
		u.PasswordHash = h
		u.UpdatedAt = s.now()
		return u, nil
	})
	if err != nil {
		s.log.WarnContext(r.Context(), "store rehashed password", "user_id", userID, "err", err)
	}
}

func clientOf(p *pending) string {
	if p == nil {
		return ""
	}
	return p.req.ClientID
}
