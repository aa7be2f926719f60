package oauth

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/jwt"
)

// tokenStrategy issues opaque HMAC tokens by default and RFC 9068 JWT access
// tokens for clients registered with access_token_format "jwt". Whichever
// format, the token is stored by signature, so both introspect and revoke
// the same way. Refresh tokens and codes are always opaque.
type tokenStrategy struct {
	*oauth2.HMACSHAStrategy
	signer jwt.Signer
	issuer string
	// verified remembers JWT access tokens whose signature was already
	// checked, so introspecting one again skips the ECDSA verification.
	verified *verifiedJWTs
}

var _ oauth2.CoreStrategy = (*tokenStrategy)(nil)

// isJWT tells the formats apart: opaque tokens have one dot, JWTs two.
func isJWT(token string) bool { return strings.Count(token, ".") == 2 }

func (s *tokenStrategy) AccessTokenSignature(ctx context.Context, token string) string {
	if isJWT(token) {
		return token[strings.LastIndexByte(token, '.')+1:]
	}
	return s.HMACSHAStrategy.AccessTokenSignature(ctx, token)
}

func (s *tokenStrategy) GenerateAccessToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	rp, ok := r.GetClient().(*relyingParty)
	if !ok || !rp.jwtAccessTokens() {
		return s.HMACSHAStrategy.GenerateAccessToken(ctx, r)
	}
	sess, ok := r.GetSession().(*Session)
	if !ok {
		return "", "", errors.New("jwt access token: unexpected session type")
	}
	exp := sess.GetExpiresAt(fosite.AccessToken)
	if exp.IsZero() {
		return "", "", errors.New("jwt access token: no expiry on session")
	}
	aud := []string(r.GetGrantedAudience())
	if len(aud) == 0 {
		aud = []string{r.GetClient().GetID()}
	}
	claims := sess.GetJWTClaims().
		With(exp, r.GetGrantedScopes(), aud).
		WithDefaults(time.Now().UTC(), s.issuer).
		WithScopeField(jwt.JWTScopeFieldString).
		ToMapClaims()
	if claims["client_id"] == "" {
		claims["client_id"] = r.GetClient().GetID()
	}
	return s.signer.Generate(ctx, claims, sess.GetJWTHeader())
}

// ValidateAccessToken runs after the token's row was found by its
// signature, so revocation and deletion are already accounted for. For a JWT
// it verifies the signature, unless this exact token (every byte: header,
// claims and signature, see verifiedJWTs) was verified before under a key
// that is still published; the expiry check runs every time.
func (s *tokenStrategy) ValidateAccessToken(ctx context.Context, r fosite.Requester, token string) error {
	if !isJWT(token) {
		return s.HMACSHAStrategy.ValidateAccessToken(ctx, r, token)
	}
	if s.verified != nil && s.verified.seen(ctx, token) {
		if exp := r.GetSession().GetExpiresAt(fosite.AccessToken); !exp.IsZero() && time.Now().After(exp) {
			return fosite.ErrTokenExpired
		}
		return nil
	}
	t, err := s.signer.Decode(ctx, token)
	if err != nil {
		var ve *jwt.ValidationError
		if errors.As(err, &ve) && ve.Has(jwt.ValidationErrorExpired) {
			return fosite.ErrTokenExpired.WithWrap(err)
		}
		return fosite.ErrTokenSignatureMismatch.WithWrap(err)
	}
	if typ, _ := t.Header["typ"].(string); typ != "at+jwt" {
		return fosite.ErrTokenSignatureMismatch.WithHint("Not an access token.")
	}
	if exp := r.GetSession().GetExpiresAt(fosite.AccessToken); !exp.IsZero() && time.Now().After(exp) {
		return fosite.ErrTokenExpired
	}
	if s.verified != nil {
		kid, _ := t.Header["kid"].(string)
		s.verified.add(token, kid)
	}
	return nil
}

// verifiedJWTs is a bounded set of JWT access tokens whose signature has
// been verified, keyed by the SHA-256 of the whole compact token.
//
// Skipping the signature check is safe only because the digest binds every
// byte: the store lookup that precedes validation finds a row by the
// signature segment alone, so without verification a token with the real
// signature but edited header or claims would be reported active (and a
// resource server reading the claims locally would believe them). A token
// matching a remembered digest is byte-for-byte one we verified. Revocation
// is unaffected (the row lookup runs first on every call), expiry is checked
// on every call, and an entry only counts while the key it was verified with
// is still published. The set holds digests, never tokens.
type verifiedJWTs struct {
	published func(ctx context.Context, kid string) bool
	max       int

	mu sync.RWMutex
	m  map[[sha256.Size]byte]string // digest → kid
}

func newVerifiedJWTs(max int, published func(ctx context.Context, kid string) bool) *verifiedJWTs {
	return &verifiedJWTs{published: published, max: max, m: make(map[[sha256.Size]byte]string)}
}

func (v *verifiedJWTs) seen(ctx context.Context, token string) bool {
	d := sha256.Sum256([]byte(token))
	v.mu.RLock()
	kid, ok := v.m[d]
	v.mu.RUnlock()
	return ok && v.published(ctx, kid)
}

func (v *verifiedJWTs) add(token, kid string) {
	d := sha256.Sum256([]byte(token))
	v.mu.Lock()
	if len(v.m) >= v.max {
		// Bound memory: start over rather than track recency.
		clear(v.m)
	}
	v.m[d] = kid
	v.mu.Unlock()
}
