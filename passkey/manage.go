package passkey

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/stepwise-id/stepwise/storage"
)

// Passkey is a registered credential as the account page shows it.
type Passkey struct {
	ID       []byte
	Nickname string
	// Authenticator is the model's name from its AAGUID, "" when unknown.
	Authenticator string
	AAGUID        string // canonical UUID form; "" when the authenticator sent none
	Transports    []string
	// Synced is the backup-state flag: the key is currently backed up or
	// synced (iCloud Keychain, Google Password Manager, password managers).
	Synced bool
	// DeviceBound is true when the key can never leave its authenticator
	// (backup-eligible flag clear), such as a security key.
	DeviceBound       bool
	AttestationFormat string
	// CloneWarning marks a passkey refused after a signature-counter
	// regression; an administrator must look at it.
	CloneWarning bool
	CreatedAt    time.Time
	LastUsedAt   time.Time // zero when never used to sign in
}

func toPasskey(c storage.Credential) Passkey {
	return Passkey{
		ID:                c.ID,
		Nickname:          c.Nickname,
		Authenticator:     AuthenticatorName(c.AAGUID),
		AAGUID:            aaguidString(c.AAGUID),
		Transports:        slices.Clone(c.Transports),
		Synced:            c.BackupState,
		DeviceBound:       !c.BackupEligible,
		AttestationFormat: c.AttestationFormat,
		CloneWarning:      c.CloneWarning,
		CreatedAt:         c.CreatedAt,
		LastUsedAt:        c.LastUsedAt,
	}
}

func aaguidString(b []byte) string {
	id, err := uuid.FromBytes(b)
	if err != nil || id == uuid.Nil {
		return ""
	}
	return id.String()
}

// List returns the user's passkeys, oldest first.
func (s *Service) List(ctx context.Context, userID string) ([]Passkey, error) {
	creds, err := s.store.ListUserCredentials(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("passkey: list passkeys of %q: %w", userID, err)
	}
	out := make([]Passkey, len(creds))
	for i, c := range creds {
		out[i] = toPasskey(c)
	}
	slices.SortStableFunc(out, func(a, b Passkey) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return bytes.Compare(a.ID, b.ID)
	})
	return out, nil
}

// Rename sets the nickname of one of userID's passkeys. A passkey of another
// user is reported as ErrUnknownCredential, so IDs cannot be probed.
func (s *Service) Rename(ctx context.Context, userID string, id []byte, nickname string, r RequestInfo) error {
	nickname, err := cleanNickname(nickname)
	if err != nil {
		return fmt.Errorf("passkey: rename: %w", err)
	}
	var old string
	err = s.store.UpdateCredential(ctx, id, func(c storage.Credential) (storage.Credential, error) {
		if c.UserID != userID {
			return c, ErrUnknownCredential
		}
		old, c.Nickname = c.Nickname, nickname
		return c, nil
	})
	if err != nil {
		return fmt.Errorf("passkey: rename %s: %w", EncodeID(id), notFound(err))
	}
	s.audit(ctx, EventRenamed, userID, r, map[string]any{"credential_id": EncodeID(id), "old": old, "new": nickname})
	return nil
}

// Delete removes one of userID's passkeys. Browsers keep offering a deleted
// discoverable credential; the login that tries it fails with
// ErrUnknownCredential, which the page can use to signal the browser
// (PublicKeyCredential.signalUnknownCredential).
func (s *Service) Delete(ctx context.Context, userID string, id []byte, r RequestInfo) error {
	c, err := s.store.GetCredential(ctx, id)
	if err == nil && c.UserID != userID {
		err = ErrUnknownCredential
	}
	if err == nil {
		err = s.store.DeleteCredential(ctx, id)
	}
	if err != nil {
		return fmt.Errorf("passkey: delete %s: %w", EncodeID(id), notFound(err))
	}
	s.audit(ctx, EventDeleted, userID, r, map[string]any{"credential_id": EncodeID(id), "nickname": c.Nickname, "authenticator": AuthenticatorName(c.AAGUID)})
	s.log.InfoContext(ctx, "passkey deleted", "user", userID, "credential", EncodeID(id))
	return nil
}

// notFound maps the store's not-found onto ErrUnknownCredential.
func notFound(err error) error {
	if errors.Is(err, storage.ErrNotFound) && !errors.Is(err, ErrUnknownCredential) {
		return fmt.Errorf("%w: %w", ErrUnknownCredential, err)
	}
	return err
}
