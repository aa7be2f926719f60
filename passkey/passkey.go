// Package passkey runs the WebAuthn ceremonies of Stepwise on top of
// github.com/go-webauthn/webauthn: passkey registration, discoverable
// (usernameless) login, the user-verified step-up bound to a pending
// authorization request, and the management of a user's passkeys.
//
// The package is HTTP-free: Begin methods return the options to hand to the
// browser (the WebAuthn JSON serialisation, {"publicKey":{…}}) together with
// an opaque ceremony state; Finish methods take the browser's
// PublicKeyCredential JSON and that state back. What a login earns is
// expressed on the assurance ladder (see DESIGN.md) as an acr value and RFC
// 8176 amr values, computed from the flags of that very ceremony rather than
// from what the credential did in the past.
//
// # Ceremony state
//
// The state returned by a Begin method is a small JSON document carrying the
// go-webauthn SessionData verbatim (the library needs its exact contents,
// including the list of requested extensions), the ceremony kind, the user
// and, for a step-up, the authorization request it is bound to. The caller
// keeps it where the browser cannot change it: in its server-side session, or
// in an authenticated and encrypted cookie. It is not a secret, but it must
// not be modifiable by the client.
//
// Single use does not depend on the caller: every Finish call first consumes
// the state's challenge through the store's single-use nonce table
// (storage.AssertionJTIs, keyed "passkey:<challenge>" until the state
// expires), so a state is accepted at most once across all replicas, even if
// the caller forgets to drop it. The caller should still discard it after
// Finish.
package passkey

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/metadata"
	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"

	"github.com/stepwise-id/stepwise/storage"
)

// Store is the slice of storage.Storage the ceremonies need: the user's
// account, their passkeys, the audit log and the single-use nonce table that
// makes ceremony states one-shot across replicas. storage.Storage satisfies it.
type Store interface {
	GetUser(ctx context.Context, id string) (storage.User, error)
	storage.Credentials
	CreateEvent(ctx context.Context, e storage.Event) error
	UseJTI(ctx context.Context, jti string, expiresAt, now time.Time) error
}

// Level is a rung of the assurance ladder. The positions keep their meaning
// whatever the configured acr names are (DESIGN.md). It mirrors oauth.Level;
// passkey may not import oauth, so the two are joined by position.
type Level int

// The four rungs, weakest first.
const (
	LevelPassword           Level = iota // password only; never earned here
	LevelPasskey                         // passkey, user presence only
	LevelVerifiedPasskey                 // passkey with user verification (phr)
	LevelDeviceBoundPasskey              // device-bound passkey with user verification (phrh)
	levelCount
)

// defaultLadder is the acr value of each level as DESIGN.md names them.
func defaultLadder() [levelCount]string {
	return [levelCount]string{"urn:stepwise:acr:pwd", "urn:stepwise:acr:passkey", "phr", "phrh"}
}

// DefaultLadder returns the default acr names, weakest first.
func DefaultLadder() []string {
	l := defaultLadder()
	return l[:]
}

// Attestation conveyance preferences accepted in Config.Attestation.
const (
	AttestationNone   = "none"
	AttestationDirect = "direct"
)

// DefaultChallengeTTL is how long a ceremony may take when Config.ChallengeTTL
// is zero: long enough for a user to find their phone, short enough that a
// leaked state is soon useless.
const DefaultChallengeTTL = 3 * time.Minute

// Bounds on Config.ChallengeTTL. WebAuthn recommends 5 minutes for ceremonies
// that verify the user; more than 10 would keep challenges alive for no user
// benefit.
const (
	minChallengeTTL = 30 * time.Second
	maxChallengeTTL = 10 * time.Minute
)

// Config configures a Service.
type Config struct {
	// Issuer is the OpenID issuer URL. The RP ID is its host and the only
	// accepted origin is its scheme://host[:port]. WebAuthn needs a domain:
	// IP addresses are refused; use http://localhost:PORT for local runs.
	Issuer string
	// RPDisplayName is shown by some authenticators; default "Stepwise".
	RPDisplayName string
	// Attestation is "none" (default) or "direct".
	Attestation string
	// Ladder holds the configured acr names, weakest first (password,
	// passkey, verified passkey, device-bound passkey); nil means
	// DefaultLadder. Pass oauth.Ladder.Values().
	Ladder []string
	// ChallengeTTL bounds each ceremony; zero means DefaultChallengeTTL.
	ChallengeTTL time.Duration
	// DeviceBound tightens what counts as a device-bound credential for
	// LevelDeviceBoundPasskey.
	DeviceBound DeviceBoundRule
	// MDSFile is a FIDO MDS3 BLOB (the signed JWT published at
	// mds3.fidoalliance.org) read once by New; empty disables metadata
	// checks. It is never fetched: refresh the file and restart.
	MDSFile string
	// MDSRoot replaces the BLOB's trust anchor (base64 DER certificate),
	// for tests and private metadata services; empty means the FIDO
	// Alliance's production root.
	MDSRoot string
	// Now is the clock; nil means time.Now. Tests move it.
	Now func() time.Time
}

// DeviceBoundRule says when a user-verified assertion earns
// LevelDeviceBoundPasskey. The backup-eligible flag must always be clear (a
// credential that may be synced is never device-bound); the fields add
// requirements on top, for deployments that want "attested hardware key".
type DeviceBoundRule struct {
	// RequireAttestation demands that the credential was registered with an
	// attestation statement (format other than "none"). With Config.MDSFile
	// that statement chained to the model's FIDO-listed root; without it,
	// only its signature was checked, so anyone can mint one.
	RequireAttestation bool
	// AAGUIDs, when not empty, lists the authenticator models accepted.
	AAGUIDs []uuid.UUID
}

