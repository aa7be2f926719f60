package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/gorilla/securecookie"

	"github.com/stepwise-id/stepwise/passkey"
	"github.com/stepwise-id/stepwise/storage"
)

// The passkey pages talk to the server through small JSON endpoints under
// /webauthn/: a "begin" call returns the WebAuthn options for the browser,
// a "finish" call hands back the browser's credential. They are same-origin
// POSTs, so the cross-origin protection of Middleware covers them, and they
// accept only application/json, which a cross-site form cannot send.
const (
	pathLoginBegin     = "/webauthn/login/begin"
	pathLoginFinish    = "/webauthn/login/finish"
	pathRegisterBegin  = "/webauthn/register/begin"
	pathRegisterFinish = "/webauthn/register/finish"
	pathStepUpBegin    = "/webauthn/stepup/begin"
	pathStepUpFinish   = "/webauthn/stepup/finish"
)

// maxJSONBytes caps a JSON request body; a passkey response with a
// certificate-chain attestation stays well below it.
const maxJSONBytes = 64 << 10

// Ceremony kinds, which also name the cookie each kind's state lives in, so
// that a login started in one tab does not clobber a step-up in another.
const (
	ceremonyLogin    = "login"
	ceremonyRegister = "register"
	ceremonyStepUp   = "stepup"
)

// ceremonyCookie is the browser-side home of a ceremony's state between
// begin and finish. It is encrypted and authenticated with the session
// cookie keys (the state must not be changeable by the client), scoped to
// /webauthn/, and lives no longer than the ceremony. Keeping it in the
// browser rather than in storage means an abandoned ceremony costs nothing,
// and binding it to the browser means a finish call from anywhere else has
// no state to finish; single use is enforced by the passkey package itself.
type ceremonyCookie struct {
	State []byte `json:"s"`
	// UserID is the user a registration or step-up was begun for.
	UserID string `json:"u,omitempty"`
	// Binding is the authorization request (or account re-auth) a step-up
	// is bound to, or the enrolment link's ID for a registration.
	Binding string `json:"b,omitempty"`
}

// apiRequest is the body of every /webauthn/ call; each endpoint reads the
// fields it needs.
type apiRequest struct {
	// Req is the paused authorization request the page serves, if any.
	Req string `json:"req,omitempty"`
	// Return is the same-origin page to go to after signing in.
	Return string `json:"return,omitempty"`
	// Conditional asks for a conditional-mediation (autofill) login.
	Conditional bool `json:"conditional,omitempty"`
	// Token is an enrolment link's token.
	Token string `json:"token,omitempty"`
	// Purpose "account" re-authenticates for the account page instead of
	// stepping up for an authorization request.
	Purpose string `json:"purpose,omitempty"`
	// Nickname names a new passkey.
	Nickname string `json:"nickname,omitempty"`
	// Credential is the browser's PublicKeyCredential.toJSON().
	Credential json.RawMessage `json:"credential,omitempty"`
}

// apiResponse is the body of every /webauthn/ answer.
type apiResponse struct {
	// Options are the WebAuthn options for the browser ({"publicKey":…}).
	Options json.RawMessage `json:"options,omitempty"`
	// Redirect is a same-origin URL to go to next.
	Redirect string `json:"redirect,omitempty"`
	// Message is for the user: a failure or a confirmation.
	Message string `json:"message,omitempty"`
	// Error is a stable code for scripts ("cancelled", "unknown_credential"…).
	Error string `json:"error,omitempty"`
}

const purposeAccount = "account"

// passkeyRoutes adds the passkey endpoints and pages to mux.
func (s *Server) passkeyRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+pathLoginBegin, s.loginBegin)
	mux.HandleFunc("POST "+pathLoginFinish, s.loginFinish)
	mux.HandleFunc("POST "+pathRegisterBegin, s.registerBegin)
	mux.HandleFunc("POST "+pathRegisterFinish, s.registerFinish)
	mux.HandleFunc("POST "+pathStepUpBegin, s.stepUpBegin)
	mux.HandleFunc("POST "+pathStepUpFinish, s.stepUpFinish)
	mux.HandleFunc("GET /enroll", s.enrollPage)
	mux.HandleFunc("POST /account/passkeys/rename", s.renamePasskey)
	mux.HandleFunc("POST /account/passkeys/delete", s.deletePasskey)
}

