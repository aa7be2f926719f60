package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/a-h/templ"

	"github.com/stepwise-id/stepwise/passkey"
)

// ReauthWindow is how recent the ceremony must be that lets a user add or
// remove a passkey from /account: long enough to manage a few keys after
// signing in, short enough that a session left open on a shared computer
// cannot be used to plant an attacker's passkey.
const ReauthWindow = 5 * time.Minute

// Notices on /account after a passkey action. The page shows a fixed text
// for each code, so nothing from the URL is reflected.
const (
	noticeAdded     = "passkey-added"
	noticeDeleted   = "passkey-deleted"
	noticeRenamed   = "passkey-renamed"
	noticeConfirmed = "confirmed"
	noticeReauth    = "reauth"
	noticeLast      = "last-passkey"
	noticeNotFound  = "passkey-missing"
	noticeBadName   = "bad-name"
)

const msgConfirmFirst = "For your security, confirm it's you before adding or removing a passkey."

// accountNotice returns the message for a notice code and whether it
// reports a failure.
func accountNotice(code string) (string, bool) {
	switch code {
	case noticeAdded:
		return "Passkey added. You can use it to sign in from now on.", false
	case noticeDeleted:
		return "Passkey removed. It can no longer be used to sign in.", false
	case noticeRenamed:
		return "Passkey renamed.", false
	case noticeConfirmed:
		return "Thanks, you're confirmed. You can now add or remove passkeys for a few minutes.", false
	case noticeReauth:
		return msgConfirmFirst, true
	case noticeLast:
		return "This is the only way you can sign in: you have no password, so your last passkey can't be removed. Add another passkey first.", true
	case noticeNotFound:
		return "That passkey was not found; it may have been removed already.", true
	case noticeBadName:
		return msgBadNickname, true
	}
	return "", false
}

// freshForPasskeyChange reports whether the browser may add or remove a
// passkey now: a passkey ceremony within ReauthWindow or, for a user who has
// no passkey yet (and so cannot do one), any sign-in within it.
func (s *Server) freshForPasskeyChange(ctx context.Context, b *browser) (bool, error) {
	l := s.effectiveLogin(b.session)
	if s.now().Sub(l.AuthTime) > ReauthWindow {
		return false, nil
	}
	if passkeyAMR(l.AMR) {
		return true, nil
	}
	has, err := s.hasPasskeys(ctx, b.user.ID)
	if err != nil {
		return false, err
	}
	return !has, nil
}

// passkeySection renders the passkey part of /account for b's user.
func (s *Server) passkeySection(ctx context.Context, b *browser) (templ.Component, error) {
	list, err := s.passkeys.List(ctx, b.user.ID)
	if err != nil {
		return nil, err
	}
	fresh, err := s.freshForPasskeyChange(ctx, b)
	if err != nil {
		return nil, err
	}
	v := passkeySectionView{Fresh: fresh}
	v.HasUsable = slices.ContainsFunc(list, func(p passkey.Passkey) bool { return !p.CloneWarning })
	if !fresh && !v.HasUsable {
		// No passkey to confirm with: a fresh password sign-in will do.
		v.ReauthURL = "/login?reauth=1&return=%2Faccount"
	}
	for _, p := range list {
		pv := passkeyView{
			ID:       passkey.EncodeID(p.ID),
			Nickname: p.Nickname,
			Model:    p.Authenticator,
			Added:    p.CreatedAt.UTC().Format("2 Jan 2006"),
			LastUsed: "never",
			Synced:   p.Synced,
			Device:   p.DeviceBound,
			Cloned:   p.CloneWarning,
		}
		if !p.LastUsedAt.IsZero() {
			pv.LastUsed = p.LastUsedAt.UTC().Format("2 Jan 2006, 15:04 MST")
		}
		v.Passkeys = append(v.Passkeys, pv)
	}
	return passkeySectionPart(v), nil
}

// accountForm loads the signed-in browser for a POST under /account/,
// sending signed-out browsers to sign in.
func (s *Server) accountForm(w http.ResponseWriter, r *http.Request) (*browser, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.renderMessage(w, r, http.StatusBadRequest, messageView{Title: "Bad request", Message: "The form could not be read.", IsError: true})
		return nil, false
	}
	b, err := s.currentBrowser(r)
	if err != nil {
		s.internalError(w, r, "load session", err)
		return nil, false
	}
	if b == nil {
		seeOther(w, r, "/login?return=%2Faccount")
		return nil, false
	}
	return b, true
}

func accountWith(notice string) string {
	return "/account?notice=" + url.QueryEscape(notice)
}

// renamePasskey serves POST /account/passkeys/rename. Renaming changes no
// security property, so it needs no fresh ceremony.
func (s *Server) renamePasskey(w http.ResponseWriter, r *http.Request) {
	b, ok := s.accountForm(w, r)
	if !ok {
		return
	}
	id, err := passkey.DecodeID(r.PostForm.Get("id"))
	if err == nil {
		err = s.passkeys.Rename(r.Context(), b.user.ID, id, r.PostForm.Get("nickname"), s.requestInfo(r, b, ""))
	}
	switch {
	case err == nil:
		seeOther(w, r, accountWith(noticeRenamed))
	case errors.Is(err, passkey.ErrInvalidNickname):
		seeOther(w, r, accountWith(noticeBadName))
	case errors.Is(err, passkey.ErrUnknownCredential):
		seeOther(w, r, accountWith(noticeNotFound))
	default:
		s.internalError(w, r, "rename passkey", err)
	}
}

// deletePasskey serves POST /account/passkeys/delete. It needs a fresh
// ceremony, and refuses to remove the last passkey of a user without a
// password, who would be locked out.
func (s *Server) deletePasskey(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	b, ok := s.accountForm(w, r)
	if !ok {
		return
	}
	fresh, err := s.freshForPasskeyChange(ctx, b)
	if err != nil {
		s.internalError(w, r, "check re-authentication", err)
		return
	}
	if !fresh {
		seeOther(w, r, accountWith(noticeReauth))
		return
	}
	id, err := passkey.DecodeID(r.PostForm.Get("id"))
	if err != nil {
		seeOther(w, r, accountWith(noticeNotFound))
		return
	}
	if b.user.PasswordHash == "" {
		list, err := s.passkeys.List(ctx, b.user.ID)
		if err != nil {
			s.internalError(w, r, "list passkeys", err)
			return
		}
		others := slices.ContainsFunc(list, func(p passkey.Passkey) bool { return !p.CloneWarning && string(p.ID) != string(id) })
		if !others {
			seeOther(w, r, accountWith(noticeLast))
			return
		}
	}
	err = s.passkeys.Delete(ctx, b.user.ID, id, s.requestInfo(r, b, ""))
	switch {
	case err == nil:
		seeOther(w, r, accountWith(noticeDeleted))
	case errors.Is(err, passkey.ErrUnknownCredential):
		seeOther(w, r, accountWith(noticeNotFound))
	default:
		s.internalError(w, r, "delete passkey", err)
	}
}
