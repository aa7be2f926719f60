// Package softauth is a minimal software WebAuthn authenticator for
// server-side tests and benchmarks: it answers registration and login
// ceremonies without a browser. It signs with ES256 (P-256), attests with the
// "none" format, and lets a test set every flag, the signature counter, the
// origin and the RP ID so that tampered responses can be produced.
//
// With Attestation set it attests in the "packed" format instead, with a
// certificate chain the test provides, to exercise attestation and FIDO
// metadata policies.
//
// It is a test helper: keys live in memory and nothing is checked.
package softauth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
	"github.com/google/uuid"
)

// Flags are authenticator data flags (WebAuthn §6.1).
type Flags byte

// The flags a test sets. AT (attested credential data) is added by Create.
const (
	UP Flags = 0x01 // user present
	UV Flags = 0x04 // user verified
	BE Flags = 0x08 // backup eligible
	BS Flags = 0x10 // backup state

	flagAT Flags = 0x40
)

// Common flag sets.
const (
	// Synced is a UV passkey in a syncing provider (iCloud Keychain, …).
	Synced = UP | UV | BE | BS
	// DeviceBound is a UV passkey that cannot leave its authenticator.
	DeviceBound = UP | UV
)

// Authenticator holds one credential. Exported fields may be changed between
// calls to produce unusual or tampered responses.
type Authenticator struct {
	// RPID is hashed into the authenticator data.
	RPID string
	// Origin is written into the client data.
	Origin string
	// Counter is the signature counter; every Create or Get increments it
	// first, unless FixedCounter is set.
	Counter uint32
	// FixedCounter makes Get and Create send Counter as is (0 models
	// authenticators that do not count).
	FixedCounter bool
	// AAGUID identifies the authenticator model.
	AAGUID uuid.UUID
	// CredProps adds the credProps client extension output (rk=true) to
	// Create. Set it only when the RP requested credProps: go-webauthn
	// rejects unsolicited outputs.
	CredProps bool
	// Transports are reported by Create.
	Transports []string
	// UserHandle is sent by Get; Create sets it to the user ID.
	UserHandle []byte
	// Attestation, when set, makes Create attest in the "packed" format.
	Attestation *Attestation

	key    *ecdsa.PrivateKey
	credID []byte
}

// Attestation is a packed (basic) attestation identity: a P-256 key and its
// certificate chain, leaf first, as DER.
type Attestation struct {
	Key   *ecdsa.PrivateKey
	Chain [][]byte
}

// New returns an authenticator with a fresh P-256 key and a random 32-byte
// credential ID.
func New(rpID, origin string, aaguid uuid.UUID) (*Authenticator, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("softauth: generate key: %w", err)
	}
	id := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return nil, fmt.Errorf("softauth: credential id: %w", err)
	}
	return &Authenticator{
		RPID: rpID, Origin: origin, AAGUID: aaguid,
		CredProps: true, Transports: []string{"internal", "hybrid"},
		key: k, credID: id,
	}, nil
}

// CredentialID returns the credential ID.
func (a *Authenticator) CredentialID() []byte { return bytes.Clone(a.credID) }

// Create answers a registration: it returns the PublicKeyCredential JSON for
// challenge (base64url, as in the options) and user handle userID.
func (a *Authenticator) Create(challenge string, userID []byte, flags Flags) ([]byte, error) {
	a.UserHandle = bytes.Clone(userID)
	pub, err := a.coseKey()
	if err != nil {
		return nil, err
	}
	var att bytes.Buffer
	att.Write(a.AAGUID[:])
	_ = binary.Write(&att, binary.BigEndian, uint16(len(a.credID)))
	att.Write(a.credID)
	att.Write(pub)
	authData := a.authData(flags|flagAT, att.Bytes())
	cd := a.clientData("webauthn.create", challenge)
	format, stmt := "none", map[string]any{}
	if at := a.Attestation; at != nil {
		// Packed attestation signs authData || SHA-256(clientDataJSON)
		// with the attestation key (WebAuthn §8.2).
		cdHash := sha256.Sum256(cd)
		digest := sha256.Sum256(append(bytes.Clone(authData), cdHash[:]...))
		sig, err := ecdsa.SignASN1(rand.Reader, at.Key, digest[:])
		if err != nil {
			return nil, fmt.Errorf("softauth: attest: %w", err)
		}
		format, stmt = "packed", map[string]any{"alg": -7, "sig": sig, "x5c": at.Chain}
	}
	obj, err := cbor.Marshal(map[string]any{"fmt": format, "attStmt": stmt, "authData": authData})
	if err != nil {
		return nil, fmt.Errorf("softauth: encode attestation object: %w", err)
	}
	ext := map[string]any{}
	if a.CredProps {
		ext["credProps"] = map[string]any{"rk": true}
	}
	return json.Marshal(map[string]any{
		"id":                      b64(a.credID),
		"rawId":                   b64(a.credID),
		"type":                    "public-key",
		"authenticatorAttachment": "platform",
		"clientExtensionResults":  ext,
		"response": map[string]any{
			"clientDataJSON":    b64(cd),
			"attestationObject": b64(obj),
			"transports":        a.Transports,
		},
	})
}