// readAPI decodes a /webauthn/ request body, answering the client itself
// when it cannot.
func (s *Server) readAPI(w http.ResponseWriter, r *http.Request) (apiRequest, bool) {
	var req apiRequest
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		writeAPI(w, http.StatusUnsupportedMediaType, apiResponse{Error: "bad_request", Message: "The request must be JSON."})
		return req, false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBytes))
	if err := dec.Decode(&req); err != nil || dec.More() {
		writeAPI(w, http.StatusBadRequest, apiResponse{Error: "bad_request", Message: "The request could not be read. Reload the page and try again."})
		return req, false
	}
	return req, true
}

// writeAPI writes a JSON answer that is never cached.
func writeAPI(w http.ResponseWriter, status int, v apiResponse) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// apiInternal logs err and answers with a generic failure.
func (s *Server) apiInternal(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.log.ErrorContext(r.Context(), what, "path", r.URL.Path, "err", err)
	writeAPI(w, http.StatusInternalServerError, apiResponse{Error: "internal", Message: "Something went wrong on our side. Please try again in a moment."})
}

// ceremonyCookieName names the cookie of one ceremony kind. Over https it
// takes the __Secure- prefix (__Host- would need Path=/, and the cookie is
// scoped to /webauthn/).
func (s *Server) ceremonyCookieName(kind string) string {
	if s.secure {
		return "__Secure-stepwise_webauthn_" + kind
	}
	return "stepwise_webauthn_" + kind
}

// saveCeremony stores a begun ceremony's state in its cookie.
func (s *Server) saveCeremony(w http.ResponseWriter, kind string, c ceremonyCookie, expires time.Time) error {
	name := s.ceremonyCookieName(kind)
	v, err := securecookie.EncodeMulti(name, c, s.stateCodecs...)
	if err != nil {
		return fmt.Errorf("seal %s ceremony state: %w", kind, err)
	}
	// The passkey service and this server share the clock (time.Now, or
	// the tests' clock), so the cookie dies with the ceremony.
	maxAge := int(expires.Sub(s.now()) / time.Second)
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    v,
		Path:     "/webauthn/",
		MaxAge:   max(maxAge, 1),
		HttpOnly: true,
		Secure:   s.secure,
		SameSite: http.SameSiteStrictMode,
	})
	return nil
}

// takeCeremony reads and clears a ceremony's cookie. A state is finished at
// most once, so it is dropped whatever the outcome.
func (s *Server) takeCeremony(w http.ResponseWriter, r *http.Request, kind string) (ceremonyCookie, bool) {
	name := s.ceremonyCookieName(kind)
	var c ceremonyCookie
	ck, err := r.Cookie(name)
	if err != nil {
		return c, false
	}
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/webauthn/", MaxAge: -1, HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteStrictMode})
	if err := securecookie.DecodeMulti(name, ck.Value, &c, s.stateCodecs...); err != nil || len(c.State) == 0 {
		return ceremonyCookie{}, false
	}
	return c, true
}

// ceremonyGone answers a finish call without a usable ceremony state.
func ceremonyGone(w http.ResponseWriter) {
	writeAPI(w, http.StatusBadRequest, apiResponse{Error: "expired", Message: msgCeremonyExpired})
}

// requestInfo describes r for the passkey package's audit records.
func (s *Server) requestInfo(r *http.Request, b *browser, clientID string) passkey.RequestInfo {
	ri := passkey.RequestInfo{IPAddress: s.clientIP(r), ClientID: clientID}
	if b != nil {
		ri.SessionID = b.session.ID
	}
	return ri
}

