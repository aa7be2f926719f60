package oauth

import (
	"net/http"

	"github.com/ory/fosite"
)

// servePAR accepts RFC 9126 pushed authorization requests from authenticated
// clients and answers with a one-time request_uri.
func (p *Provider) servePAR(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if e := p.readForm(w, r); e != nil {
		p.oauth.WritePushedAuthorizeError(ctx, w, fosite.NewAuthorizeRequest(), e)
		return
	}
	if unsignedRequestObject(r.Form.Get("request")) {
		p.writePARError(w, r, nil, fosite.ErrInvalidRequestObject.WithHint("Unsigned (alg none) request objects are not accepted."))
		return
	}
	ar, err := p.oauth.NewPushedAuthorizeRequest(ctx, r)
	if err != nil {
		p.writePARError(w, r, ar, err)
		return
	}
	// fosite runs PKCE checks only at the authorization endpoint; refuse a
	// plain challenge here already instead of minting a doomed request_uri.
	form := ar.GetRequestForm()
	if form.Get("code_challenge") != "" && form.Get("code_challenge_method") != "S256" {
		p.writePARError(w, r, ar, fosite.ErrInvalidRequest.WithHint("Clients must use code_challenge_method=S256."))
		return
	}
	if form.Get("code_challenge") == "" && ar.GetClient().IsPublic() {
		p.writePARError(w, r, ar, fosite.ErrInvalidRequest.WithHint("Public clients must send a PKCE code_challenge (S256)."))
		return
	}
	if err := p.bindPARDPoP(ctx, w, r, ar); err != nil { // RFC 9449 §10.1 (dpop.go)
		p.writePARError(w, r, ar, err)
		return
	}
	resp, err := p.oauth.NewPushedAuthorizeResponse(ctx, ar, newSession(p.cfg.Issuer))
	if err != nil {
		p.writePARError(w, r, ar, err)
		return
	}
	p.oauth.WritePushedAuthorizeResponse(ctx, w, ar, resp)
}

func (p *Provider) writePARError(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, err error) {
	if rfc := fosite.ErrorToRFC6749Error(err); rfc.CodeField >= 500 {
		p.log.ErrorContext(r.Context(), "pushed authorization request failed", "err", err)
	}
	if ar == nil {
		ar = fosite.NewAuthorizeRequest()
	}
	p.oauth.WritePushedAuthorizeError(r.Context(), w, ar, err)
}
