package oauth

import (
	"mime"
	"net/http"

	"github.com/ory/fosite"
)

// serveUserinfo answers the OpenID Connect UserInfo endpoint (GET or POST,
// bearer token): sub, how the user authenticated, and the profile/email
// claims the granted scopes allow.
func (p *Provider) serveUserinfo(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	noStore(w)
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, p.cfg.MaxBodyBytes)
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" {
			if err := r.ParseForm(); err != nil {
				p.bearerError(w, http.StatusBadRequest, "invalid_request", "The request body could not be parsed.")
				return
			}
		}
	}
	token := fosite.AccessTokenFromRequest(r)
	if token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+p.cfg.Issuer+`"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token", "error_description": "An access token is required."})
		return
	}
	sess := newSession(p.cfg.Issuer)
	use, ar, err := p.oauth.IntrospectToken(ctx, token, fosite.AccessToken, sess)
	if err != nil || use != fosite.AccessToken {
		p.bearerError(w, http.StatusUnauthorized, "invalid_token", "The access token is invalid or expired.")
		return
	}
	if !ar.GetGrantedScopes().Has(ScopeOpenID) {
		p.bearerError(w, http.StatusForbidden, "insufficient_scope", "The access token was not granted the openid scope.")
		return
	}
	user, err := p.store.GetUser(ctx, sess.GetSubject())
	if err != nil || user.Disabled {
		if err != nil && !isNotFound(err) {
			p.log.ErrorContext(ctx, "userinfo: load user", "err", err)
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable"})
			return
		}
		p.bearerError(w, http.StatusUnauthorized, "invalid_token", "The user is no longer available.")
		return
	}
	claims := map[string]any{"sub": user.ID}
	for k, v := range sess.GetExtraClaims() {
		if k != "iss" {
			claims[k] = v
		}
	}
	scopes := ar.GetGrantedScopes()
	if scopes.Has(ScopeProfile) {
		claims["preferred_username"] = user.Username
		if user.DisplayName != "" {
			claims["name"] = user.DisplayName
		}
	}
	if scopes.Has(ScopeEmail) && user.Email != "" {
		claims["email"] = user.Email
		// Stepwise does not verify addresses itself; say so rather than guess.
		claims["email_verified"] = false
	}
	writeJSON(w, http.StatusOK, claims)
}

// bearerError writes an RFC 6750 §3 error.
func (p *Provider) bearerError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="`+p.cfg.Issuer+`", error="`+code+`", error_description="`+desc+`"`)
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}
