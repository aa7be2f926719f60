// Package dpop verifies DPoP proofs (RFC 9449, OAuth 2.0 Demonstrating
// Proof of Possession): the signed JWTs a client sends in the DPoP header to
// show it holds the private key an access token or refresh token is bound
// to.
//
// The authorization server (package oauth) and resource servers (package
// oauth/resource) share it; it imports nothing else from Stepwise. A
// Verifier checks every rule of RFC 9449 §4.3: one well-formed JWT, typ
// dpop+jwt, an asymmetric algorithm, a public jwk header whose key verifies
// the signature, htm and htu matching the request, iat within a window, a
// jti never seen before (ReplayCache), the server's nonce when it demands
// one (Nonces) and, when an access token is presented, ath.
package dpop

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Header names and values of RFC 9449.
const (
	// HeaderName is the request header carrying the proof (§4.1).
	HeaderName = "DPoP"
	// NonceHeaderName carries a server-provided nonce (§8, §9).
	NonceHeaderName = "DPoP-Nonce"
	// TokenType is the token_type of a bound access token (§5) and the
	// authorization scheme that presents it (§7.1).
	TokenType = "DPoP"
	// JWTType is the typ header of a proof (§4.2).
	JWTType = "dpop+jwt"
	// ErrorInvalidProof and ErrorUseNonce are the error codes of §5 and §8.
	ErrorInvalidProof = "invalid_dpop_proof"
	ErrorUseNonce     = "use_dpop_nonce"
)

// Defaults and limits.
const (
	// DefaultWindow is how far iat may lie from now, either way.
	DefaultWindow = 60 * time.Second
	// MaxProofLen bounds a proof; anything larger is refused unparsed.
	MaxProofLen = 8 << 10
	// maxJTILen bounds the jti, which becomes a replay-cache key.
	maxJTILen = 256
	// minRSABits is the smallest RSA modulus accepted.
	minRSABits = 2048
)

// Sentinel errors. Every rejected proof wraps ErrInvalidProof, except a
// missing or stale nonce, which wraps ErrUseNonce (answered with a fresh
// nonce). Any other error (a replay cache that could not be reached) means
// the proof could not be checked.
var (
	ErrInvalidProof = errors.New("invalid DPoP proof")
	ErrMissing      = fmt.Errorf("%w: no DPoP header", ErrInvalidProof)
	ErrReplay       = fmt.Errorf("%w: jti was already used", ErrInvalidProof)
	ErrUseNonce     = errors.New("DPoP proof must carry the server's current nonce")
)

// SupportedAlgs lists the JWS algorithms accepted by default: asymmetric
// only, never "none" or HMAC (RFC 9449 §4.3 rule 5).
func SupportedAlgs() []string {
	return []string{"ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512", "EdDSA"}
}

// ReplayCache remembers the proofs already accepted. Use records key until
// expiresAt and returns an error wrapping ErrReplay when the key is already
// recorded; of concurrent calls with one key exactly one may succeed.
type ReplayCache interface {
	Use(ctx context.Context, key string, expiresAt time.Time) error
}

