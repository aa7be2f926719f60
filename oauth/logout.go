package oauth

import (
	"errors"
	"net/http"
	"net/url"
	"slices"

	"github.com/ory/fosite"
	"github.com/ory/fosite/token/jwt"
)

// serveLogout implements OpenID Connect RP-Initiated Logout 1.0. It validates
// id_token_hint (signature by one of our keys, expired tokens accepted) and
// post_logout_redirect_uri (exactly one of the client's registered values),
// then hands over to the browser-facing layer, which confirms and ends the
// session.
func (p *Provider) serveLogout(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	noStore(w)
	if e := p.readForm(w, r); e != nil {
		p.writeJSONError(w, e)
		return
	}
	bad := func(hint string) { p.writeJSONError(w, fosite.ErrInvalidRequest.WithHint(hint)) }
	clientID := r.Form.Get("client_id")
	if hint := r.Form.Get("id_token_hint"); hint != "" {
		t, err := p.signer.Decode(ctx, hint)
		var ve *jwt.ValidationError
		if err != nil && !(errors.As(err, &ve) && ve.Errors == jwt.ValidationErrorExpired) {
			bad("The id_token_hint is not a valid ID token issued by this server.")
			return
		}
		if typ, _ := t.Header["typ"].(string); typ == "at+jwt" {
			bad("The id_token_hint is an access token, not an ID token.")
			return
		}
		if iss, _ := t.Claims["iss"].(string); iss != p.cfg.Issuer {
			bad("The id_token_hint was issued by another server.")
			return
		}
		aud := audiences(t.Claims["aud"])
		switch {
		case clientID == "" && len(aud) == 1:
			clientID = aud[0]
		case clientID == "":
			if azp, _ := t.Claims["azp"].(string); azp != "" {
				clientID = azp
			}
		case !slices.Contains(aud, clientID):
			bad("The client_id does not match the id_token_hint audience.")
			return
		}
	}
	var rp *relyingParty
	if clientID != "" {
		c, err := p.clients.get(ctx, clientID)
		if err != nil {
			if !isNotFound(err) {
				p.log.ErrorContext(ctx, "logout: load client", "err", err)
			}
			bad("Unknown client.")
			return
		}
		rp = c
	}
	lr := LogoutRequest{}
	if rp != nil {
		lr.ClientName = rp.c.Name
	}
	if pl := r.Form.Get("post_logout_redirect_uri"); pl != "" {
		if rp == nil {
			bad("post_logout_redirect_uri requires id_token_hint or client_id.")
			return
		}
		if !slices.Contains(rp.c.PostLogoutRedirectURIs, pl) {
			bad("post_logout_redirect_uri is not registered for this client.")
			return
		}
		u, err := url.Parse(pl)
		if err != nil {
			bad("post_logout_redirect_uri is malformed.")
			return
		}
		if state := r.Form.Get("state"); state != "" {
			q := u.Query()
			q.Set("state", state)
			u.RawQuery = q.Encode()
		}
		lr.RedirectURI = u.String()
	}
	lo, ok := p.ui.(Logouter)
	if !ok {
		p.log.WarnContext(ctx, "logout requested but the interaction layer cannot log out")
		writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "unsupported", "error_description": "Logout is not available."})
		return
	}
	lo.Logout(w, r, lr)
}

func audiences(v any) []string {
	switch a := v.(type) {
	case string:
		return []string{a}
	case []any:
		out := make([]string, 0, len(a))
		for _, x := range a {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case []string:
		return a
	}
	return nil
}
