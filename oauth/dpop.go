package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/ory/fosite"

	"github.com/stepwise-id/stepwise/oauth/dpop"
	"github.com/stepwise-id/stepwise/storage"
)

// DPoPConfig configures DPoP (RFC 9449) at the token and PAR endpoints.
// The zero value enables DPoP with a 60 s iat window and no nonces.
type DPoPConfig struct {
	// Window is how far a proof's iat may be from now either way; it
	// defaults to dpop.DefaultWindow.
	Window time.Duration
	// RequireNonce makes clients include a server nonce (RFC 9449 §8);
	// nonces are stateless (an HMAC of a time bucket under a key derived
	// from the system secret), so every replica accepts every nonce.
	RequireNonce bool
	// NoncePeriod is how long one nonce is current (dpop.DefaultNoncePeriod).
	NoncePeriod time.Duration
	// Algs restricts the accepted algorithms; nil means dpop.SupportedAlgs.
	Algs []string
}

// MetadataDPoPBound is the RFC 9449 §5.2 client metadata member, kept in
// storage.Client.Metadata, that makes DPoP mandatory for a client.
const MetadataDPoPBound = "dpop_bound_access_tokens"

// Error codes of RFC 9449 as fosite errors: 400 at the token and PAR
// endpoints (§5, §8).
var (
	ErrInvalidDPoPProof = &fosite.RFC6749Error{ErrorField: dpop.ErrorInvalidProof, DescriptionField: "The DPoP proof is invalid.", CodeField: http.StatusBadRequest}
	ErrUseDPoPNonce     = &fosite.RFC6749Error{ErrorField: dpop.ErrorUseNonce, DescriptionField: "Authorization server requires nonce in DPoP proof.", CodeField: http.StatusBadRequest}
)

// jtiReplay keeps DPoP jti values in storage.AssertionJTIs, so a proof
// replayed to another replica is refused too.
type jtiReplay struct {
	s   storage.AssertionJTIs
	now func() time.Time
}

func (r jtiReplay) Use(ctx context.Context, key string, expiresAt time.Time) error {
	err := r.s.UseJTI(ctx, key, expiresAt, r.now())
	if errors.Is(err, storage.ErrAlreadyExists) {
		return dpop.ErrReplay
	}
	if err != nil {
		return fmt.Errorf("record dpop jti: %w", err)
	}
	return nil
}

// newDPoPVerifier builds the provider's proof verifier.
func newDPoPVerifier(c Config, store storage.AssertionJTIs, secret []byte) (*dpop.Verifier, error) {
	cfg := dpop.Config{Algs: c.DPoP.Algs, Window: c.DPoP.Window, Replay: jtiReplay{s: store, now: c.Now}, Now: c.Now}
	if c.DPoP.RequireNonce {
		n, err := dpop.NewNonces(deriveKey(secret, "dpop-nonce"), c.DPoP.NoncePeriod, c.Now)
		if err != nil {
			return nil, fmt.Errorf("oauth: dpop nonces: %w", err)
		}
		cfg.Nonces = n
	}
	v, err := dpop.NewVerifier(cfg)
	if err != nil {
		return nil, fmt.Errorf("oauth: dpop: %w", err)
	}
	return v, nil
}

// DPoPReplayCache returns the replay cache the provider uses for DPoP
// proofs (backed by storage, shared by every replica), for resource-server
// checks running inside the server, such as the gateway.
func (p *Provider) DPoPReplayCache() dpop.ReplayCache {
	return jtiReplay{s: p.store, now: p.cfg.Now}
}

// dpopBound reports whether the client registered dpop_bound_access_tokens.
func (r *relyingParty) dpopBound() bool {
	b, _ := r.meta[MetadataDPoPBound].(bool)
	return b
}

// verifyProof checks the DPoP header of r for an endpoint at path. It
// returns nil, nil when there is no DPoP header. Errors are fosite errors;
// for use_dpop_nonce the fresh nonce is already set on w.
func (p *Provider) verifyProof(ctx context.Context, w http.ResponseWriter, r *http.Request, path, jkt string) (*dpop.Proof, error) {
	proofs := dpop.Proofs(r.Header)
	if len(proofs) == 0 {
		return nil, nil
	}
	proof, err := p.proofs.Verify(ctx, dpop.Request{Proofs: proofs, Method: r.Method, URL: p.url(path), JKT: jkt})
	switch {
	case err == nil:
		return proof, nil
	case errors.Is(err, dpop.ErrUseNonce):
		w.Header().Set(dpop.NonceHeaderName, p.proofs.Nonce())
		return nil, ErrUseDPoPNonce.WithWrap(err)
	case errors.Is(err, dpop.ErrInvalidProof):
		// The description names the broken rule; it never quotes the proof.
		return nil, ErrInvalidDPoPProof.WithDescription(err.Error()).WithWrap(err)
	default:
		return nil, fosite.ErrServerError.WithWrap(err).WithDebug(err.Error())
	}
}