// Messages for what goes wrong in passkey ceremonies, in words people use.
const (
	msgCeremonyExpired   = "That took too long, or the request was already used. Please try again."
	msgUnknownCredential = "This passkey is not registered with your account any more; it may have been removed. Choose another passkey, or sign in another way."
	msgNotAllowed        = "That passkey can't be used here: it belongs to another account, or it is not one of the passkeys allowed for this step."
	msgNeedsUV           = "Your device did not confirm it's you with a fingerprint, face or device PIN, and this step requires it. Try again and complete that check, or cancel."
	msgCloned            = "This passkey has been blocked because it may have been copied. Use another passkey, or ask your administrator for help."
	msgWrongSite         = "This passkey was made for a different site, so it can't be used here."
	msgAccountDisabled   = "This account is disabled."
	msgNoPasskeys        = "Your account has no passkey yet, so you can't confirm it's you with one. Add a passkey from your account page, then try again — or cancel and return to the application."
	msgAlreadyRegistered = "This passkey is already registered with your account."
	msgNotDiscoverable   = "This authenticator can't keep a passkey that signs in without a username. Use another device or password manager."
	msgBadNickname       = "A passkey name must be 1 to 64 characters long."
	msgNotVerified       = "Your passkey's answer could not be verified. Please try again."
	msgPasskeysOff       = "Passkeys are not enabled on this server."
)

// passkeyError turns an error from the passkey package into an HTTP status
// and a message for the user; the detail stays in the logs.
func passkeyError(err error) (int, apiResponse) {
	code := passkey.Reason(err)
	var msg string
	status := http.StatusBadRequest
	switch {
	case errors.Is(err, passkey.ErrBadState), errors.Is(err, passkey.ErrChallengeExpired),
		errors.Is(err, passkey.ErrChallengeUsed), errors.Is(err, passkey.ErrChallengeMismatch),
		errors.Is(err, passkey.ErrRequestMismatch):
		msg = msgCeremonyExpired
	case errors.Is(err, passkey.ErrUnknownCredential):
		msg = msgUnknownCredential
	case errors.Is(err, passkey.ErrCredentialNotAllowed):
		msg, status = msgNotAllowed, http.StatusForbidden
	case errors.Is(err, passkey.ErrUserVerificationRequired):
		msg, status = msgNeedsUV, http.StatusForbidden
	case errors.Is(err, passkey.ErrCloneDetected):
		msg, status = msgCloned, http.StatusForbidden
	case errors.Is(err, passkey.ErrOriginMismatch), errors.Is(err, passkey.ErrRPIDMismatch):
		msg = msgWrongSite
	case errors.Is(err, passkey.ErrUserDisabled):
		msg, status = msgAccountDisabled, http.StatusForbidden
	case errors.Is(err, passkey.ErrNoPasskeys):
		msg, status = msgNoPasskeys, http.StatusConflict
	case errors.Is(err, passkey.ErrAlreadyRegistered):
		msg, status = msgAlreadyRegistered, http.StatusConflict
	case errors.Is(err, passkey.ErrNotDiscoverable):
		msg = msgNotDiscoverable
	case errors.Is(err, passkey.ErrInvalidNickname):
		msg = msgBadNickname
	case errors.Is(err, passkey.ErrMalformedResponse), errors.Is(err, passkey.ErrVerificationFailed):
		msg = msgNotVerified
	default:
		return http.StatusInternalServerError, apiResponse{Error: "internal", Message: "Something went wrong on our side. Please try again in a moment."}
	}
	return status, apiResponse{Error: code, Message: msg}
}

// passkeyFailed answers a failed ceremony, logging internal failures.
func (s *Server) passkeyFailed(w http.ResponseWriter, r *http.Request, what string, err error) {
	status, resp := passkeyError(err)
	if status == http.StatusInternalServerError {
		s.apiInternal(w, r, what, err)
		return
	}
	s.log.InfoContext(r.Context(), what, "reason", resp.Error, "err", err)
	writeAPI(w, status, resp)
}

// apiPending loads the paused request a call names, if any. It answers the
// client itself and returns false when the request is gone or settled.
func (s *Server) apiPending(w http.ResponseWriter, r *http.Request, id string) (*pending, bool) {
	if id == "" {
		return nil, true
	}
	p, err := s.loadPending(r.Context(), id)
	if errors.Is(err, errRequestUnknown) {
		writeAPI(w, http.StatusBadRequest, apiResponse{Error: "request_expired",
			Message: "This sign-in request has expired or is not valid. Go back to the application and start again."})
		return nil, false
	}
	if err != nil {
		s.apiInternal(w, r, "load authorization request", err)
		return nil, false
	}
	if p.req.Outcome != "" {
		writeAPI(w, http.StatusOK, apiResponse{Redirect: p.h.ResumeURL})
		return nil, false
	}
	return &p, true
}

