package passkey

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/stepwise-id/stepwise/storage"
)

// Result is what a successful login or step-up proves.
type Result struct {
	UserID       string
	CredentialID []byte
	// Level, ACR and AMR are what this ceremony earned, from its own
	// authenticator flags: ACR is the configured name of Level, AMR the RFC
	// 8176 values (hwk or swk, plus user and mfa when the user was verified).
	Level Level
	ACR   string
	AMR   []string
	// AuthTime is when the ceremony finished (the OIDC auth_time).
	AuthTime time.Time
	// UserVerified, BackupEligible and BackupState are the flags asserted.
	UserVerified   bool
	BackupEligible bool
	BackupState    bool
	// Authenticator is the model name from the AAGUID, "" when unknown.
	Authenticator string
	// RequestID is the authorization request a step-up was bound to.
	RequestID string
}

// BeginLogin starts a discoverable (usernameless) login: no allowCredentials,
// so the browser offers every passkey it holds for this site, and user
// verification preferred, so the result shows whether it happened.
func (s *Service) BeginLogin(ctx context.Context) (Ceremony, error) {
	return s.beginLogin(ctx, protocol.MediationDefault)
}

// BeginConditionalLogin is BeginLogin for conditional mediation: the browser
// lists passkeys in the autofill of a username field marked
// autocomplete="username webauthn", without a modal dialog. The page starts
// it on load, and it stays pending until the user picks a passkey.
func (s *Service) BeginConditionalLogin(ctx context.Context) (Ceremony, error) {
	return s.beginLogin(ctx, protocol.MediationConditional)
}

func (s *Service) beginLogin(_ context.Context, mediation protocol.CredentialMediationRequirement) (Ceremony, error) {
	assertion, session, err := s.wa.BeginDiscoverableMediatedLogin(mediation,
		webauthn.WithUserVerification(protocol.VerificationPreferred))
	if err != nil {
		return Ceremony{}, fmt.Errorf("passkey: begin login: %w", err)
	}
	return s.newCeremony(kindLogin, "", "", assertion, session)
}

// FinishLogin verifies a discoverable login and returns who signed in and
// what the ceremony earned. It updates the passkey's counter, flags and
// last use. Every failure is audited as "passkey.rejected"; a counter
// regression also marks the passkey and writes "passkey.clone_warning".
func (s *Service) FinishLogin(ctx context.Context, r Response) (Result, error) {
	rj := rejection{kind: kindLogin}
	res, err := s.finishLogin(ctx, r, &rj)
	if err != nil {
		return Result{}, s.reject(ctx, rj, r.RequestInfo, fmt.Errorf("passkey login: %w", err))
	}
	return res, nil
}