// bindTokenDPoP runs at the token endpoint once fosite validated the grant:
// it checks the verified DPoP proof (nil when none was sent) against the
// grant's binding (dpop_jkt of the code, the key of a public client's
// refresh token) and the client's dpop_bound_access_tokens, and binds the
// tokens about to be issued to the proof's key (cnf.jkt), or unbinds them
// when there is no proof. A refused binding burns the code, as any failed
// exchange does: a code presented with the wrong key was stolen.
func (p *Provider) bindTokenDPoP(ar fosite.AccessRequester, proof *dpop.Proof) error {
	sess, ok := ar.GetSession().(*Session)
	rp, ok2 := ar.GetClient().(*relyingParty)
	if !ok || !ok2 {
		return fosite.ErrServerError.WithDebug("unexpected session or client type")
	}
	bound := sess.DPoPJKT
	grants := ar.GetGrantTypes()
	switch {
	case grants.ExactOne("authorization_code") && bound != "":
		// RFC 9449 §10: the code was bound with dpop_jkt.
		if proof == nil {
			return ErrInvalidDPoPProof.WithHint("The authorization code is bound to a DPoP key (dpop_jkt); a DPoP proof is required.")
		}
		if proof.JKT != bound {
			return ErrInvalidDPoPProof.WithHint("The DPoP proof key does not match the dpop_jkt of the authorization request.")
		}
	case grants.ExactOne("refresh_token") && bound != "" && rp.IsPublic():
		// RFC 9449 §5: a public client's refresh token is bound to its key.
		if proof == nil {
			return ErrInvalidDPoPProof.WithHint("The refresh token is bound to a DPoP key; a DPoP proof is required.")
		}
		if proof.JKT != bound {
			return fosite.ErrInvalidGrant.WithHint("The refresh token is bound to another DPoP key.")
		}
	}
	if proof == nil && rp.dpopBound() {
		return ErrInvalidDPoPProof.WithHint("This client must send a DPoP proof (dpop_bound_access_tokens).")
	}
	sess.DPoPJKT = ""
	if proof != nil {
		sess.DPoPJKT = proof.JKT
	}
	return nil
}

// finishTokenDPoP marks a bound access token's type (RFC 9449 §5) and hands
// out the current nonce.
func (p *Provider) finishTokenDPoP(w http.ResponseWriter, ar fosite.AccessRequester, resp fosite.AccessResponder) {
	if n := p.proofs.Nonce(); n != "" {
		w.Header().Set(dpop.NonceHeaderName, n)
	}
	if sess, ok := ar.GetSession().(*Session); ok && sess.DPoPJKT != "" {
		resp.SetTokenType(dpop.TokenType)
	}
}

// checkDPoPJKT validates the dpop_jkt authorization request parameter (RFC
// 9449 §10).
func checkDPoPJKT(form url.Values) error {
	vals, ok := form["dpop_jkt"]
	if !ok {
		return nil
	}
	if len(vals) != 1 || !dpop.ValidJKT(vals[0]) {
		return fosite.ErrInvalidRequest.WithHint("dpop_jkt must be one base64url SHA-256 JWK thumbprint.")
	}
	return nil
}

// bindPARDPoP handles DPoP at the PAR endpoint (RFC 9449 §10.1): a proof
// binds the pushed request to its key, as dpop_jkt would; when both are
// sent they must agree.
func (p *Provider) bindPARDPoP(ctx context.Context, w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester) error {
	form := ar.GetRequestForm()
	if err := checkDPoPJKT(form); err != nil {
		return err
	}
	proof, err := p.verifyProof(ctx, w, r, PathPAR, form.Get("dpop_jkt"))
	if err != nil {
		return err
	}
	if proof != nil {
		form.Set("dpop_jkt", proof.JKT)
	}
	return nil
}

// addDPoP adds cnf and the DPoP token type to an introspection
// response for a bound access token (RFC 9449 §6.2).
func (r *introspectionResult) addDPoP(sess *Session, use fosite.TokenUse) {
	if sess.DPoPJKT == "" || use != fosite.AccessToken {
		return
	}
	r.Confirmation = &confirmation{JKT: sess.DPoPJKT}
	r.TokenType = dpop.TokenType
}

// confirmation is the cnf member (RFC 7800) of a bound token.
type confirmation struct {
	JKT string `json:"jkt"`
}

// ResourceDPoPVerifier returns a DPoP proof verifier for resource-server
// checks running inside the server (the gateway): the default algorithms
// and window, and the provider's storage-backed replay cache, so a proof
// replayed to another replica is refused too. No nonces are demanded.
func (p *Provider) ResourceDPoPVerifier() (*dpop.Verifier, error) {
	v, err := dpop.NewVerifier(dpop.Config{Algs: p.cfg.DPoP.Algs, Window: p.cfg.DPoP.Window, Replay: p.DPoPReplayCache(), Now: p.cfg.Now})
	if err != nil {
		return nil, fmt.Errorf("oauth: resource dpop verifier: %w", err)
	}
	return v, nil
}