// Config configures a Verifier.
type Config struct {
	// Algs are the accepted algorithms; nil means SupportedAlgs. Only
	// asymmetric ones are allowed.
	Algs []string
	// Window is how far a proof's iat may be from now, in the past or the
	// future (clock skew); it also bounds how long a jti is remembered.
	// Zero means DefaultWindow.
	Window time.Duration
	// Replay remembers jti values; required.
	Replay ReplayCache
	// Nonces, when set, makes the server's nonce mandatory (RFC 9449 §8).
	Nonces *Nonces
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verifier checks DPoP proofs. It is safe for concurrent use.
type Verifier struct {
	algs    []jose.SignatureAlgorithm
	names   []string
	window  time.Duration
	replay  ReplayCache
	nonces  *Nonces
	now     func() time.Time
	allowed map[string]bool
}

// NewVerifier checks cfg and returns a Verifier.
func NewVerifier(cfg Config) (*Verifier, error) {
	if cfg.Replay == nil {
		return nil, errors.New("dpop: a replay cache is required")
	}
	names := cfg.Algs
	if names == nil {
		names = SupportedAlgs()
	}
	if len(names) == 0 {
		return nil, errors.New("dpop: no algorithms")
	}
	v := &Verifier{window: cfg.Window, replay: cfg.Replay, nonces: cfg.Nonces, now: cfg.Now, allowed: map[string]bool{}}
	for _, a := range names {
		if !slices.Contains(SupportedAlgs(), a) {
			return nil, fmt.Errorf("dpop: algorithm %q is not an accepted asymmetric algorithm", a)
		}
		v.algs = append(v.algs, jose.SignatureAlgorithm(a))
		v.names = append(v.names, a)
		v.allowed[a] = true
	}
	if v.window <= 0 {
		v.window = DefaultWindow
	}
	if v.now == nil {
		v.now = time.Now
	}
	return v, nil
}

// Algs returns the accepted algorithms, for dpop_signing_alg_values_supported
// and the algs parameter of a challenge.
func (v *Verifier) Algs() []string { return slices.Clone(v.names) }

// Nonce returns the current server nonce, or "" when nonces are not used.
func (v *Verifier) Nonce() string {
	if v.nonces == nil {
		return ""
	}
	return v.nonces.Current()
}

// Request describes the HTTP request a proof must match.
type Request struct {
	// Proofs are the values of the DPoP header (Header.Values); exactly
	// one is required.
	Proofs []string
	// Method is the request method.
	Method string
	// URL is the absolute URI the client addressed; query and fragment are
	// ignored and both sides are normalised (RFC 9449 §4.3 rule 9).
	URL string
	// AccessToken, when set, is the token presented with the proof: ath
	// must be its hash (§4.3 rule 12).
	AccessToken string
	// JKT, when set, is the thumbprint the proof's key must have (the
	// token's cnf.jkt, or a code's dpop_jkt).
	JKT string
}

// Proof is a verified proof.
type Proof struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of the key, base64url.
	JKT      string
	JTI      string
	IssuedAt time.Time
	Alg      string
	Key      jose.JSONWebKey
}

// claims are a proof's payload members.
type claims struct {
	JTI   string          `json:"jti"`
	HTM   string          `json:"htm"`
	HTU   string          `json:"htu"`
	IAT   json.RawMessage `json:"iat"`
	ATH   *string         `json:"ath"`
	Nonce *string         `json:"nonce"`
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidProof}, args...)...)
}

