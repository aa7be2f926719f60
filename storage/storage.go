// Package storage defines what Stepwise keeps and the interface every
// persistence backend implements.
//
// The interface is deliberately narrow and free of protocol types: the oauth
// package adapts fosite's storage contracts onto [Requests], and web and
// passkey declare the smaller slices of [Storage] they consume. Backends live
// in sub-packages (storage/sqlite, storage/postgres) and prove themselves by
// passing storage/conformance.
//
// Updates take a closure that the backend runs inside its own transaction, so
// read-modify-write is atomic by construction (the Dex pattern).
package storage

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors that callers act on. Backends wrap them with context;
// callers test with errors.Is.
var (
	// ErrNotFound means no row matched.
	ErrNotFound = errors.New("storage: not found")
	// ErrAlreadyExists means a row with the same key exists.
	ErrAlreadyExists = errors.New("storage: already exists")
	// ErrInactive means the row exists but was already used, rotated or
	// revoked: an authorization code exchanged twice, a refresh token
	// rotated before.
	ErrInactive = errors.New("storage: inactive")
	// ErrConflict means a concurrent transaction won; the caller may retry.
	ErrConflict = errors.New("storage: conflict")
)

// Storage is the whole persistence interface. Every method is safe for
// concurrent use. A context returned by BeginTx makes every call made with it
// part of that transaction; while one is open, every write must use its
// context, and an Update closure must never call the store itself (SQLite has
// a single writer, so either would deadlock). Rollback after Commit is a
// no-op, so callers may defer it.
//
// Round trips: times come back in UTC at microsecond precision, nil and empty
// slices both come back as nil, and keys (IDs, including Event.ID) are chosen
// by the caller.
type Storage interface {
	Clients
	Users
	Sessions
	Consents
	AuthRequests
	Requests
	Keys
	RegistrationTokens
	AssertionJTIs
	Credentials
	Events

	// BeginTx starts a transaction and returns a context that carries it.
	// Calls made with that context run inside the transaction until Commit
	// or Rollback. Nested BeginTx calls on a carrying context are an error.
	BeginTx(ctx context.Context) (context.Context, error)
	Commit(ctx context.Context) error
	Rollback(ctx context.Context) error

	// GarbageCollect deletes rows that expired before now.
	GarbageCollect(ctx context.Context, now time.Time) (GCResult, error)

	// Close releases the backend's connections.
	Close() error
}

// GCResult counts what GarbageCollect deleted.
type GCResult struct {
	Requests           int64
	Sessions           int64
	AuthRequests       int64
	RegistrationTokens int64
	AssertionJTIs      int64
	Keys               int64
}

// Total is the number of rows deleted.
func (r GCResult) Total() int64 {
	return r.Requests + r.Sessions + r.AuthRequests + r.RegistrationTokens + r.AssertionJTIs + r.Keys
}

