package web

import (
	"cmp"
	"net/http"
	"slices"
	"strings"

	"github.com/stepwise-id/stepwise/storage"
)

// account serves GET /account, the signed-in user's self-service page:
// profile basics, active sessions with "sign out everywhere", and the
// passkey list (when passkeys are on; it is built here rather than through
// Config.AccountSections because it depends on how recently this browser
// authenticated, and it comes first), and the sections registered in
// Config.AccountSections.
func (s *Server) account(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	b, err := s.currentBrowser(r)
	if err != nil {
		s.internalError(w, r, "load session", err)
		return
	}
	if b == nil {
		seeOther(w, r, "/login?return=%2Faccount")
		return
	}
	list, err := s.store.ListUserSessions(ctx, b.user.ID)
	if err != nil {
		s.internalError(w, r, "list sessions", err)
		return
	}
	now := s.now()
	slices.SortFunc(list, func(a, b storage.Session) int { return cmp.Compare(b.LastSeenAt.UnixNano(), a.LastSeenAt.UnixNano()) })
	v := accountView{CSS: s.cssURL, Username: b.user.Username, Email: b.user.Email}
	if code := r.URL.Query().Get("notice"); code != "" {
		if msg, failed := accountNotice(code); failed {
			v.Error = msg
		} else {
			v.Notice, v.Enrolled = msg, code == noticeAdded
		}
	}
	for _, se := range list {
		if !now.Before(se.ExpiresAt) {
			continue
		}
		v.Sessions = append(v.Sessions, sessionView{
			Device:    deviceName(se.UserAgent),
			IPAddress: se.IPAddress,
			Created:   se.CreatedAt.UTC().Format("2 Jan 2006, 15:04 MST"),
			LastSeen:  se.LastSeenAt.UTC().Format("2 Jan 2006, 15:04 MST"),
			Current:   se.ID == b.session.ID,
		})
	}
	if s.passkeys != nil {
		c, err := s.passkeySection(ctx, b)
		if err != nil {
			s.internalError(w, r, "render passkey section", err)
			return
		}
		v.Passkeys, v.JS = c, s.jsURL
	}
	for _, section := range s.sections {
		c, err := section(ctx, b.user)
		if err != nil {
			s.internalError(w, r, "render account section", err)
			return
		}
		if c != nil {
			v.Sections = append(v.Sections, c)
		}
	}
	s.render(w, r, http.StatusOK, accountPage(v))
}

// revokeAllSessions serves POST /account/sessions/revoke: it ends every
// session of the signed-in user, with their tokens, this one included.
func (s *Server) revokeAllSessions(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	b, err := s.currentBrowser(r)
	if err != nil {
		s.internalError(w, r, "load session", err)
		return
	}
	if b == nil {
		seeOther(w, r, "/login?return=%2Faccount")
		return
	}
	list, err := s.store.ListUserSessions(ctx, b.user.ID)
	if err != nil {
		s.internalError(w, r, "list sessions", err)
		return
	}
	for _, se := range list {
		if err := s.endSession(ctx, se.ID); err != nil {
			s.internalError(w, r, "end session", err)
			return
		}
	}
	s.audit(ctx, storage.Event{Type: "logout.everywhere", UserID: b.user.ID, SessionID: b.session.ID, IPAddress: s.clientIP(r)},
		map[string]any{"sessions": len(list)})
	s.clearSessionCookie(w)
	s.renderMessage(w, r, http.StatusOK, messageView{
		Title:    "Signed out everywhere",
		Message:  "Every session of your account has ended, including this one.",
		LinkURL:  "/login",
		LinkText: "Sign in again",
	})
}

// deviceName gives a short, human label for a user agent.
func deviceName(ua string) string {
	browser := "Browser"
	for _, c := range [][2]string{{"Edg/", "Edge"}, {"Firefox/", "Firefox"}, {"Chrome/", "Chrome"}, {"Safari/", "Safari"}} {
		if strings.Contains(ua, c[0]) {
			browser = c[1]
			break
		}
	}
	for _, c := range [][2]string{{"Android", "Android"}, {"iPhone", "iPhone"}, {"iPad", "iPad"}, {"Windows", "Windows"}, {"Mac OS X", "macOS"}, {"Linux", "Linux"}} {
		if strings.Contains(ua, c[0]) {
			return browser + " on " + c[1]
		}
	}
	if ua == "" {
		return "Unknown device"
	}
	return browser
}