// Service runs the ceremonies. It is safe for concurrent use.
type Service struct {
	wa          *webauthn.WebAuthn
	store       Store
	log         *slog.Logger
	rpID        string
	origin      string
	ladder      [levelCount]string
	ttl         time.Duration
	attestation protocol.ConveyancePreference
	rule        DeviceBoundRule
	now         func() time.Time
}

// New validates cfg and returns a Service.
func New(cfg Config, store Store, logger *slog.Logger) (*Service, error) {
	if store == nil {
		return nil, errors.New("passkey: nil store")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	rpID, origin, err := rpFromIssuer(cfg.Issuer)
	if err != nil {
		return nil, err
	}
	s := &Service{
		store:  store,
		log:    logger.With("component", "passkey"),
		rpID:   rpID,
		origin: origin,
		ladder: defaultLadder(),
		ttl:    cfg.ChallengeTTL,
		rule:   cfg.DeviceBound,
		now:    cfg.Now,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.ttl == 0 {
		s.ttl = DefaultChallengeTTL
	}
	if s.ttl < minChallengeTTL || s.ttl > maxChallengeTTL {
		return nil, fmt.Errorf("passkey: challenge TTL %s is outside [%s, %s]", s.ttl, minChallengeTTL, maxChallengeTTL)
	}
	if cfg.Ladder != nil {
		if s.ladder, err = parseLadder(cfg.Ladder); err != nil {
			return nil, err
		}
	}
	switch cfg.Attestation {
	case "", AttestationNone:
		s.attestation = protocol.PreferNoAttestation
	case AttestationDirect:
		s.attestation = protocol.PreferDirectAttestation
	default:
		return nil, fmt.Errorf("passkey: attestation %q: want %q or %q", cfg.Attestation, AttestationNone, AttestationDirect)
	}
	var mds metadata.Provider
	if cfg.MDSFile != "" {
		var n int
		if mds, n, err = loadMDS(cfg.MDSFile, cfg.MDSRoot); err != nil {
			return nil, err
		}
		s.log.Info("FIDO metadata loaded", "file", cfg.MDSFile, "authenticators", n)
		if s.attestation == protocol.PreferNoAttestation {
			s.log.Warn("FIDO metadata is loaded but attestation is \"none\": no authenticator will be checked against it")
		}
	} else if cfg.DeviceBound.RequireAttestation {
		s.log.Warn("device-bound rule requires attestation, but without FIDO metadata (MDSFile) attestation certificates are not chained to a trust anchor")
	}
	name := cfg.RPDisplayName
	if name == "" {
		name = "Stepwise"
	}
	timeouts := webauthn.TimeoutConfig{Timeout: s.ttl, TimeoutUVD: s.ttl}
	s.wa, err = webauthn.New(&webauthn.Config{
		RPID:          rpID,
		RPDisplayName: name,
		RPOrigins:     []string{origin},
		// Expiry is enforced here, against the injectable clock, from the
		// state's own deadline; the library only tells the browser.
		Timeouts: webauthn.TimeoutsConfig{Login: timeouts, Registration: timeouts},
		MDS:      mds,
	})
	if err != nil {
		return nil, fmt.Errorf("passkey: configure webauthn for RP ID %q: %w", rpID, err)
	}
	return s, nil
}

// RPID returns the relying party ID (the issuer's host).
func (s *Service) RPID() string { return s.rpID }

// Origin returns the one origin ceremonies are accepted from.
func (s *Service) Origin() string { return s.origin }

// rpFromIssuer derives the RP ID and origin from the issuer URL.
func rpFromIssuer(issuer string) (rpID, origin string, err error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", "", fmt.Errorf("passkey: issuer %q is not an absolute http(s) URL", issuer)
	}
	host := strings.ToLower(u.Hostname())
	if net.ParseIP(host) != nil {
		return "", "", fmt.Errorf("passkey: issuer %q uses an IP address; WebAuthn needs a domain name as RP ID (use http://localhost:PORT for local runs)", issuer)
	}
	// Browsers only offer WebAuthn in a secure context: https, or plain http
	// on localhost. Failing here beats a login page whose passkey button
	// silently does nothing.
	if u.Scheme == "http" && host != "localhost" && !strings.HasSuffix(host, ".localhost") {
		return "", "", fmt.Errorf("passkey: issuer %q: browsers allow WebAuthn over http only on localhost; use https", issuer)
	}
	if err := protocol.ValidateRPID(host); err != nil {
		return "", "", fmt.Errorf("passkey: issuer host %q is not a valid RP ID: %w", host, err)
	}
	origin = u.Scheme + "://" + strings.ToLower(u.Host)
	return host, origin, nil
}

func parseLadder(names []string) ([levelCount]string, error) {
	var l [levelCount]string
	if len(names) != int(levelCount) {
		return l, fmt.Errorf("passkey: acr ladder: want %d values, got %d", levelCount, len(names))
	}
	for i, n := range names {
		if n == "" {
			return l, fmt.Errorf("passkey: acr ladder: value %d is empty", i+1)
		}
		if slices.Contains(names[:i], n) {
			return l, fmt.Errorf("passkey: acr ladder: %q appears twice", n)
		}
		l[i] = n
	}
	return l, nil
}