func (s *Service) finishLogin(ctx context.Context, r Response, rj *rejection) (Result, error) {
	st, err := s.openState(ctx, r.State, kindLogin)
	if err != nil {
		return Result{}, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(r.Credential)
	if err != nil {
		return Result{}, verificationError(ErrMalformedResponse, err)
	}
	rj.credID = parsed.RawID
	handle := parsed.Response.UserHandle
	if len(handle) == 0 {
		return Result{}, fmt.Errorf("%w: no user handle in a discoverable login", ErrMalformedResponse)
	}
	c, u, err := s.loadCredential(ctx, parsed.RawID, "", rj)
	if err != nil {
		return Result{}, err
	}
	if string(handle) != c.UserID {
		return Result{}, fmt.Errorf("%w: user handle does not match the passkey's owner", ErrCredentialNotAllowed)
	}
	ad := parsed.Response.AuthenticatorData
	if err := s.checkClientData(parsed.Response.CollectedClientData, ad.RPIDHash, protocol.AssertCeremony, st.Session.Challenge); err != nil {
		return Result{}, err
	}
	wu := newWAUser(u, []storage.Credential{c})
	lookup := func(_, _ []byte) (webauthn.User, error) { return wu, nil }
	if _, _, err := s.wa.ValidatePasskeyLogin(lookup, st.Session, parsed); err != nil {
		return Result{}, verificationError(ErrVerificationFailed, err)
	}
	return s.recordUse(ctx, c, parsed, r.RequestInfo)
}

// loadCredential fetches the passkey an assertion names and its owner, who
// must be owner when that is not empty, refusing passkeys marked as cloned
// and disabled accounts.
func (s *Service) loadCredential(ctx context.Context, id []byte, owner string, rj *rejection) (storage.Credential, storage.User, error) {
	c, err := s.store.GetCredential(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return c, storage.User{}, fmt.Errorf("%w: %s is not registered", ErrUnknownCredential, EncodeID(id))
	}
	if err != nil {
		return c, storage.User{}, fmt.Errorf("load passkey %s: %w", EncodeID(id), err)
	}
	if owner != "" && c.UserID != owner {
		return c, storage.User{}, fmt.Errorf("%w: passkey %s belongs to another user", ErrCredentialNotAllowed, EncodeID(id))
	}
	rj.userID = c.UserID
	if c.CloneWarning {
		return c, storage.User{}, fmt.Errorf("%w: passkey %s is marked as possibly cloned and refused", ErrCloneDetected, EncodeID(id))
	}
	u, err := s.activeUser(ctx, c.UserID)
	return c, u, err
}

// recordUse persists what a verified assertion tells about its passkey and
// builds the Result. A counter regression is judged inside the update, against
// the freshest stored value, so two replicas cannot both accept it.
func (s *Service) recordUse(ctx context.Context, c storage.Credential, parsed *protocol.ParsedCredentialAssertionData, info RequestInfo) (Result, error) {
	ad := parsed.Response.AuthenticatorData
	flags, count := ad.Flags, ad.Counter
	now := s.now().UTC()
	var (
		cloned, bsChanged bool
		stored            uint32
		updated           storage.Credential
	)
	err := s.store.UpdateCredential(ctx, c.ID, func(old storage.Credential) (storage.Credential, error) {
		cloned, bsChanged, stored = false, false, old.SignCount // the backend may retry
		if old.CloneWarning {
			return old, fmt.Errorf("%w: passkey was marked as possibly cloned meanwhile", ErrCloneDetected)
		}
		// §6.1.1 of WebAuthn treats any counter that does not grow as a clone
		// signal once either side is non-zero. We require both to be
		// non-zero: providers that stop counting (report 0) after syncing
		// would otherwise lock their users out for no security gain, since
		// a zero counter proves nothing either way.
		if count != 0 && old.SignCount != 0 && count <= old.SignCount {
			cloned = true
			old.CloneWarning = true
			return old, nil
		}
		old.SignCount = max(old.SignCount, count)
		bsChanged = old.BackupState != flags.HasBackupState()
		old.BackupState = flags.HasBackupState()
		old.UserVerified = old.UserVerified || flags.HasUserVerified()
		old.LastUsedAt = now
		updated = old
		return old, nil
	})
	if err != nil {
		return Result{}, fmt.Errorf("update passkey %s: %w", EncodeID(c.ID), notFound(err))
	}
	if cloned {
		s.log.WarnContext(ctx, "passkey signature counter went backwards; passkey refused from now on",
			"user", c.UserID, "credential", EncodeID(c.ID), "stored", stored, "received", count)
		s.audit(ctx, EventCloneWarning, c.UserID, info, map[string]any{
			"credential_id": EncodeID(c.ID), "stored_count": stored, "received_count": count,
		})
		return Result{}, fmt.Errorf("%w: signature counter %d is not above the stored %d; passkey %s is now refused",
			ErrCloneDetected, count, stored, EncodeID(c.ID))
	}
	if bsChanged {
		s.audit(ctx, EventBackupStateChanged, c.UserID, info, map[string]any{
			"credential_id": EncodeID(c.ID), "from": !flags.HasBackupState(), "to": flags.HasBackupState(),
		})
	}
	level, amr := s.assess(flags, updated)
	return Result{
		UserID:         c.UserID,
		CredentialID:   c.ID,
		Level:          level,
		ACR:            s.ACR(level),
		AMR:            amr,
		AuthTime:       now,
		UserVerified:   flags.HasUserVerified(),
		BackupEligible: flags.HasBackupEligible(),
		BackupState:    flags.HasBackupState(),
		Authenticator:  AuthenticatorName(c.AAGUID),
	}, nil
}
