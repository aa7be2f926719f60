package web

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/stepwise-id/stepwise/passkey"
	"github.com/stepwise-id/stepwise/storage"
)

// EnrollLinkLifetime is how long an enrolment link works.
const EnrollLinkLifetime = 15 * time.Minute

// Enrolment links carry a token signed with a key derived from the session
// cookie keys (themselves derived from the system secret), so the CLI can
// mint links that a running server accepts without sharing any state but
// the database: the token names the user, an expiry and a random ID, and
// the ID is spent in the store's single-use table (UseJTI) when a passkey
// is enrolled with it.
const (
	enrollTokenPrefix = "e1."
	enrollKeyInfo     = "stepwise/v1/enroll-link"
	enrollEventType   = "passkey.enroll_link_used"
	maxEnrollToken    = 512
)

// Errors of enrolment links.
var (
	errLinkInvalid = errors.New("enrolment link invalid")
	errLinkExpired = errors.New("enrolment link expired")
	errLinkUsed    = errors.New("enrolment link already used")
)

const (
	msgLinkInvalid = "This enrolment link is not valid. Check that you copied all of it, or ask your administrator for a new one."
	msgLinkExpired = "This enrolment link has expired. Links work for 15 minutes; ask your administrator for a new one."
	msgLinkUsed    = "This enrolment link has already been used. Each link sets up one passkey; ask your administrator for a new one if you need another."
	msgEnrolled    = "Your passkey is ready. From now on you can sign in with it, no password needed."
)

// enrollClaims is the signed content of an enrolment token.
type enrollClaims struct {
	UserID  string `json:"sub"`
	Expires int64  `json:"exp"`
	ID      string `json:"jti"`
}

// enrollKey derives the token key from a cookie key pair.
func enrollKey(k CookieKey) ([]byte, error) {
	key, err := hkdf.Key(sha256.New, k.HashKey, nil, enrollKeyInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("derive enrolment link key: %w", err)
	}
	return key, nil
}

// NewEnrollLink returns a one-time URL on issuer's origin with which userID
// enrols a passkey until expires. key must be the first of the server's
// Config.CookieKeys.
func NewEnrollLink(issuer string, key CookieKey, userID string, expires time.Time) (string, error) {
	iss, err := url.Parse(issuer)
	if err != nil || iss.Host == "" || (iss.Scheme != "http" && iss.Scheme != "https") {
		return "", fmt.Errorf("enrolment link: issuer %q is not an absolute http(s) URL", issuer)
	}
	if userID == "" {
		return "", errors.New("enrolment link: no user")
	}
	mac, err := enrollKey(key)
	if err != nil {
		return "", err
	}
	tok, err := signEnrollToken(mac, enrollClaims{UserID: userID, Expires: expires.Unix(), ID: rand.Text()})
	if err != nil {
		return "", err
	}
	return iss.Scheme + "://" + iss.Host + "/enroll?token=" + url.QueryEscape(tok), nil
}

func signEnrollToken(key []byte, c enrollClaims) (string, error) {
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encode enrolment link: %w", err)
	}
	body := enrollTokenPrefix + base64.RawURLEncoding.EncodeToString(payload)
	h := hmac.New(sha256.New, key)
	h.Write([]byte(body))
	return body + "." + base64.RawURLEncoding.EncodeToString(h.Sum(nil)), nil
}

