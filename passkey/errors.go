package passkey

import (
	"errors"
	"fmt"
	"strings"

	"github.com/go-webauthn/webauthn/protocol"
)

// Sentinel errors. Every error a ceremony returns wraps one of them (test with
// errors.Is) so the web layer can pick a human message; the wrapped text adds
// detail for logs, never for users. Cancellation and "no passkey on this
// device" happen in the browser and never reach the server.
var (
	// ErrBadState means the ceremony state is missing, malformed, for
	// another kind of ceremony or for another user.
	ErrBadState = errors.New("invalid ceremony state")
	// ErrChallengeExpired means the ceremony took longer than the TTL.
	ErrChallengeExpired = errors.New("challenge expired")
	// ErrChallengeUsed means the ceremony state was already finished once.
	ErrChallengeUsed = errors.New("challenge already used")
	// ErrChallengeMismatch means the browser answered another challenge,
	// such as an assertion replayed from an earlier ceremony.
	ErrChallengeMismatch = errors.New("response is for another challenge")
	// ErrOriginMismatch means the ceremony ran on a foreign web origin.
	ErrOriginMismatch = errors.New("origin mismatch")
	// ErrRPIDMismatch means the authenticator signed for another RP ID.
	ErrRPIDMismatch = errors.New("relying party ID mismatch")
	// ErrMalformedResponse means the browser's response could not be parsed.
	ErrMalformedResponse = errors.New("malformed response")
	// ErrUnknownCredential means no such passkey is registered (any more):
	// deleted, or from another site. Browsers can be told to forget it.
	ErrUnknownCredential = errors.New("unknown credential")
	// ErrCredentialNotAllowed means the passkey exists but may not be used
	// for this ceremony: it belongs to another user, or was not offered.
	ErrCredentialNotAllowed = errors.New("credential not allowed")
	// ErrUserVerificationRequired means the ceremony demanded user
	// verification (biometric or PIN) and the authenticator did not assert it.
	ErrUserVerificationRequired = errors.New("user verification required")
	// ErrCloneDetected means the signature counter went backwards, or the
	// passkey was already marked as possibly cloned; it is refused.
	ErrCloneDetected = errors.New("possible cloned authenticator")
	// ErrRequestMismatch means a step-up ceremony is being finished for
	// another authorization request than the one it was started for.
	ErrRequestMismatch = errors.New("step-up bound to another authorization request")
	// ErrVerificationFailed means WebAuthn verification failed for another
	// reason (bad signature, inconsistent flags, unsolicited extensions…).
	ErrVerificationFailed = errors.New("verification failed")
	// ErrUserDisabled means the account is disabled or gone.
	ErrUserDisabled = errors.New("user disabled")
	// ErrNoPasskeys means the user has no usable passkey for a step-up.
	ErrNoPasskeys = errors.New("user has no usable passkey")
	// ErrAlreadyRegistered means the credential is registered already.
	ErrAlreadyRegistered = errors.New("credential already registered")
	// ErrNotDiscoverable means the authenticator created a credential that
	// is not discoverable, so it could not be used for usernameless login.
	ErrNotDiscoverable = errors.New("credential is not discoverable")
	// ErrInvalidNickname means a nickname is empty, too long or has control
	// characters.
	ErrInvalidNickname = errors.New("invalid nickname")
)

// reasons gives each sentinel the stable code written in audit events.
func reasons() []struct {
	err  error
	code string
} {
	return []struct {
		err  error
		code string
	}{
		{ErrBadState, "bad_state"},
		{ErrChallengeExpired, "challenge_expired"},
		{ErrChallengeUsed, "challenge_used"},
		{ErrChallengeMismatch, "challenge_mismatch"},
		{ErrOriginMismatch, "origin_mismatch"},
		{ErrRPIDMismatch, "rp_id_mismatch"},
		{ErrMalformedResponse, "malformed_response"},
		{ErrUnknownCredential, "unknown_credential"},
		{ErrCredentialNotAllowed, "credential_not_allowed"},
		{ErrUserVerificationRequired, "user_verification_required"},
		{ErrCloneDetected, "clone_detected"},
		{ErrRequestMismatch, "request_mismatch"},
		{ErrVerificationFailed, "verification_failed"},
		{ErrUserDisabled, "user_disabled"},
		{ErrNoPasskeys, "no_passkeys"},
		{ErrAlreadyRegistered, "already_registered"},
		{ErrNotDiscoverable, "not_discoverable"},
		{ErrInvalidNickname, "invalid_nickname"},
	}
}

// Reason returns a stable, machine-readable code for err ("challenge_expired",
// "clone_detected", …), "internal" for errors that are not the user's doing,
// and "" for nil. Audit events carry it in their "reason" field.
func Reason(err error) string {
	if err == nil {
		return ""
	}
	for _, r := range reasons() {
		if errors.Is(err, r.err) {
			return r.code
		}
	}
	return "internal"
}

// verificationError wraps an error from go-webauthn under sentinel. The
// library's Error method shows only its short Details (sometimes empty);
// the DevInfo that says what actually failed is kept for logs and audit.
func verificationError(sentinel error, err error) error {
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.DevInfo == "" {
		return fmt.Errorf("%w: %w", sentinel, err)
	}
	msg := pe.DevInfo
	if d := strings.TrimSpace(pe.Error()); d != "" {
		msg = d + " (" + msg + ")"
	}
	return fmt.Errorf("%w: %w", sentinel, &libError{msg: msg, err: err})
}

// libError gives a go-webauthn error a fuller message while keeping it
// reachable through errors.As.
type libError struct {
	msg string
	err error
}

func (e *libError) Error() string { return e.msg }
func (e *libError) Unwrap() error { return e.err }
