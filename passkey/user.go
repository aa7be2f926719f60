package passkey

import (
	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/stepwise-id/stepwise/storage"
)

// waUser adapts a storage.User and some of their passkeys to webauthn.User.
// The user handle is the user ID: it is random and carries no personal data,
// as the specification asks, and it lets a discoverable login find the
// account without a username.
type waUser struct {
	user  storage.User
	creds []webauthn.Credential
}

func newWAUser(u storage.User, creds []storage.Credential) *waUser {
	w := &waUser{user: u, creds: make([]webauthn.Credential, len(creds))}
	for i, c := range creds {
		w.creds[i] = toWebAuthn(c)
	}
	return w
}

func (u *waUser) WebAuthnID() []byte { return []byte(u.user.ID) }

func (u *waUser) WebAuthnName() string { return u.user.Username }

func (u *waUser) WebAuthnDisplayName() string {
	if u.user.DisplayName != "" {
		return u.user.DisplayName
	}
	return u.user.Username
}

func (u *waUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// toWebAuthn rebuilds the library's credential record from what we store.
func toWebAuthn(c storage.Credential) webauthn.Credential {
	flags := protocol.FlagUserPresent
	if c.UserVerified {
		flags |= protocol.FlagUserVerified
	}
	if c.BackupEligible {
		flags |= protocol.FlagBackupEligible
	}
	if c.BackupState {
		flags |= protocol.FlagBackupState
	}
	transports := make([]protocol.AuthenticatorTransport, len(c.Transports))
	for i, t := range c.Transports {
		transports[i] = protocol.AuthenticatorTransport(t)
	}
	return webauthn.Credential{
		ID:                c.ID,
		PublicKey:         c.PublicKey,
		AttestationFormat: c.AttestationFormat,
		Transport:         transports,
		Flags:             webauthn.NewCredentialFlags(flags),
		Authenticator: webauthn.Authenticator{
			AAGUID:       c.AAGUID,
			SignCount:    c.SignCount,
			CloneWarning: c.CloneWarning,
		},
	}
}
