package oauth

import (
	"context"
	"net/http"
	"slices"

	"github.com/ory/fosite"

	"github.com/stepwise-id/stepwise/storage"
)

// ACRClient is the acr of tokens issued to machine clients
// (client_credentials): no user authenticated, the client did; amr then
// names the client authentication method.
const ACRClient = "urn:stepwise:acr:client"

func (p *Provider) serveToken(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	noStore(w)
	sess := newSession(p.cfg.Issuer)
	if e := p.readForm(w, r); e != nil {
		p.writeAccessError(ctx, w, fosite.NewAccessRequest(sess), e)
		return
	}
	switch gt := r.PostForm.Get("grant_type"); gt {
	case "", "authorization_code", "refresh_token", "client_credentials":
	default:
		p.writeAccessError(ctx, w, fosite.NewAccessRequest(sess), fosite.ErrUnsupportedGrantType.WithHintf("The grant type %q is not supported.", gt))
		return
	}
	// The proof is checked before fosite sees the grant, so a bad one
	// burns no code (RFC 9449; dpop.go).
	proof, err := p.verifyProof(ctx, w, r, PathToken, "")
	if err != nil {
		p.writeAccessError(ctx, w, fosite.NewAccessRequest(sess), err)
		return
	}
	ar, err := p.oauth.NewAccessRequest(ctx, r, sess)
	if err != nil {
		p.writeAccessError(ctx, w, ar, err)
		return
	}
	if ar.GetGrantTypes().ExactOne("client_credentials") {
		if err := p.clientCredentials(ctx, r, ar, sess); err != nil {
			p.writeAccessError(ctx, w, ar, err)
			return
		}
	}
	if err := p.bindTokenDPoP(ar, proof); err != nil {
		p.writeAccessError(ctx, w, ar, err)
		return
	}
	resp, err := p.oauth.NewAccessResponse(ctx, ar)
	if err != nil && errorsIsInactive(err) && ar.GetGrantTypes().ExactOne("authorization_code") {
		// Two exchanges of one code raced past fosite's check and this one
		// lost the atomic invalidation, so fosite's own replay handling
		// never ran: revoke what the winner got, as for any replayed code
		// (RFC 6749 §4.1.2). writeAccessError answers invalid_grant.
		p.revokeGrant(ctx, ar.GetID())
	}
	if err != nil {
		p.writeAccessError(ctx, w, ar, err)
		return
	}
	p.finishTokenDPoP(w, ar, resp)
	p.oauth.WriteAccessResponse(ctx, w, ar, resp)
}

// revokeGrant deletes every access and refresh token issued for requestID.
func (p *Provider) revokeGrant(ctx context.Context, requestID string) {
	for _, kind := range []storage.Kind{storage.KindAccessToken, storage.KindRefreshToken} {
		if _, err := p.store.DeleteRequestsByID(ctx, kind, requestID); err != nil {
			p.log.ErrorContext(ctx, "revoke tokens of a replayed code", "kind", kind, "err", err)
		}
	}
}

// clientCredentials grants a machine client what it is registered for and
// describes its authentication in acr/amr. The shared gate runs here too.
func (p *Provider) clientCredentials(ctx context.Context, r *http.Request, ar fosite.AccessRequester, sess *Session) error {
	rp, ok := ar.GetClient().(*relyingParty)
	if !ok {
		return fosite.ErrServerError.WithDebug("unexpected client type")
	}
	machineScope := func(s string) bool {
		return s != ScopeOpenID && s != ScopeOfflineAccess && slices.Contains(rp.c.Scopes, s)
	}
	requested := ar.GetRequestedScopes()
	var grant []string
	if len(requested) == 0 {
		// RFC 6749 §3.3: without a scope parameter, use the registered default.
		grant = slices.DeleteFunc(slices.Clone(rp.c.Scopes), func(s string) bool { return !machineScope(s) })
	} else {
		for _, s := range requested {
			if machineScope(s) {
				grant = append(grant, s)
			}
		}
	}
	method := clientAuthMethod(r)
	v, rerr := p.evaluate(ctx, GateRequest{
		HTTP: r, GrantType: "client_credentials", ClientID: rp.GetID(),
		Scopes: grant, ClientAuthMethod: method,
	})
	if rerr != nil {
		return rerr
	}
	for _, s := range grant {
		ar.GrantScope(s)
	}
	grantAudience(ar, rp)
	now := p.cfg.Now().UTC()
	sess.Subject = rp.GetID()
	sess.ClientID = rp.GetID()
	sess.RiskDecision = v.DecisionID
	c := sess.IDTokenClaims()
	c.Subject = rp.GetID()
	c.AuthenticationContextClassReference = ACRClient
	c.AuthenticationMethodsReferences = []string{method}
	c.AuthTime = now
	return nil
}

// clientAuthMethod names how the client authenticated on r (fosite has
// already verified it).
func clientAuthMethod(r *http.Request) string {
	switch {
	case r.PostForm.Get("client_assertion_type") != "":
		return "private_key_jwt"
	case r.Header.Get("Authorization") != "":
		return "client_secret_basic"
	case r.PostForm.Get("client_secret") != "":
		return "client_secret_post"
	}
	return "none"
}

// writeAccessError writes a token-endpoint error. A storage "already used"
// race (two exchanges of one code) surfaces from fosite as a server error;
// it is the client's invalid_grant, not our failure.
func (p *Provider) writeAccessError(ctx context.Context, w http.ResponseWriter, ar fosite.AccessRequester, err error) {
	if errorsIsInactive(err) {
		err = fosite.ErrInvalidGrant.WithHint("The authorization code or refresh token was already used.")
	}
	if rfc := fosite.ErrorToRFC6749Error(err); rfc.CodeField >= 500 {
		p.log.ErrorContext(ctx, "token request failed", "err", err)
	}
	if ar == nil {
		ar = fosite.NewAccessRequest(newSession(p.cfg.Issuer))
	}
	p.oauth.WriteAccessError(ctx, w, ar, err)
}

func (p *Provider) serveRevoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if e := p.readForm(w, r); e != nil {
		p.oauth.WriteRevocationResponse(ctx, w, e)
		return
	}
	if !hasClientCredentials(r) {
		// RFC 7009 §2.1: the client authenticates; without any credentials
		// the answer is invalid_client (fosite would say invalid_request).
		w.Header().Set("WWW-Authenticate", `Basic realm="`+p.cfg.Issuer+`"`)
		p.writeJSONError(w, fosite.ErrInvalidClient.WithHint("Client authentication is required."))
		return
	}
	err := p.oauth.NewRevocationRequest(ctx, r)
	if err != nil {
		if rfc := fosite.ErrorToRFC6749Error(err); rfc.CodeField >= 500 {
			p.log.ErrorContext(ctx, "revocation failed", "err", err)
		}
	}
	p.oauth.WriteRevocationResponse(ctx, w, err)
}

// hasClientCredentials reports whether r carries any client identification.
func hasClientCredentials(r *http.Request) bool {
	return r.Header.Get("Authorization") != "" || r.PostForm.Get("client_id") != "" || r.PostForm.Get("client_assertion") != ""
}