// loginBegin serves POST /webauthn/login/begin: a discoverable login,
// modal or (with "conditional") for the username field's autofill.
func (s *Server) loginBegin(w http.ResponseWriter, r *http.Request) {
	in, ok := s.readAPI(w, r)
	if !ok {
		return
	}
	begin := s.passkeys.BeginLogin
	if in.Conditional {
		begin = s.passkeys.BeginConditionalLogin
	}
	c, err := begin(r.Context())
	if err != nil {
		s.apiInternal(w, r, "begin passkey login", err)
		return
	}
	if err := s.saveCeremony(w, ceremonyLogin, ceremonyCookie{State: c.State}, c.ExpiresAt); err != nil {
		s.apiInternal(w, r, "begin passkey login", err)
		return
	}
	writeAPI(w, http.StatusOK, apiResponse{Options: c.Options})
}

// loginFinish serves POST /webauthn/login/finish: it verifies the
// assertion, signs the browser in at the level the ceremony earned, and
// says where to go next.
func (s *Server) loginFinish(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	in, ok := s.readAPI(w, r)
	if !ok {
		return
	}
	st, ok := s.takeCeremony(w, r, ceremonyLogin)
	if !ok {
		ceremonyGone(w)
		return
	}
	p, ok := s.apiPending(w, r, in.Req)
	if !ok {
		return
	}
	b, err := s.currentBrowser(r)
	if err != nil {
		s.apiInternal(w, r, "load session", err)
		return
	}
	ip := s.clientIP(r)
	res, err := s.passkeys.FinishLogin(ctx, passkey.Response{State: st.State, Credential: in.Credential, RequestInfo: s.requestInfo(r, b, clientOf(p))})
	if err != nil {
		s.audit(ctx, storage.Event{Type: "login.failure", IPAddress: ip, ClientID: clientOf(p)},
			map[string]any{"method": "passkey", "reason": passkey.Reason(err), "user_agent": truncate(r.UserAgent(), 512)})
		s.passkeyFailed(w, r, "passkey login rejected", err)
		return
	}
	user, err := s.store.GetUser(ctx, res.UserID)
	if err != nil {
		s.apiInternal(w, r, "load user", err)
		return
	}
	se, err := s.recordLogin(w, r, b, user, res.ACR, res.AMR, res.AuthTime, ip)
	if err != nil {
		s.apiInternal(w, r, "start session", err)
		return
	}
	s.audit(ctx, storage.Event{Type: "login.success", UserID: user.ID, SessionID: se.ID, IPAddress: ip, ClientID: clientOf(p)},
		map[string]any{"user_agent": se.UserAgent, "acr": se.ACR, "amr": se.AMR, "method": "passkey",
			"credential_id": passkey.EncodeID(res.CredentialID), "authenticator": res.Authenticator,
			"device": s.deviceCookie(w, r)})

	next := "/account"
	if ret, ok := s.localURL(in.Return); ok {
		next = ret
	}
	if p != nil {
		next = p.h.ResumeURL
		if l := s.effectiveLogin(se); !s.satisfies(&l, p.h.requirement()) {
			// Signed in, but below what the application asked for (a
			// passkey that did not verify the user): the sign-in page now
			// offers the step-up rather than bouncing off the application.
			next = "/login?req=" + url.QueryEscape(p.req.ID)
		}
	}
	writeAPI(w, http.StatusOK, apiResponse{Redirect: next})
}

// hasPasskeys reports whether the user has a passkey that can still sign in.
func (s *Server) hasPasskeys(ctx context.Context, userID string) (bool, error) {
	list, err := s.passkeys.List(ctx, userID)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(list, func(p passkey.Passkey) bool { return !p.CloneWarning }), nil
}

// passkeyAMR reports whether amr records a passkey ceremony.
func passkeyAMR(amr []string) bool {
	return slices.Contains(amr, passkey.AMRHardwareKey) || slices.Contains(amr, passkey.AMRSoftwareKey)
}
