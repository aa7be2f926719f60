package passkey

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/stepwise-id/stepwise/storage"
)

// BeginStepUp starts the ceremony the risk engine demands: the user is known
// (the browser session's), only their passkeys are allowed, user
// verification is required, and the ceremony is bound to the pending
// authorization request requestID so it cannot be spent on another one.
// Passkeys marked as possibly cloned are not offered; with none left it
// returns ErrNoPasskeys.
func (s *Service) BeginStepUp(ctx context.Context, userID, requestID string) (Ceremony, error) {
	if requestID == "" {
		return Ceremony{}, fmt.Errorf("passkey: begin step-up for %q: no authorization request ID", userID)
	}
	u, err := s.activeUser(ctx, userID)
	if err != nil {
		return Ceremony{}, fmt.Errorf("passkey: begin step-up: %w", err)
	}
	creds, err := s.store.ListUserCredentials(ctx, userID)
	if err != nil {
		return Ceremony{}, fmt.Errorf("passkey: list passkeys of %q: %w", userID, err)
	}
	creds = slices.DeleteFunc(creds, func(c storage.Credential) bool { return c.CloneWarning })
	if len(creds) == 0 {
		return Ceremony{}, fmt.Errorf("passkey: begin step-up for %q: %w", userID, ErrNoPasskeys)
	}
	assertion, session, err := s.wa.BeginLogin(newWAUser(u, creds),
		webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return Ceremony{}, fmt.Errorf("passkey: begin step-up for %q: %w", userID, err)
	}
	return s.newCeremony(kindStepUp, userID, requestID, assertion, session)
}

// FinishStepUp verifies a step-up for userID and the authorization request
// requestID, both of which must be those BeginStepUp was called with. The
// Result's level is at least LevelVerifiedPasskey. Failures are audited like
// FinishLogin's.
func (s *Service) FinishStepUp(ctx context.Context, userID, requestID string, r Response) (Result, error) {
	rj := rejection{kind: kindStepUp, userID: userID, requestID: requestID}
	res, err := s.finishStepUp(ctx, userID, requestID, r, &rj)
	if err != nil {
		return Result{}, s.reject(ctx, rj, r.RequestInfo, fmt.Errorf("passkey step-up: %w", err))
	}
	res.RequestID = requestID
	return res, nil
}

func (s *Service) finishStepUp(ctx context.Context, userID, requestID string, r Response, rj *rejection) (Result, error) {
	st, err := s.openState(ctx, r.State, kindStepUp)
	if err != nil {
		return Result{}, err
	}
	if st.RequestID != requestID {
		return Result{}, fmt.Errorf("%w: begun for request %q, finished for %q", ErrRequestMismatch, st.RequestID, requestID)
	}
	if st.UserID != userID {
		return Result{}, fmt.Errorf("%w: begun for another user", ErrBadState)
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(r.Credential)
	if err != nil {
		return Result{}, verificationError(ErrMalformedResponse, err)
	}
	rj.credID = parsed.RawID
	c, u, err := s.loadCredential(ctx, parsed.RawID, userID, rj)
	if err != nil {
		return Result{}, err
	}
	if !slices.ContainsFunc(st.Session.AllowedCredentialIDs, func(id []byte) bool { return bytes.Equal(id, c.ID) }) {
		return Result{}, fmt.Errorf("%w: passkey %s was not offered for this step-up", ErrCredentialNotAllowed, EncodeID(c.ID))
	}
	if h := parsed.Response.UserHandle; len(h) > 0 && string(h) != userID {
		return Result{}, fmt.Errorf("%w: user handle does not match the signed-in user", ErrCredentialNotAllowed)
	}
	ad := parsed.Response.AuthenticatorData
	if err := s.checkClientData(parsed.Response.CollectedClientData, ad.RPIDHash, protocol.AssertCeremony, st.Session.Challenge); err != nil {
		return Result{}, err
	}
	if !ad.Flags.HasUserVerified() {
		return Result{}, fmt.Errorf("%w: the authenticator did not verify the user", ErrUserVerificationRequired)
	}
	// Narrow the allow list to the passkey used: go-webauthn insists the
	// user still owns every offered passkey, which a deletion of another
	// one since Begin would break for no reason.
	session := st.Session
	session.AllowedCredentialIDs = [][]byte{c.ID}
	if _, err := s.wa.ValidateLogin(newWAUser(u, []storage.Credential{c}), session, parsed); err != nil {
		return Result{}, verificationError(ErrVerificationFailed, err)
	}
	return s.recordUse(ctx, c, parsed, r.RequestInfo)
}
