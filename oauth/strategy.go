package oauth

import (
	"context"
	"errors"
	"strings"
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

func (s *tokenStrategy) ValidateAccessToken(ctx context.Context, r fosite.Requester, token string) error {
	if !isJWT(token) {
		return s.HMACSHAStrategy.ValidateAccessToken(ctx, r, token)
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
	return nil
}