// Client is a registered OAuth client. Field names follow RFC 7591 metadata.
type Client struct {
	ID string
	// SecretHash is the keyed hash of the server-generated secret; nil for
	// public clients and private_key_jwt clients.
	SecretHash []byte
	// SecretExpiresAt is zero when the secret never expires.
	SecretExpiresAt         time.Time
	Name                    string
	RedirectURIs            []string
	PostLogoutRedirectURIs  []string
	GrantTypes              []string
	ResponseTypes           []string
	Scopes                  []string
	Audience                []string
	TokenEndpointAuthMethod string // client_secret_basic, client_secret_post, private_key_jwt, none
	// JWKS is the client's public JSON Web Key Set (for private_key_jwt),
	// as raw JSON; JWKSURI is unused when JWKS is set.
	JWKS    []byte
	JWKSURI string
	// RequirePKCE makes PKCE mandatory for a confidential client (it is
	// always mandatory for public ones).
	RequirePKCE bool
	// RequirePAR makes pushed authorization requests mandatory (RFC 9126).
	RequirePAR bool
	// AccessTokenFormat is "opaque" (the default) or "jwt" (RFC 9068).
	AccessTokenFormat string
	// RegistrationAccessTokenHash authenticates RFC 7592 management calls;
	// nil for clients created from the CLI.
	RegistrationAccessTokenHash []byte
	// Metadata holds the remaining RFC 7591 fields (client_uri, logo_uri,
	// contacts, …) as a JSON object, returned as registered.
	Metadata  []byte
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Clients stores OAuth clients.
type Clients interface {
	CreateClient(ctx context.Context, c Client) error
	GetClient(ctx context.Context, id string) (Client, error)
	ListClients(ctx context.Context) ([]Client, error)
	UpdateClient(ctx context.Context, id string, update func(Client) (Client, error)) error
	DeleteClient(ctx context.Context, id string) error
}

// User is a person who can sign in.
type User struct {
	ID          string
	Username    string // unique, compared case-sensitively after normalisation by the caller
	Email       string
	DisplayName string
	// PasswordHash is a PHC-format argon2id string; empty when the user has
	// no password.
	PasswordHash string
	Disabled     bool
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Users stores user accounts.
type Users interface {
	CreateUser(ctx context.Context, u User) error
	GetUser(ctx context.Context, id string) (User, error)
	GetUserByUsername(ctx context.Context, username string) (User, error)
	ListUsers(ctx context.Context) ([]User, error)
	UpdateUser(ctx context.Context, id string, update func(User) (User, error)) error
	DeleteUser(ctx context.Context, id string) error
}

// Session is a server-side browser login session. The browser holds only a
// signed reference to it, so a session can be revoked and any replica can
// serve it.
type Session struct {
	ID     string
	UserID string
	// ACR, AMR and AuthTime describe the strongest authentication currently
	// in force on the session.
	ACR      string
	AMR      []string
	AuthTime time.Time
	// ElevatedUntil is when a stepped-up ACR lapses back to BaseACR/BaseAMR;
	// zero when the session is not elevated.
	ElevatedUntil time.Time
	BaseACR       string
	BaseAMR       []string
	BaseAuthTime  time.Time
	UserAgent     string
	IPAddress     string
	CreatedAt     time.Time
	LastSeenAt    time.Time
	ExpiresAt     time.Time
}

// Sessions stores browser login sessions.
type Sessions interface {
	CreateSession(ctx context.Context, s Session) error
	GetSession(ctx context.Context, id string) (Session, error)
	ListUserSessions(ctx context.Context, userID string) ([]Session, error)
	UpdateSession(ctx context.Context, id string, update func(Session) (Session, error)) error
	DeleteSession(ctx context.Context, id string) error
}

// Consent records that a user granted a client a set of scopes.
type Consent struct {
	UserID    string
	ClientID  string
	Scopes    []string
	GrantedAt time.Time
}

// Consents stores remembered consent decisions, one per user and client.
type Consents interface {
	// PutConsent creates or replaces the consent for (UserID, ClientID).
	PutConsent(ctx context.Context, c Consent) error
	GetConsent(ctx context.Context, userID, clientID string) (Consent, error)
	ListUserConsents(ctx context.Context, userID string) ([]Consent, error)
	DeleteConsent(ctx context.Context, userID, clientID string) error
}

// AuthRequest is an authorization request paused while the browser signs in,
// steps up or gives consent. It is resumed by ID.
type AuthRequest struct {
	ID       string
	ClientID string
	// Form is the request's parameters, URL-encoded, with any pushed (PAR)
	// parameters already merged in.
	Form string
	// SessionID binds the request to the browser session that resumed it,
	// once there is one.
	SessionID string
	// Outcome is set by the browser-facing layer: "" while pending,
	// "denied" when the user refused, "unmet" when the user could not reach
	// the required assurance.
	Outcome string
	// Data carries extra state (requirement, risk decision) as JSON.
	Data      []byte
	CreatedAt time.Time
	ExpiresAt time.Time
}

// AuthRequests stores paused authorization requests.
type AuthRequests interface {
	CreateAuthRequest(ctx context.Context, a AuthRequest) error
	GetAuthRequest(ctx context.Context, id string) (AuthRequest, error)
	UpdateAuthRequest(ctx context.Context, id string, update func(AuthRequest) (AuthRequest, error)) error
	DeleteAuthRequest(ctx context.Context, id string) error
}

// Kind says what a Request row holds.
type Kind string

// The kinds of protocol request rows.
const (
	KindAuthorizeCode Kind = "authorize_code"
	KindAccessToken   Kind = "access_token"
	KindRefreshToken  Kind = "refresh_token"
	KindPKCE          Kind = "pkce"
	KindOIDC          Kind = "oidc"
	KindPAR           Kind = "par"
)

// Request is one stored protocol artefact: an authorization code, an access
// or refresh token, the PKCE or OIDC state bound to a code, or a pushed
// authorization request. Tokens are stored by signature only, never in a
// form that can be replayed.
type Request struct {
	Kind Kind
	// Signature identifies the row within its kind (the token's HMAC
	// signature, or the PAR request_uri).
	Signature string
	// RequestID ties together every row issued from one authorization: a
	// refresh-token family shares it, so revoking by RequestID revokes the
	// family.
	RequestID string
	ClientID  string
	Subject   string
	// SessionID is the browser session that authorised the grant, empty for
	// machine clients.
	SessionID string
	// Active is false once the row was used (codes), rotated (refresh
	// tokens) or revoked.
	Active bool
	// DeactivatedAt is when Active became false.
	DeactivatedAt time.Time
	// AccessSignature links a refresh token to the access token issued with it.
	AccessSignature string
	RequestedAt     time.Time
	ExpiresAt       time.Time
	// Data is the serialized protocol request, opaque to storage.
	Data []byte
}

// Requests stores protocol request rows.
type Requests interface {
	// CreateRequest stores r; ErrAlreadyExists if (Kind, Signature) exists.
	CreateRequest(ctx context.Context, r Request) error
	// GetRequest returns the row whatever its Active state.
	GetRequest(ctx context.Context, kind Kind, signature string) (Request, error)
	// DeactivateRequest atomically marks an active row inactive at now. It
	// returns ErrInactive if the row was already inactive, unless it was
	// deactivated after graceSince (a non-zero graceSince lets two tabs
	// rotate one refresh token at once). Of concurrent calls without grace,
	// exactly one succeeds.
	DeactivateRequest(ctx context.Context, kind Kind, signature string, now, graceSince time.Time) error
	DeleteRequest(ctx context.Context, kind Kind, signature string) error
	// DeleteRequestsByID deletes every row of kind issued for requestID.
	DeleteRequestsByID(ctx context.Context, kind Kind, requestID string) (int64, error)
	// DeleteRequestsBySession deletes every token row authorised by a
	// browser session (used on logout and session revocation).
	DeleteRequestsBySession(ctx context.Context, sessionID string) (int64, error)
	// CountRequests counts active rows of a kind, for metrics and tests.
	CountRequests(ctx context.Context, kind Kind) (int64, error)
}

// SigningKey is a private key that signs ID tokens and JWT access tokens.
// Retired keys stop signing but stay published in JWKS until PublishUntil,
// so tokens they signed keep verifying.
type SigningKey struct {
	ID        string // the JWK kid
	Algorithm string // ES256 or RS256
	// Private is the PKCS#8 DER encoding of the private key.
	Private      []byte
	CreatedAt    time.Time
	RetiredAt    time.Time // zero while the key is the active signer
	PublishUntil time.Time // zero while active; afterwards, when it leaves JWKS
}

// Keys stores signing keys.
type Keys interface {
	CreateKey(ctx context.Context, k SigningKey) error
	// ListKeys returns every key, newest first.
	ListKeys(ctx context.Context) ([]SigningKey, error)
	UpdateKey(ctx context.Context, id string, update func(SigningKey) (SigningKey, error)) error
}

// RegistrationToken is an initial access token for RFC 7591 dynamic client
// registration. Only its hash is stored.
type RegistrationToken struct {
	Hash      string // hex SHA-256 of the token
	CreatedAt time.Time
	ExpiresAt time.Time
}

// RegistrationTokens stores initial access tokens.
type RegistrationTokens interface {
	CreateRegistrationToken(ctx context.Context, t RegistrationToken) error
	GetRegistrationToken(ctx context.Context, hash string) (RegistrationToken, error)
	DeleteRegistrationToken(ctx context.Context, hash string) error
}

// AssertionJTIs remembers the jti of client assertions (private_key_jwt) until
// they expire, so none is accepted twice.
type AssertionJTIs interface {
	// UseJTI records jti until expiresAt. It returns ErrAlreadyExists when
	// the jti is already recorded and not yet expired at now. Of concurrent
	// calls, exactly one succeeds.
	UseJTI(ctx context.Context, jti string, expiresAt, now time.Time) error
}

// Credential is a WebAuthn credential (passkey) registered to a user.
type Credential struct {
	// ID is the credential ID as the authenticator reports it.
	ID        []byte
	UserID    string
	PublicKey []byte // COSE-encoded
	SignCount uint32
	AAGUID    []byte
	// Transports are the hints the browser reported (internal, hybrid, usb, …).
	Transports []string
	// BackupEligible and BackupState are the BE and BS flags; a credential
	// with BE clear is device-bound.
	BackupEligible    bool
	BackupState       bool
	UserVerified      bool // whether UV was ever asserted (go-webauthn's latch)
	AttestationFormat string
	// Attestation is the raw attestation object, kept for later audits.
	Attestation []byte
	Nickname    string
	// CloneWarning is set when a sign-count regression was seen; such a
	// credential is refused until an administrator clears it.
	CloneWarning bool
	CreatedAt    time.Time
	LastUsedAt   time.Time
}

// Credentials stores passkeys.
type Credentials interface {
	// CreateCredential stores c; ErrAlreadyExists if the ID is taken.
	CreateCredential(ctx context.Context, c Credential) error
	GetCredential(ctx context.Context, id []byte) (Credential, error)
	ListUserCredentials(ctx context.Context, userID string) ([]Credential, error)
	UpdateCredential(ctx context.Context, id []byte, update func(Credential) (Credential, error)) error
	DeleteCredential(ctx context.Context, id []byte) error
}

// Event is an audit record: a login, a risk decision, a clone warning. Type
// is a dotted name such as "login.success" or "risk.decision"; Data holds the
// details as a JSON object.
type Event struct {
	ID        string
	Type      string
	UserID    string
	ClientID  string
	SessionID string
	IPAddress string
	Time      time.Time
	Data      []byte
}

// EventFilter selects events; zero fields match everything.
type EventFilter struct {
	Type   string
	UserID string
	Since  time.Time
	// Limit caps the result; 0 means a backend default of 100.
	Limit int
}

// Events stores the audit log. Events are returned newest first.
type Events interface {
	CreateEvent(ctx context.Context, e Event) error
	GetEvent(ctx context.Context, id string) (Event, error)
	ListEvents(ctx context.Context, f EventFilter) ([]Event, error)
}