// Get answers a login for challenge and returns the PublicKeyCredential JSON.
func (a *Authenticator) Get(challenge string, flags Flags) ([]byte, error) {
	ad := a.authData(flags, nil)
	cd := a.clientData("webauthn.get", challenge)
	cdHash := sha256.Sum256(cd)
	digest := sha256.Sum256(append(bytes.Clone(ad), cdHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, a.key, digest[:])
	if err != nil {
		return nil, fmt.Errorf("softauth: sign: %w", err)
	}
	resp := map[string]any{
		"clientDataJSON":    b64(cd),
		"authenticatorData": b64(ad),
		"signature":         b64(sig),
	}
	if len(a.UserHandle) > 0 {
		resp["userHandle"] = b64(a.UserHandle)
	}
	return json.Marshal(map[string]any{
		"id":                     b64(a.credID),
		"rawId":                  b64(a.credID),
		"type":                   "public-key",
		"clientExtensionResults": map[string]any{},
		"response":               resp,
	})
}

// Options is the part of the WebAuthn options JSON ({"publicKey":{…}}) the
// authenticator reads.
type Options struct {
	Challenge string
	UserID    []byte
}

// ParseOptions reads the challenge and, for registration, the user handle
// from the options JSON a server sends to the browser.
func ParseOptions(options []byte) (Options, error) {
	var o struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
			User      *struct {
				ID string `json:"id"`
			} `json:"user"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(options, &o); err != nil {
		return Options{}, fmt.Errorf("softauth: parse options: %w", err)
	}
	if o.PublicKey.Challenge == "" {
		return Options{}, errors.New("softauth: options carry no challenge")
	}
	out := Options{Challenge: o.PublicKey.Challenge}
	if o.PublicKey.User != nil {
		id, err := base64.RawURLEncoding.DecodeString(o.PublicKey.User.ID)
		if err != nil {
			return Options{}, fmt.Errorf("softauth: user id: %w", err)
		}
		out.UserID = id
	}
	return out, nil
}

// Register answers registration options JSON directly.
func (a *Authenticator) Register(options []byte, flags Flags) ([]byte, error) {
	o, err := ParseOptions(options)
	if err != nil {
		return nil, err
	}
	if o.UserID == nil {
		return nil, errors.New("softauth: registration options carry no user")
	}
	return a.Create(o.Challenge, o.UserID, flags)
}

// Assert answers login options JSON directly.
func (a *Authenticator) Assert(options []byte, flags Flags) ([]byte, error) {
	o, err := ParseOptions(options)
	if err != nil {
		return nil, err
	}
	return a.Get(o.Challenge, flags)
}

// coseKey encodes the public key as a COSE EC2 key for ES256 on P-256.
func (a *Authenticator) coseKey() ([]byte, error) {
	pk, err := a.key.PublicKey.Bytes() // uncompressed: 0x04 || X || Y
	if err != nil {
		return nil, fmt.Errorf("softauth: public key: %w", err)
	}
	k, err := cbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: pk[1:33], -3: pk[33:65]})
	if err != nil {
		return nil, fmt.Errorf("softauth: encode COSE key: %w", err)
	}
	return k, nil
}

func (a *Authenticator) authData(flags Flags, attested []byte) []byte {
	if !a.FixedCounter {
		a.Counter++
	}
	h := sha256.Sum256([]byte(a.RPID))
	b := make([]byte, 0, 37+len(attested))
	b = append(b, h[:]...)
	b = append(b, byte(flags))
	b = binary.BigEndian.AppendUint32(b, a.Counter)
	return append(b, attested...)
}

func (a *Authenticator) clientData(typ, challenge string) []byte {
	// Field order and escaping do not matter to verifiers: they hash the
	// bytes as sent and parse them as JSON.
	cd, _ := json.Marshal(struct {
		Type        string `json:"type"`
		Challenge   string `json:"challenge"`
		Origin      string `json:"origin"`
		CrossOrigin bool   `json:"crossOrigin"`
	}{typ, challenge, a.Origin, false})
	return cd
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