// checkEnrollToken verifies a token's signature and expiry, and that its
// user may enrol. It does not spend it.
func (s *Server) checkEnrollToken(ctx context.Context, tok string) (enrollClaims, storage.User, error) {
	var c enrollClaims
	if len(tok) > maxEnrollToken || !strings.HasPrefix(tok, enrollTokenPrefix) {
		return c, storage.User{}, errLinkInvalid
	}
	i := strings.LastIndexByte(tok, '.')
	body, sig := tok[:i], tok[i+1:]
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return c, storage.User{}, errLinkInvalid
	}
	valid := false
	for _, key := range s.enrollKeys {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(body))
		if hmac.Equal(h.Sum(nil), got) {
			valid = true
			break
		}
	}
	if !valid {
		return c, storage.User{}, errLinkInvalid
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(body, enrollTokenPrefix))
	if err != nil || json.Unmarshal(payload, &c) != nil || c.UserID == "" || c.ID == "" {
		return c, storage.User{}, errLinkInvalid
	}
	if !s.now().Before(time.Unix(c.Expires, 0)) {
		return c, storage.User{}, errLinkExpired
	}
	u, err := s.store.GetUser(ctx, c.UserID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && u.Disabled) {
		return c, storage.User{}, errLinkInvalid
	}
	if err != nil {
		return c, storage.User{}, fmt.Errorf("load user: %w", err)
	}
	return c, u, nil
}

// enrollLinkSpent reports whether the link was already used. It reads the
// audit log, which only serves to tell the user early: the single-use
// table decides at completion.
func (s *Server) enrollLinkSpent(ctx context.Context, c enrollClaims) (bool, error) {
	ev, err := s.store.ListEvents(ctx, storage.EventFilter{Type: enrollEventType, UserID: c.UserID,
		Since: time.Unix(c.Expires, 0).Add(-2 * EnrollLinkLifetime)})
	if err != nil {
		return false, fmt.Errorf("list enrolment events: %w", err)
	}
	for _, e := range ev {
		var d struct {
			ID string `json:"link_id"`
		}
		if json.Unmarshal(e.Data, &d) == nil && d.ID == c.ID {
			return true, nil
		}
	}
	return false, nil
}

// linkError maps an enrolment link error to its message.
func linkError(err error) (string, bool) {
	switch {
	case errors.Is(err, errLinkExpired):
		return msgLinkExpired, true
	case errors.Is(err, errLinkUsed):
		return msgLinkUsed, true
	case errors.Is(err, errLinkInvalid):
		return msgLinkInvalid, true
	}
	return "", false
}

// enrollPage serves GET /enroll?token=…: the page on which the person an
// enrolment link was made for creates a passkey.
func (s *Server) enrollPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	tok := r.URL.Query().Get("token")
	v := enrollView{CSS: s.cssURL, JS: s.jsURL, Token: tok}
	c, u, err := s.checkEnrollToken(ctx, tok)
	if err == nil {
		var spent bool
		if spent, err = s.enrollLinkSpent(ctx, c); err == nil && spent {
			err = errLinkUsed
		}
	}
	if err != nil {
		msg, ok := linkError(err)
		if !ok {
			s.internalError(w, r, "check enrolment link", err)
			return
		}
		v.Token, v.Error = "", msg
		s.render(w, r, http.StatusBadRequest, enrollPage(v))
		return
	}
	v.Username = u.Username
	v.Expires = time.Unix(c.Expires, 0).UTC().Format("15:04 MST")
	s.render(w, r, http.StatusOK, enrollPage(v))
}

// registrationUser works out for whom a registration call is: the user of a
// valid enrolment link, or the signed-in user when they have confirmed it's
// them recently (see freshForPasskeyChange). It answers the client itself
// on failure.
func (s *Server) registrationUser(w http.ResponseWriter, r *http.Request, in apiRequest) (userID string, link *enrollClaims, b *browser, ok bool) {
	ctx := r.Context()
	if in.Token != "" {
		c, u, err := s.checkEnrollToken(ctx, in.Token)
		if err == nil {
			var spent bool
			if spent, err = s.enrollLinkSpent(ctx, c); err == nil && spent {
				err = errLinkUsed
			}
		}
		if err != nil {
			if msg, known := linkError(err); known {
				writeAPI(w, http.StatusBadRequest, apiResponse{Error: "link_invalid", Message: msg})
			} else {
				s.apiInternal(w, r, "check enrolment link", err)
			}
			return "", nil, nil, false
		}
		return u.ID, &c, nil, true
	}
	b, err := s.currentBrowser(r)
	if err != nil {
		s.apiInternal(w, r, "load session", err)
		return "", nil, nil, false
	}
	if b == nil {
		writeAPI(w, http.StatusUnauthorized, apiResponse{Error: "signed_out", Message: msgSignedOut, Redirect: "/login?return=%2Faccount"})
		return "", nil, nil, false
	}
	fresh, err := s.freshForPasskeyChange(ctx, b)
	if err != nil {
		s.apiInternal(w, r, "check re-authentication", err)
		return "", nil, nil, false
	}
	if !fresh {
		writeAPI(w, http.StatusForbidden, apiResponse{Error: "reauth", Message: msgConfirmFirst})
		return "", nil, nil, false
	}
	return b.user.ID, nil, b, true
}

