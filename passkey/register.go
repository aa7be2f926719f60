package passkey

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/stepwise-id/stepwise/storage"
)

// maxNickname bounds a passkey nickname, in characters.
const maxNickname = 64

// BeginRegistration starts enrolling a new passkey for userID: a discoverable
// credential (resident key required, so it works for usernameless login),
// user verification preferred, the user's existing passkeys excluded so an
// authenticator is not enrolled twice, attestation as configured, and the
// credProps extension requested to learn whether the key is discoverable.
// Whether the caller may enrol for this user (a fresh ceremony, an enrolment
// link) is the caller's decision.
func (s *Service) BeginRegistration(ctx context.Context, userID string) (Ceremony, error) {
	u, err := s.activeUser(ctx, userID)
	if err != nil {
		return Ceremony{}, fmt.Errorf("passkey: begin registration: %w", err)
	}
	existing, err := s.store.ListUserCredentials(ctx, userID)
	if err != nil {
		return Ceremony{}, fmt.Errorf("passkey: list passkeys of %q: %w", userID, err)
	}
	wu := newWAUser(u, existing)
	creation, session, err := s.wa.BeginRegistration(wu,
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			ResidentKey:        protocol.ResidentKeyRequirementRequired,
			RequireResidentKey: protocol.ResidentKeyRequired(),
			UserVerification:   protocol.VerificationPreferred,
		}),
		webauthn.WithConveyancePreference(s.attestation),
		webauthn.WithExclusions(webauthn.Credentials(wu.creds).CredentialDescriptors()),
		webauthn.WithExtensions(webauthn.WithExtensionCredProps()),
	)
	if err != nil {
		return Ceremony{}, fmt.Errorf("passkey: begin registration for %q: %w", userID, err)
	}
	return s.newCeremony(kindRegistration, userID, "", creation, session)
}

// FinishRegistration verifies the browser's attestation and stores the new
// passkey for userID, who must be the user the ceremony was begun for. An
// empty nickname defaults to the authenticator's name. Every failure is
// audited as "passkey.rejected".
func (s *Service) FinishRegistration(ctx context.Context, userID string, r Response, nickname string) (Passkey, error) {
	rj := rejection{kind: kindRegistration, userID: userID}
	p, err := s.finishRegistration(ctx, userID, r, nickname, &rj)
	if err != nil {
		return Passkey{}, s.reject(ctx, rj, r.RequestInfo, fmt.Errorf("passkey registration: %w", err))
	}
	return p, nil
}

func (s *Service) finishRegistration(ctx context.Context, userID string, r Response, nickname string, rj *rejection) (Passkey, error) {
	if nickname != "" {
		var err error
		if nickname, err = cleanNickname(nickname); err != nil {
			return Passkey{}, err
		}
	}
	st, err := s.openState(ctx, r.State, kindRegistration)
	if err != nil {
		return Passkey{}, err
	}
	if st.UserID != userID {
		return Passkey{}, fmt.Errorf("%w: ceremony was begun for another user", ErrBadState)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(r.Credential)
	if err != nil {
		return Passkey{}, verificationError(ErrMalformedResponse, err)
	}
	rj.credID = parsed.RawID
	ao := parsed.Response.AttestationObject
	if err := s.checkClientData(parsed.Response.CollectedClientData, ao.AuthData.RPIDHash, protocol.CreateCeremony, st.Session.Challenge); err != nil {
		return Passkey{}, err
	}
	u, err := s.activeUser(ctx, userID)
	if err != nil {
		return Passkey{}, err
	}
	cred, err := s.wa.CreateCredential(newWAUser(u, nil), st.Session, parsed)
	if err != nil {
		return Passkey{}, verificationError(ErrVerificationFailed, err)
	}
	// credProps is advisory (not every browser reports it), but an explicit
	// rk=false means the authenticator ignored residentKey=required and the
	// key could never be used without a username.
	if rk := cred.Extensions.RK; rk != nil && !*rk {
		return Passkey{}, ErrNotDiscoverable
	}
	now := s.now().UTC()
	transports := make([]string, len(cred.Transport))
	for i, t := range cred.Transport {
		transports[i] = string(t)
	}
	if nickname == "" {
		nickname = AuthenticatorName(cred.Authenticator.AAGUID)
	}
	if nickname == "" {
		nickname = "Passkey"
	}
	c := storage.Credential{
		ID:                cred.ID,
		UserID:            userID,
		PublicKey:         cred.PublicKey,
		SignCount:         cred.Authenticator.SignCount,
		AAGUID:            cred.Authenticator.AAGUID,
		Transports:        transports,
		BackupEligible:    cred.Flags.BackupEligible,
		BackupState:       cred.Flags.BackupState,
		UserVerified:      cred.Flags.UserVerified,
		AttestationFormat: cred.AttestationFormat,
		Attestation:       cred.Attestation.Object,
		Nickname:          nickname,
		CreatedAt:         now,
	}
	if err := s.store.CreateCredential(ctx, c); err != nil {
		if errors.Is(err, storage.ErrAlreadyExists) {
			return Passkey{}, fmt.Errorf("%w: %w", ErrAlreadyRegistered, err)
		}
		return Passkey{}, fmt.Errorf("store passkey: %w", err)
	}
	s.audit(ctx, EventRegistered, userID, r.RequestInfo, map[string]any{
		"credential_id":      EncodeID(c.ID),
		"aaguid":             aaguidString(c.AAGUID),
		"authenticator":      AuthenticatorName(c.AAGUID),
		"attestation_format": c.AttestationFormat,
		"backup_eligible":    c.BackupEligible,
		"backup_state":       c.BackupState,
		"user_verified":      c.UserVerified,
	})
	s.log.InfoContext(ctx, "passkey registered", "user", userID, "credential", EncodeID(c.ID), "authenticator", AuthenticatorName(c.AAGUID))
	return toPasskey(c), nil
}

// activeUser loads a user who may use passkeys.
func (s *Service) activeUser(ctx context.Context, userID string) (storage.User, error) {
	if userID == "" {
		return storage.User{}, fmt.Errorf("%w: no user", ErrUserDisabled)
	}
	u, err := s.store.GetUser(ctx, userID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return storage.User{}, fmt.Errorf("%w: user %q does not exist", ErrUserDisabled, userID)
	case err != nil:
		return storage.User{}, fmt.Errorf("load user %q: %w", userID, err)
	case u.Disabled:
		return storage.User{}, fmt.Errorf("%w: user %q is disabled", ErrUserDisabled, userID)
	}
	return u, nil
}

// cleanNickname trims a nickname and refuses what would render badly.
func cleanNickname(n string) (string, error) {
	n = strings.TrimSpace(n)
	switch {
	case n == "":
		return "", fmt.Errorf("%w: empty", ErrInvalidNickname)
	case !utf8.ValidString(n):
		return "", fmt.Errorf("%w: not UTF-8", ErrInvalidNickname)
	case utf8.RuneCountInString(n) > maxNickname:
		return "", fmt.Errorf("%w: longer than %d characters", ErrInvalidNickname, maxNickname)
	case strings.ContainsFunc(n, unicode.IsControl):
		return "", fmt.Errorf("%w: control characters", ErrInvalidNickname)
	}
	return n, nil
}
