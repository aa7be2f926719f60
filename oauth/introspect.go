package oauth

import (
	"net/http"
	"strings"

	"github.com/ory/fosite"
)

// serveIntrospect answers RFC 7662 introspection. Unlike fosite's default,
// the caller must authenticate as a confidential client (basic, post or
// private_key_jwt); a bearer token alone is refused, so a leaked access token
// cannot be used to probe other tokens.
func (p *Provider) serveIntrospect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	noStore(w)
	if e := p.readForm(w, r); e != nil {
		p.writeJSONError(w, e)
		return
	}
	auth := r.Header.Get("Authorization")
	if scheme, _, _ := strings.Cut(auth, " "); strings.EqualFold(scheme, "bearer") {
		w.Header().Set("WWW-Authenticate", `Basic realm="`+p.cfg.Issuer+`"`)
		p.writeJSONError(w, fosite.ErrInvalidClient.WithHint("Introspection requires client authentication; a bearer token is not accepted."))
		return
	}
	client, err := p.oauth.AuthenticateClient(ctx, r, r.PostForm)
	if err != nil {
		rfc := fosite.ErrorToRFC6749Error(err)
		if rfc.CodeField >= 500 {
			p.log.ErrorContext(ctx, "introspection client auth", "err", err)
			p.writeJSONError(w, rfc)
			return
		}
		p.writeJSONError(w, fosite.ErrInvalidClient.WithHint("Client authentication failed."))
		return
	}
	if client.IsPublic() {
		p.writeJSONError(w, fosite.ErrInvalidClient.WithHint("Only confidential clients may introspect tokens."))
		return
	}
	token := r.PostForm.Get("token")
	if token == "" {
		p.writeJSONError(w, fosite.ErrInvalidRequest.WithHint("The 'token' parameter is required."))
		return
	}
	sess := newSession(p.cfg.Issuer)
	use, ar, err := p.oauth.IntrospectToken(ctx, token, fosite.TokenUse(r.PostForm.Get("token_type_hint")), sess)
	if err != nil {
		writeJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	writeJSON(w, http.StatusOK, newIntrospectionResult(ar, sess, use))
}

// introspectionResult is an active token's introspection response: RFC
// 7662 members plus how the subject authenticated (acr, amr, auth_time).
// It is a struct rather than a map because encoding a map sorts its keys and
// reflects on every value, a fifth of the endpoint's CPU time.
type introspectionResult struct {
	Active    bool     `json:"active"`
	ACR       string   `json:"acr,omitempty"`
	AMR       []string `json:"amr,omitempty"`
	AuthTime  int64    `json:"auth_time,omitempty"`
	Issuer    string   `json:"iss,omitempty"`
	ClientID  string   `json:"client_id"`
	Scope     string   `json:"scope,omitempty"`
	Subject   string   `json:"sub,omitempty"`
	IssuedAt  int64    `json:"iat,omitempty"`
	Audience  []string `json:"aud"`
	TokenUse  string   `json:"token_use"`
	TokenType string   `json:"token_type,omitempty"`
	Expires   int64    `json:"exp,omitempty"`
	SessionID string   `json:"sid,omitempty"`
	// RiskDecision links the token to the risk decision that let it through.
	RiskDecision string `json:"risk_decision,omitempty"`
	// Confirmation is cnf.jkt of a DPoP-bound access token (dpop.go).
	Confirmation *confirmation `json:"cnf,omitempty"`
}

// introspection builds the response for an active token.
func introspection(ar fosite.AccessRequester, sess *Session, use fosite.TokenUse) map[string]any {
	return newIntrospectionResult(ar, sess, use).asMap()
}

func newIntrospectionResult(ar fosite.AccessRequester, sess *Session, use fosite.TokenUse) introspectionResult {
	res := introspectionResult{Active: true, Issuer: sess.Issuer, TokenUse: string(use), SessionID: sess.SessionID,
		RiskDecision: sess.RiskDecision}
	c := sess.IDTokenClaims()
	res.ACR = c.AuthenticationContextClassReference
	res.AMR = c.AuthenticationMethodsReferences
	if !c.AuthTime.IsZero() {
		res.AuthTime = c.AuthTime.Unix()
	}
	res.ClientID = ar.GetClient().GetID()
	if s := ar.GetGrantedScopes(); len(s) > 0 {
		res.Scope = strings.Join(s, " ")
	}
	res.Subject = sess.GetSubject()
	if t := ar.GetRequestedAt(); !t.IsZero() {
		res.IssuedAt = t.Unix()
	}
	res.Audience = []string(ar.GetGrantedAudience())
	if len(res.Audience) == 0 {
		res.Audience = []string{res.ClientID}
	}
	switch use {
	case fosite.AccessToken:
		res.TokenType = "Bearer"
		if exp := sess.GetExpiresAt(fosite.AccessToken); !exp.IsZero() {
			res.Expires = exp.Unix()
		}
	case fosite.RefreshToken:
		res.TokenType = "refresh_token"
		if exp := sess.GetExpiresAt(fosite.RefreshToken); !exp.IsZero() {
			res.Expires = exp.Unix()
		}
	}
	res.addDPoP(sess, use)
	return res
}

// asMap returns the members as a map, for in-process callers; it holds
// exactly the members the JSON encoding has.
func (r introspectionResult) asMap() map[string]any {
	m := map[string]any{"active": r.Active, "client_id": r.ClientID, "aud": r.Audience, "token_use": r.TokenUse}
	set := func(k string, v any, ok bool) {
		if ok {
			m[k] = v
		}
	}
	set("acr", r.ACR, r.ACR != "")
	set("amr", r.AMR, len(r.AMR) > 0)
	set("auth_time", r.AuthTime, r.AuthTime != 0)
	set("iss", r.Issuer, r.Issuer != "")
	set("scope", r.Scope, r.Scope != "")
	set("sub", r.Subject, r.Subject != "")
	set("iat", r.IssuedAt, r.IssuedAt != 0)
	set("token_type", r.TokenType, r.TokenType != "")
	set("exp", r.Expires, r.Expires != 0)
	set("sid", r.SessionID, r.SessionID != "")
	set("risk_decision", r.RiskDecision, r.RiskDecision != "")
	if r.Confirmation != nil {
		m["cnf"] = map[string]any{"jkt": r.Confirmation.JKT}
	}
	return m
}

// writeJSONError writes an RFC 6749 §5.2 style error body.
func (p *Provider) writeJSONError(w http.ResponseWriter, e *fosite.RFC6749Error) {
	body := map[string]string{"error": e.ErrorField}
	if d := e.GetDescription(); d != "" {
		body["error_description"] = d
	}
	code := e.CodeField
	if code == 0 {
		code = http.StatusBadRequest
	}
	if e.ErrorField == fosite.ErrInvalidClient.ErrorField {
		code = http.StatusUnauthorized
	}
	writeJSON(w, code, body)
}