// registerBegin serves POST /webauthn/register/begin.
func (s *Server) registerBegin(w http.ResponseWriter, r *http.Request) {
	in, ok := s.readAPI(w, r)
	if !ok {
		return
	}
	userID, link, _, ok := s.registrationUser(w, r, in)
	if !ok {
		return
	}
	c, err := s.passkeys.BeginRegistration(r.Context(), userID)
	if err != nil {
		s.passkeyFailed(w, r, "begin registration", err)
		return
	}
	st := ceremonyCookie{State: c.State, UserID: userID}
	if link != nil {
		st.Binding = link.ID
	}
	if err := s.saveCeremony(w, ceremonyRegister, st, c.ExpiresAt); err != nil {
		s.apiInternal(w, r, "begin registration", err)
		return
	}
	writeAPI(w, http.StatusOK, apiResponse{Options: c.Options})
}

// registerFinish serves POST /webauthn/register/finish: it stores the new
// passkey and, for an enrolment link, spends the link.
func (s *Server) registerFinish(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	in, ok := s.readAPI(w, r)
	if !ok {
		return
	}
	st, ok := s.takeCeremony(w, r, ceremonyRegister)
	if !ok {
		ceremonyGone(w)
		return
	}
	userID, link, b, ok := s.registrationUser(w, r, in)
	if !ok {
		return
	}
	linkID := ""
	if link != nil {
		linkID = link.ID
	}
	if st.UserID != userID || st.Binding != linkID {
		writeAPI(w, http.StatusBadRequest, apiResponse{Error: "bad_state", Message: msgCeremonyExpired})
		return
	}
	info := s.requestInfo(r, b, "")
	pk, err := s.passkeys.FinishRegistration(ctx, userID, passkey.Response{State: st.State, Credential: in.Credential, RequestInfo: info}, in.Nickname)
	if err != nil {
		s.passkeyFailed(w, r, "passkey registration rejected", err)
		return
	}
	if link != nil {
		// Spent only now, so that a cancelled or failed attempt leaves the
		// link usable; of two racing completions, the loser's passkey is
		// removed again.
		err := s.store.UseJTI(ctx, "enroll:"+link.ID, time.Unix(link.Expires, 0), s.now())
		if err != nil {
			if derr := s.passkeys.Delete(ctx, userID, pk.ID, info); derr != nil {
				s.log.ErrorContext(ctx, "remove passkey enrolled with a spent link", "user_id", userID, "err", derr)
			}
			if errors.Is(err, storage.ErrAlreadyExists) {
				writeAPI(w, http.StatusBadRequest, apiResponse{Error: "link_invalid", Message: msgLinkUsed})
				return
			}
			s.apiInternal(w, r, "spend enrolment link", err)
			return
		}
		s.audit(ctx, storage.Event{Type: enrollEventType, UserID: userID, IPAddress: info.IPAddress},
			map[string]any{"link_id": link.ID, "credential_id": passkey.EncodeID(pk.ID), "authenticator": pk.Authenticator})
		writeAPI(w, http.StatusOK, apiResponse{Message: msgEnrolled, Redirect: "/login"})
		return
	}
	writeAPI(w, http.StatusOK, apiResponse{Message: "Passkey added.", Redirect: "/account?notice=" + noticeAdded})
}