// Verify checks the proof of req and returns it. The jti is recorded only
// once every other check passed.
func (v *Verifier) Verify(ctx context.Context, req Request) (*Proof, error) {
	switch {
	case len(req.Proofs) == 0:
		return nil, ErrMissing
	case len(req.Proofs) > 1:
		return nil, invalid("more than one DPoP header")
	}
	raw := req.Proofs[0]
	if raw == "" {
		return nil, ErrMissing
	}
	if len(raw) > MaxProofLen {
		return nil, invalid("proof too large")
	}
	jws, err := jose.ParseSignedCompact(raw, v.algs)
	if err != nil {
		return nil, invalid("not a JWS signed with an accepted algorithm: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, invalid("want exactly one signature")
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, JWTType) {
		return nil, invalid("typ is not %s", JWTType)
	}
	if !v.allowed[h.Algorithm] {
		return nil, invalid("algorithm not accepted")
	}
	jwk := h.JSONWebKey
	if jwk == nil {
		return nil, invalid("no jwk header")
	}
	if !jwk.IsPublic() || !jwk.Valid() {
		return nil, invalid("jwk header is not a public key")
	}
	if !keyFitsAlg(jwk.Key, h.Algorithm) {
		return nil, invalid("jwk does not fit the algorithm")
	}
	payload, err := jws.Verify(jwk)
	if err != nil {
		return nil, invalid("bad signature")
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, invalid("payload is not a JSON object")
	}
	if c.JTI == "" || len(c.JTI) > maxJTILen {
		return nil, invalid("jti missing or too long")
	}
	if c.HTM == "" || c.HTM != req.Method {
		return nil, invalid("htm does not match the request method")
	}
	want, err := NormalizeURL(req.URL)
	if err != nil {
		// The request's own URL (built from a Host header) is unusable:
		// no proof can match it.
		return nil, invalid("the request URI is not an absolute http(s) URI")
	}
	got, err := NormalizeURL(c.HTU)
	if err != nil || got != want {
		return nil, invalid("htu does not match the request URI")
	}
	iat, err := numericDate(c.IAT)
	if err != nil {
		return nil, invalid("iat missing or malformed")
	}
	now := v.now()
	if iat.Before(now.Add(-v.window)) || iat.After(now.Add(v.window)) {
		return nil, invalid("iat outside the accepted window")
	}
	if v.nonces != nil && (c.Nonce == nil || !v.nonces.Valid(*c.Nonce)) {
		return nil, ErrUseNonce
	}
	if req.AccessToken != "" {
		if c.ATH == nil {
			return nil, invalid("ath missing")
		}
		if subtle.ConstantTimeCompare([]byte(*c.ATH), []byte(AccessTokenHash(req.AccessToken))) != 1 {
			return nil, invalid("ath does not match the access token")
		}
	}
	jkt, err := Thumbprint(jwk)
	if err != nil {
		return nil, invalid("jwk thumbprint: %w", err)
	}
	if req.JKT != "" && subtle.ConstantTimeCompare([]byte(jkt), []byte(req.JKT)) != 1 {
		return nil, invalid("proof key is not the key the token is bound to")
	}
	// Remembered for as long as the proof could be accepted: until iat
	// leaves the window.
	if err := v.replay.Use(ctx, "dpop:"+jkt+":"+c.JTI, iat.Add(v.window)); err != nil {
		if errors.Is(err, ErrReplay) {
			return nil, err
		}
		return nil, fmt.Errorf("dpop: replay cache: %w", err)
	}
	return &Proof{JKT: jkt, JTI: c.JTI, IssuedAt: iat, Alg: h.Algorithm, Key: *jwk}, nil
}

// keyFitsAlg reports whether a public key can verify alg: the key type and,
// for ECDSA, the curve of the algorithm.
func keyFitsAlg(key any, alg string) bool {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return k.Curve == elliptic.P256()
		case "ES384":
			return k.Curve == elliptic.P384()
		case "ES512":
			return k.Curve == elliptic.P521()
		}
	case *rsa.PublicKey:
		return (strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")) && k.N.BitLen() >= minRSABits
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// numericDate reads a JSON NumericDate.
func numericDate(raw json.RawMessage) (time.Time, error) {
	var f float64
	if len(raw) == 0 {
		return time.Time{}, errors.New("missing")
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return time.Time{}, err
	}
	if math.IsNaN(f) || f < 0 || f > 1<<40 {
		return time.Time{}, errors.New("out of range")
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}

// Thumbprint returns the RFC 7638 SHA-256 thumbprint of a key, base64url
// without padding: the jkt of RFC 9449 §6.
func Thumbprint(k *jose.JSONWebKey) (string, error) {
	b, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("jwk thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// AccessTokenHash is the ath of RFC 9449 §4.2: base64url(SHA-256(token)).
func AccessTokenHash(token string) string {
	s := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(s[:])
}

// ValidJKT reports whether s looks like a SHA-256 thumbprint (43 base64url
// characters), as dpop_jkt and cnf.jkt must.
func ValidJKT(s string) bool {
	if len(s) != 43 {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil && len(b) == sha256.Size
}

// Proofs returns the DPoP header values of h.
func Proofs(h http.Header) []string { return h.Values(HeaderName) }
