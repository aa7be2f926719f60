package web

import (
	"bytes"
	"net/http"

	"github.com/a-h/templ"
)

// Views: what each page template needs, and nothing it must not show.

type messageView struct {
	CSS      string
	Title    string
	Message  string
	IsError  bool
	LinkURL  string // a same-origin path
	LinkText string
}

type loginView struct {
	CSS        string
	JS         string
	ReqID      string
	Return     string
	ClientName string
	Reason     string
	Username   string
	Error      string
	// PasskeyRequired means a password cannot meet the request.
	PasskeyRequired bool
	// Passkeys offers passkey sign-in (first, before the password form).
	Passkeys bool
	// StepUp asks the signed-in user (Username) to confirm it's them with a
	// user-verified passkey ceremony; NoPasskey says they have none.
	StepUp    bool
	NoPasskey bool
	// ContinueAs names the signed-in user when the session already meets
	// the request, so the user may continue without typing a password.
	ContinueAs string
}

func (v loginView) title() string {
	if v.StepUp {
		return "Confirm it's you"
	}
	return "Sign in"
}

// usernameAutocomplete adds the "webauthn" token that lets the browser list
// passkeys in the username field's autofill (conditional mediation).
func (v loginView) usernameAutocomplete() string {
	if v.Passkeys {
		return "username webauthn"
	}
	return "username"
}

type enrollView struct {
	CSS      string
	JS       string
	Token    string
	Username string
	Expires  string
	Error    string
}

type passkeyView struct {
	ID       string // base64url credential ID
	Nickname string
	Model    string
	Added    string
	LastUsed string
	Synced   bool
	Device   bool
	Cloned   bool
}

type passkeySectionView struct {
	Passkeys  []passkeyView
	HasUsable bool
	// Fresh means the user may add or remove passkeys now.
	Fresh bool
	// ReauthURL is the password re-authentication page for users who have
	// no passkey to confirm with; empty when a passkey ceremony is offered.
	ReauthURL string
}

type scopeView struct {
	Name        string
	Description string
}

type consentView struct {
	CSS        string
	ReqID      string
	ClientName string
	Username   string
	Scopes     []scopeView
	Error      string
}

type logoutView struct {
	CSS        string
	State      string
	ClientName string
	Username   string
}

type sessionView struct {
	Device    string
	IPAddress string
	Created   string
	LastSeen  string
	Current   bool
}

type accountView struct {
	CSS      string
	JS       string // set when a section needs the passkey script
	Username string
	Email    string
	Notice   string
	Error    string
	Enrolled bool // Notice reports a passkey just added
	// Passkeys is the passkey list, shown before the sessions.
	Passkeys templ.Component
	Sessions []sessionView
	Sections []templ.Component
}

// render writes a page. It renders into a buffer first so that a template
// failure becomes a clean 500 rather than half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, c templ.Component) {
	var buf bytes.Buffer
	if err := c.Render(r.Context(), &buf); err != nil {
		s.log.ErrorContext(r.Context(), "render page", "path", r.URL.Path, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

func (s *Server) renderMessage(w http.ResponseWriter, r *http.Request, status int, v messageView) {
	v.CSS = s.cssURL
	s.render(w, r, status, messagePage(v))
}

// internalError logs err and shows a generic failure page.
func (s *Server) internalError(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.log.ErrorContext(r.Context(), what, "path", r.URL.Path, "err", err)
	s.renderMessage(w, r, http.StatusInternalServerError, messageView{
		Title:   "Something went wrong",
		Message: "We could not complete this request. Please try again in a moment.",
		IsError: true,
	})
}
