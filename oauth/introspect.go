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
	writeJSON(w, http.StatusOK, introspection(ar, sess, use))
}

// introspection builds the response: RFC 7662 members plus how the subject
// authenticated (acr, amr, auth_time).
func introspection(ar fosite.AccessRequester, sess *Session, use fosite.TokenUse) map[string]any {
	resp := map[string]any{"active": true}
	for k, v := range sess.GetExtraClaims() {
		resp[k] = v
	}
	clientID := ar.GetClient().GetID()
	resp["client_id"] = clientID
	if s := ar.GetGrantedScopes(); len(s) > 0 {
		resp["scope"] = strings.Join(s, " ")
	}
	if sub := sess.GetSubject(); sub != "" {
		resp["sub"] = sub
	}
	if t := ar.GetRequestedAt(); !t.IsZero() {
		resp["iat"] = t.Unix()
	}
	aud := []string(ar.GetGrantedAudience())
	if len(aud) == 0 {
		aud = []string{clientID}
	}
	resp["aud"] = aud
	resp["token_use"] = string(use)
	switch use {
	case fosite.AccessToken:
		resp["token_type"] = "Bearer"
		if exp := sess.GetExpiresAt(fosite.AccessToken); !exp.IsZero() {
			resp["exp"] = exp.Unix()
		}
	case fosite.RefreshToken:
		resp["token_type"] = "refresh_token"
		if exp := sess.GetExpiresAt(fosite.RefreshToken); !exp.IsZero() {
			resp["exp"] = exp.Unix()
		}
	}
	if sess.SessionID != "" {
		resp["sid"] = sess.SessionID
	}
	return resp
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
