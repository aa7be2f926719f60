package oauth

import (
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
)

// Session is the fosite session stored with every code and token. It wraps
// openid.DefaultSession (ID token claims: acr, amr, auth_time, nonce) and adds
// what introspection and JWT access tokens need.
type Session struct {
	*openid.DefaultSession `json:"oidc"`
	// ClientID is the client the grant was issued to.
	ClientID string `json:"client_id,omitempty"`
	// SessionID is the browser login session that authorised the grant;
	// empty for machine clients.
	SessionID string `json:"sid,omitempty"`
	// Issuer is copied into introspection responses and JWT access tokens.
	Issuer string `json:"iss,omitempty"`
	// RiskDecision is the id of the risk decision (audit event) that let
	// the grant through; introspection shows it as risk_decision.
	RiskDecision string `json:"risk_decision,omitempty"`
	// DPoPJKT is the thumbprint of the DPoP key the grant is bound to: a
	// code's dpop_jkt, then the key of the issued tokens (cnf.jkt, RFC 9449).
	DPoPJKT string `json:"dpop_jkt,omitempty"`
}

var (
	_ fosite.ExtraClaimsSession  = (*Session)(nil)
	_ oauth2.JWTSessionContainer = (*Session)(nil)
	_ openid.Session             = (*Session)(nil)
)

// newSession returns an empty session ready for fosite to fill.
func newSession(issuer string) *Session {
	return &Session{DefaultSession: openid.NewDefaultSession(), Issuer: issuer}
}

// Clone implements fosite.Session. It must be overridden: the promoted
// DefaultSession.Clone would return *openid.DefaultSession, and the refresh
// flow would silently drop acr/amr from introspection.
func (s *Session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	c := *s
	if s.DefaultSession != nil {
		c.DefaultSession = s.DefaultSession.Clone().(*openid.DefaultSession)
	}
	return &c
}

// GetExtraClaims implements fosite.ExtraClaimsSession: introspection carries
// how the subject authenticated.
func (s *Session) GetExtraClaims() map[string]any {
	m := map[string]any{}
	c := s.IDTokenClaims()
	if c.AuthenticationContextClassReference != "" {
		m["acr"] = c.AuthenticationContextClassReference
	}
	if len(c.AuthenticationMethodsReferences) > 0 {
		m["amr"] = c.AuthenticationMethodsReferences
	}
	if !c.AuthTime.IsZero() {
		m["auth_time"] = c.AuthTime.Unix()
	}
	if s.Issuer != "" {
		m["iss"] = s.Issuer
	}
	if s.RiskDecision != "" {
		m["risk_decision"] = s.RiskDecision
	}
	return m
}

// GetJWTClaims implements oauth2.JWTSessionContainer: the RFC 9068 claims of a
// JWT access token minus exp/scope/aud, which the issuer adds per grant.
func (s *Session) GetJWTClaims() jwt.JWTClaimsContainer {
	c := s.IDTokenClaims()
	extra := map[string]any{"client_id": s.ClientID}
	if c.AuthenticationContextClassReference != "" {
		extra["acr"] = c.AuthenticationContextClassReference
	}
	if len(c.AuthenticationMethodsReferences) > 0 {
		extra["amr"] = c.AuthenticationMethodsReferences
	}
	if !c.AuthTime.IsZero() {
		extra["auth_time"] = c.AuthTime.Unix()
	}
	if s.SessionID != "" {
		extra["sid"] = s.SessionID
	}
	if s.DPoPJKT != "" {
		extra["cnf"] = map[string]any{"jkt": s.DPoPJKT}
	}
	return &jwt.JWTClaims{
		Subject: s.GetSubject(),
		Issuer:  s.Issuer,
		Extra:   extra,
	}
}

// GetJWTHeader implements oauth2.JWTSessionContainer: RFC 9068 §2.1 demands
// typ "at+jwt" so an access token cannot be confused with an ID token.
func (s *Session) GetJWTHeader() *jwt.Headers {
	return &jwt.Headers{Extra: map[string]any{"typ": "at+jwt"}}
}

// setLogin records how and when the user authenticated. auth_time is the
// login's, never now: that is what max_age and step-up checks rely on.
func (s *Session) setLogin(l *Login, requestedAt time.Time) {
	s.Subject = l.Subject
	s.SessionID = l.SessionID
	c := s.IDTokenClaims()
	c.Subject = l.Subject
	c.AuthenticationContextClassReference = l.ACR
	c.AuthenticationMethodsReferences = append([]string(nil), l.AMR...)
	c.AuthTime = l.AuthTime.UTC()
	c.RequestedAt = requestedAt.UTC()
}
