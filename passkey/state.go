package passkey

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/stepwise-id/stepwise/storage"
)

// Ceremony is what a Begin method hands back: the options for the browser
// and the state to keep until Finish.
type Ceremony struct {
	// Options is the WebAuthn JSON for the browser: {"publicKey":{…}} and,
	// for conditional login, "mediation":"conditional". Feed publicKey to
	// PublicKeyCredential.parseCreationOptionsFromJSON (registration) or
	// parseRequestOptionsFromJSON (login, step-up).
	Options json.RawMessage
	// State is opaque to the caller. Keep it server-side (or in an
	// authenticated, encrypted cookie) and pass it back to Finish once.
	State []byte
	// ExpiresAt is when Finish will refuse the state.
	ExpiresAt time.Time
}

// Response is what Finish needs: the browser's answer, the state kept since
// Begin, and request details that go into the audit log.
type Response struct {
	// State is Ceremony.State from the matching Begin call.
	State []byte
	// Credential is the PublicKeyCredential as JSON (toJSON() in browsers).
	Credential []byte
	RequestInfo
}

// RequestInfo describes the HTTP request behind a call, for audit events.
// Every field is optional.
type RequestInfo struct {
	IPAddress string
	SessionID string
	ClientID  string
}

type ceremonyKind string

const (
	kindRegistration ceremonyKind = "registration"
	kindLogin        ceremonyKind = "login"
	kindStepUp       ceremonyKind = "step-up"
)

const stateVersion = 1

// state is the serialized ceremony state. The SessionData travels verbatim
// because go-webauthn needs every field it set (STACK-NOTES §2.3).
type state struct {
	Version   int                  `json:"v"`
	Kind      ceremonyKind         `json:"kind"`
	UserID    string               `json:"user,omitempty"`
	RequestID string               `json:"request,omitempty"`
	Expires   time.Time            `json:"exp"`
	Session   webauthn.SessionData `json:"session"`
}

// newCeremony seals session and options into a Ceremony.
func (s *Service) newCeremony(kind ceremonyKind, userID, requestID string, options any, session *webauthn.SessionData) (Ceremony, error) {
	exp := s.now().Add(s.ttl)
	raw, err := json.Marshal(state{Version: stateVersion, Kind: kind, UserID: userID, RequestID: requestID, Expires: exp, Session: *session})
	if err != nil {
		return Ceremony{}, fmt.Errorf("passkey: encode %s state: %w", kind, err)
	}
	opts, err := json.Marshal(options)
	if err != nil {
		return Ceremony{}, fmt.Errorf("passkey: encode %s options: %w", kind, err)
	}
	return Ceremony{Options: opts, State: raw, ExpiresAt: exp}, nil
}

// openState decodes raw, checks that it is a live state of the given kind and
// consumes its challenge, so that no state is ever finished twice.
func (s *Service) openState(ctx context.Context, raw []byte, kind ceremonyKind) (state, error) {
	var st state
	if len(raw) == 0 {
		return st, fmt.Errorf("%w: no state", ErrBadState)
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, fmt.Errorf("%w: %w", ErrBadState, err)
	}
	switch {
	case st.Version != stateVersion:
		return st, fmt.Errorf("%w: version %d", ErrBadState, st.Version)
	case st.Kind != kind:
		return st, fmt.Errorf("%w: state of a %s ceremony, want %s", ErrBadState, st.Kind, kind)
	case len(st.Session.Challenge) < 22 || st.Expires.IsZero():
		// 22 base64url characters is the library's 16-byte minimum.
		return st, fmt.Errorf("%w: no challenge", ErrBadState)
	}
	now := s.now()
	if !now.Before(st.Expires) {
		return st, fmt.Errorf("%w: %s ceremony expired at %s", ErrChallengeExpired, kind, st.Expires.UTC().Format(time.RFC3339))
	}
	// The nonce lives exactly as long as the state would be accepted, so
	// garbage collection can drop it afterwards without reopening a replay.
	if err := s.store.UseJTI(ctx, nonceKey(st.Session.Challenge), st.Expires, now); err != nil {
		if errors.Is(err, storage.ErrAlreadyExists) {
			return st, fmt.Errorf("%w: %s ceremony was already finished", ErrChallengeUsed, kind)
		}
		return st, fmt.Errorf("passkey: consume %s challenge: %w", kind, err)
	}
	return st, nil
}

// nonceKey namespaces a challenge in the shared single-use table, which also
// holds the jti of client assertions.
func nonceKey(challenge string) string {
	return "passkey:" + challenge
}

// checkClientData repeats, ahead of go-webauthn, the checks whose failure
// callers and auditors need to tell apart: which challenge was answered, on
// which origin, for which RP ID. go-webauthn still runs the full verification
// afterwards; these only name the failure.
func (s *Service) checkClientData(cd protocol.CollectedClientData, rpIDHash []byte, want protocol.CeremonyType, challenge string) error {
	if cd.Type != want {
		return fmt.Errorf("%w: client data type %q, want %q", ErrMalformedResponse, cd.Type, want)
	}
	if subtle.ConstantTimeCompare([]byte(cd.Challenge), []byte(challenge)) != 1 {
		return fmt.Errorf("%w: the response signs challenge %.12q…, not this ceremony's", ErrChallengeMismatch, cd.Challenge)
	}
	if !protocol.IsOriginInHaystack(cd.Origin, []string{s.origin}) {
		return fmt.Errorf("%w: got %q, want %q", ErrOriginMismatch, cd.Origin, s.origin)
	}
	if cd.CrossOrigin {
		return fmt.Errorf("%w: cross-origin ceremony (top origin %q)", ErrOriginMismatch, cd.TopOrigin)
	}
	h := sha256.Sum256([]byte(s.rpID))
	if subtle.ConstantTimeCompare(rpIDHash, h[:]) != 1 {
		return fmt.Errorf("%w: the authenticator signed for another RP ID than %q", ErrRPIDMismatch, s.rpID)
	}
	return nil
}
