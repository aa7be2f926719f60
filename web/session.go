package web

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/stepwise-id/stepwise/oauth"
	"github.com/stepwise-id/stepwise/storage"
)

// sessionIDKey is the only value the session cookie holds.
const sessionIDKey = "sid"

// touchInterval bounds how often LastSeenAt is written: at most once a
// minute per session, not on every request.
const touchInterval = time.Minute

// browser is the signed-in state of one request.
type browser struct {
	session storage.Session
	user    storage.User
}

// CurrentLogin implements oauth.Interaction. It returns nil when the browser
// has no session, or its session is unknown, revoked, expired or idle, or
// its user is gone or disabled. An elevated login whose ElevatedUntil has
// passed is reported at its base level (BaseACR, BaseAMR, BaseAuthTime).
func (s *Server) CurrentLogin(r *http.Request) (*oauth.Login, error) {
	b, err := s.currentBrowser(r)
	if err != nil || b == nil {
		return nil, err
	}
	l := s.effectiveLogin(b.session)
	return &l, nil
}

// effectiveLogin applies elevation decay to a stored session.
func (s *Server) effectiveLogin(se storage.Session) oauth.Login {
	l := oauth.Login{
		SessionID: se.ID,
		Subject:   se.UserID,
		ACR:       se.ACR,
		AMR:       slices.Clone(se.AMR),
		AuthTime:  se.AuthTime,
	}
	if !se.ElevatedUntil.IsZero() && !s.now().Before(se.ElevatedUntil) {
		l.ACR = se.BaseACR
		l.AMR = slices.Clone(se.BaseAMR)
		l.AuthTime = se.BaseAuthTime
	}
	return l
}

// currentBrowser looks the request's session up in storage. A missing,
// undecodable or stale cookie yields (nil, nil); only storage failures are
// errors.
func (s *Server) currentBrowser(r *http.Request) (*browser, error) {
	ctx := r.Context()
	id := s.cookieSessionID(r)
	if id == "" {
		return nil, nil
	}
	se, err := s.store.GetSession(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load session: %w", err)
	}
	now := s.now()
	if !now.Before(se.ExpiresAt) {
		return nil, nil
	}
	if s.idle > 0 && !se.LastSeenAt.IsZero() && now.Sub(se.LastSeenAt) > s.idle {
		return nil, nil
	}
	u, err := s.store.GetUser(ctx, se.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load session user: %w", err)
	}
	if u.Disabled {
		return nil, nil
	}
	if now.Sub(se.LastSeenAt) >= touchInterval {
		s.touch(ctx, se.ID, now)
		se.LastSeenAt = now
	}
	return &browser{session: se, user: u}, nil
}

// touch records that a session was used. Failure only costs accuracy of the
// idle timeout, so it is logged, not returned.
func (s *Server) touch(ctx context.Context, id string, now time.Time) {
	err := s.store.UpdateSession(ctx, id, func(se storage.Session) (storage.Session, error) {
		if now.After(se.LastSeenAt) {
			se.LastSeenAt = now
		}
		return se, nil
	})
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		s.log.WarnContext(ctx, "update session last-seen", "err", err)
	}
}

// cookieSessionID returns the session ID the request's cookie carries, or "".
func (s *Server) cookieSessionID(r *http.Request) string {
	cs, err := s.cookies.New(r, s.cookieName)
	if err != nil || cs == nil {
		return ""
	}
	id, _ := cs.Values[sessionIDKey].(string)
	return id
}

// setSessionCookie points the browser at session id.
func (s *Server) setSessionCookie(w http.ResponseWriter, r *http.Request, id string) error {
	cs, _ := s.cookies.New(r, s.cookieName) // a bad old cookie just starts afresh
	cs.Values = map[any]any{sessionIDKey: id}
	if err := cs.Save(r, w); err != nil {
		return fmt.Errorf("write session cookie: %w", err)
	}
	return nil
}

// clearSessionCookie tells the browser to drop its session cookie.
func (s *Server) clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name:     s.cookieName,
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		HttpOnly: true,
		Secure:   s.secure,
		SameSite: http.SameSiteLaxMode,
	})
}

// passwordLogin records a password authentication for user in the browser
// (see recordLogin). A password authentication replaces any elevated level.
func (s *Server) passwordLogin(w http.ResponseWriter, r *http.Request, current *browser, user storage.User, ip string) (storage.Session, error) {
	return s.recordLogin(w, r, current, user, s.ladder.Name(oauth.LevelPassword), []string{"pwd"}, s.now(), ip)
}

// recordLogin records a primary authentication (password or passkey sign-in)
// at acr/amr for user in the browser: it upgrades the current session in
// place when it belongs to the same user (so auth_time becomes authTime and
// tokens stay tied to the session), or starts a new one. The level becomes
// the session's base level; any elevation ends.
func (s *Server) recordLogin(w http.ResponseWriter, r *http.Request, current *browser, user storage.User, acr string, amr []string, authTime time.Time, ip string) (storage.Session, error) {
	ctx := r.Context()
	now := s.now()
	apply := func(se storage.Session) storage.Session {
		se.ACR, se.AMR, se.AuthTime = acr, slices.Clone(amr), authTime
		se.BaseACR, se.BaseAMR, se.BaseAuthTime = acr, slices.Clone(amr), authTime
		se.ElevatedUntil = time.Time{}
		se.UserAgent = truncate(r.UserAgent(), 512)
		se.IPAddress = ip
		se.LastSeenAt = now
		se.ExpiresAt = now.Add(s.lifetime)
		return se
	}

	var se storage.Session
	if current != nil && current.session.UserID == user.ID {
		err := s.store.UpdateSession(ctx, current.session.ID, func(old storage.Session) (storage.Session, error) {
			se = apply(old)
			return se, nil
		})
		if err == nil {
			return se, s.setSessionCookie(w, r, se.ID)
		}
		if !errors.Is(err, storage.ErrNotFound) {
			return storage.Session{}, fmt.Errorf("upgrade session: %w", err)
		}
		// Revoked meanwhile: fall through to a fresh session.
	}
	id, err := randomID()
	if err != nil {
		return storage.Session{}, err
	}
	se = apply(storage.Session{ID: id, UserID: user.ID, CreatedAt: now})
	if err := s.store.CreateSession(ctx, se); err != nil {
		return storage.Session{}, fmt.Errorf("create session: %w", err)
	}
	return se, s.setSessionCookie(w, r, se.ID)
}

// randomID returns 256 random bits, base64url-encoded.
func randomID() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
